"""The package deploy and the database-role SQL step, as declared under mocks (issue 4)."""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import replace

import pytest

from infra import config as infra_config
from infra.deploy import PackageError, PackageRef, locate_package
from review.mocks import load_stack_config, offline_package, run_stack


def _flags(command: str) -> dict[str, str]:
    args = shlex.split(command)
    assert args[:3] == ["az", "webapp", "deploy"]
    return dict(zip(args[3::2], args[4::2], strict=True))


def test_deploy_targets_the_staging_slot_where_there_is_one(stack_view):
    deploy = stack_view.all("local:Command")
    deploys = [c for c in deploy if c.name.startswith("deploy-")]
    assert len(deploys) == 1
    flags = _flags(deploys[0].inputs["create"])
    assert flags["--name"] == stack_view.run.outputs["appName"]
    assert flags["--resource-group"] == stack_view.run.outputs["resourceGroupName"]
    assert flags["--type"] == "zip"
    assert flags["--clean"] == "true"  # no file of an older release stays importable
    assert flags["--src-path"] == "dist/webapp-py3.11.zip"
    has_slot = bool(stack_view.all("web:WebAppSlot"))
    assert flags.get("--slot") == ("staging" if has_slot else None)
    target = stack_view.one("web:WebAppSlot" if has_slot else "web:WebApp")
    assert target.urn in deploys[0].depends_on


def test_deploy_waits_for_the_identity_wiring(stack_view):
    deploy = next(c for c in stack_view.all("local:Command") if c.name.startswith("deploy-"))
    slot = "staging" if stack_view.all("web:WebAppSlot") else "app"
    waits_for = stack_view.depends_on(deploy)
    assert {f"{slot}-blob-data-contributor", f"{slot}-key-vault-secrets-user",
            f"db-role-{slot}", f"{slot}-scm-basic-auth"} <= waits_for
    if stack_view.tier != "basic":
        assert {"pe-dns-postgres", "pe-dns-vault", "pe-dns-blob"} <= waits_for
    if stack_view.tier == "isolated":
        assert {"dns-ase-wildcard", "dns-ase-wildcard.scm"} <= waits_for


def test_deploy_is_triggered_by_the_package_hash(basic_view):
    def deploy_of(run):
        return next(r.inputs for r in run.resources if r.name.startswith("deploy-"))

    offline = deploy_of(basic_view.run)
    rebuilt = PackageRef(path="dist/webapp-py3.11.zip", sha256="b" * 64)
    redeploy = deploy_of(run_stack(basic_view.stack, package=rebuilt))
    assert offline["triggers"][0] == basic_view.run.outputs["packageSha256"]
    assert redeploy["triggers"][0] == "b" * 64
    # Same command, same target: the hash alone is what makes Pulumi run the deploy again.
    assert redeploy["create"] == offline["create"]
    assert redeploy["triggers"][1:] == offline["triggers"][1:]


def test_offline_package_is_stable_and_follows_python_version(valid_config):
    cfg = infra_config.parse_config("dev", {**valid_config, "pythonVersion": "3.12"}.get,
                                    "westeurope")
    assert offline_package(cfg) == offline_package(cfg)
    assert offline_package(cfg).path == "dist/webapp-py3.12.zip"


def test_missing_package_tells_you_to_run_make_package(tmp_path, valid_config):
    cfg = infra_config.parse_config("dev", valid_config.get, "westeurope")
    with pytest.raises(PackageError, match=r"webapp-py3\.11\.zip not found: run `make package`"):
        locate_package(cfg, repo_root=tmp_path)


def test_package_is_hashed_from_its_bytes(tmp_path, valid_config):
    cfg = infra_config.parse_config("dev", valid_config.get, "westeurope")
    package = tmp_path / "dist" / "webapp-py3.11.zip"
    package.parent.mkdir()
    package.write_bytes(b"PK\x05\x06" + bytes(18))
    found = locate_package(cfg, repo_root=tmp_path)
    assert found == PackageRef(str(package), hashlib.sha256(package.read_bytes()).hexdigest())
    custom = tmp_path / "elsewhere.zip"
    custom.write_bytes(b"other")
    overridden = locate_package(replace(cfg, package_path=str(custom)), repo_root=tmp_path)
    assert overridden.sha256 == hashlib.sha256(b"other").hexdigest()


# --- the database role step --------------------------------------------------------------------

def test_each_identity_gets_its_own_database_role(stack_view):
    steps = {c.name: c for c in stack_view.all("local:Command") if c.name.startswith("db-role-")}
    sites = {s.inputs.get("slot", "app"): s for s in stack_view.sites()}
    assert set(steps) == {f"db-role-{key}" for key in sites}
    config = load_stack_config(stack_view.stack)
    for key, site in sites.items():
        step = steps[f"db-role-{key}"]
        user = stack_view.settings(site)["AZURE_POSTGRESQL_USER"]
        principal = stack_view.run.outputs["appPrincipalId" if key == "app"
                                           else "stagingPrincipalId"]
        words = shlex.split(step.inputs["create"])
        assert words[0].startswith("PGPASSWORD=$(az account get-access-token --resource-type "
                                   "oss-rdbms")
        assert words[1] == "psql"
        variables = dict(arg.split("=", 1) for arg in words[2:] if "=" in arg)
        assert variables["role"] == user and variables["object_id"] == principal
        assert variables["database"] == stack_view.run.outputs["databaseName"]
        assert step.inputs["triggers"][:2] == [principal, user]
        assert step.inputs["environment"] == {
            "PGHOST": stack_view.run.outputs["databaseHost"], "PGDATABASE": "postgres",
            "PGSSLMODE": "require",
            "PGUSER": config["restaurant-review:postgresAdminPrincipalName"]}
        assert "pgaadauth_create_principal_with_oid" in step.inputs["stdin"]
        assert "postgres-entra-admin" in stack_view.depends_on(step)
        if stack_view.tier != "basic":
            assert "pe-dns-postgres" in stack_view.depends_on(step)
