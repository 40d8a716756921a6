"""The committed snapshots are exactly what the program synthesizes, and synthesis is stable."""

from __future__ import annotations

import json
import shutil

import pytest

from review import synth
from review.mocks import SUBSCRIPTION_ID
from review.model import parent_ref, urn_ref
from review.stacks import SNAPSHOT_DIR, discover_stacks

SNAPSHOT_KINDS = ("json", "md", "arm.json")


def test_every_committed_stack_has_its_snapshots(stacks):
    assert {"dev", "prod", "isolated"} <= set(stacks)
    for stack in stacks:
        for kind in SNAPSHOT_KINDS:
            assert (SNAPSHOT_DIR / f"{stack}.{kind}").is_file(), (
                f"review/snapshots/{stack}.{kind} missing: run `make synth`")


def test_snapshots_match_the_program(rendered):
    diffs = synth.stale_files(rendered)
    assert not diffs, (
        "review/snapshots/ differ from what the program synthesizes; run `make synth` and commit "
        "review/snapshots/ if the change is intended:\n" + "\n".join(diffs.values()))


def test_two_runs_are_byte_identical(rendered, stacks):
    # A fresh mocked run (not the session's cached one) must give the same bytes.
    fresh = synth.render_all(stacks, synth.default_runner)
    assert fresh == rendered


def test_check_mode_fails_with_diff_and_refresh_command(tmp_path, capsys):
    shutil.copytree(SNAPSHOT_DIR, tmp_path, dirs_exist_ok=True)
    assert synth.main(["--check", "--stack", "dev", "--dir", str(tmp_path)],
                      runner=synth.cached_run) == 0

    stale = tmp_path / "dev.json"
    stale.write_text(stale.read_text().replace('"httpsOnly": true', '"httpsOnly": false'))
    capsys.readouterr()
    assert synth.main(["--check", "--stack", "dev", "--dir", str(tmp_path)],
                      runner=synth.cached_run) == 1
    out, err = capsys.readouterr()
    assert "make synth" in err and "dev.json" in err
    assert '-        "httpsOnly": false,' in out and '+        "httpsOnly": true,' in out


def test_write_mode_writes_every_file(tmp_path):
    assert synth.main(["--no-scan", "--stack", "dev", "--dir", str(tmp_path)],
                      runner=synth.cached_run) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.arm.json", "dev.json", "dev.md"]
    assert synth.stale_files(synth.render_stack("dev", synth.cached_run), tmp_path) == {}


def test_snapshots_are_secret_free(rendered):
    """The Flask key is generated and stored in Key Vault: only its reference may appear."""
    for stack in discover_stacks():
        document = json.loads(rendered[f"{stack}.json"])
        secrets = [r for r in document["resources"] if r["type"] == "azure-native:keyvault:Secret"]
        assert secrets and all(r["inputs"]["properties"]["value"] == "[secret]" for r in secrets)
        for resource in document["resources"]:
            if resource["type"] in ("azure-native:web:WebApp", "azure-native:web:WebAppSlot"):
                settings = {s["name"]: s["value"]
                            for s in resource["inputs"]["siteConfig"]["appSettings"]}
                assert settings["SECRET_KEY"].startswith("@Microsoft.KeyVault(")
        assert "AccountKey=" not in rendered[f"{stack}.json"]


def test_snapshot_records_what_reviewers_need(rendered):
    resources = json.loads(rendered["prod.json"])["resources"]
    server = next(r for r in resources if r["type"] == "azure-native:dbforpostgresql:Server")
    assert server["protect"] is True and server["retainOnDelete"] is True
    assert "azure-native:resources:ResourceGroup::resource-group" in server["dependsOn"]
    assert server["inputs"]["network"]["publicNetworkAccess"] == "Disabled"
    ase = next(r for r in json.loads(rendered["isolated.json"])["resources"]
               if r["type"] == "azure-native:web:AppServiceEnvironment")
    assert ase["customTimeouts"]["create"]
    keys = [(r["type"], r["name"]) for r in resources]
    assert keys == sorted(keys)


@pytest.mark.parametrize(("urn", "ref"), [
    ("urn:pulumi:prod::rr::azure-native:web:WebApp::web-app", "azure-native:web:WebApp::web-app"),
    # A child of a component: the URN carries the parent type chain, the ref does not.
    ("urn:pulumi:prod::rr::my:component:Tier$azure-native:web:WebApp::web-app",
     "azure-native:web:WebApp::web-app"),
])
def test_urn_ref_keeps_own_type_and_name(urn, ref):
    assert urn_ref(urn) == ref


def test_stack_parent_is_not_shown_and_bad_urns_are_named():
    assert parent_ref("urn:pulumi:dev::rr::pulumi:pulumi:Stack::rr-dev") is None
    with pytest.raises(ValueError, match="not a Pulumi URN: 'web-app'"):
        urn_ref("web-app")


def test_snapshots_show_the_component_tree(rendered, stacks):
    for stack in stacks:
        resources = json.loads(rendered[f"{stack}.json"])["resources"]
        components = {f"{r['type']}::{r['name']}" for r in resources
                      if r["type"].startswith("restaurant-review:")}
        assert "restaurant-review:data:DataServices::data" in components
        for resource in resources:
            if resource["type"] == "azure-native:resources:ResourceGroup":
                assert resource["parent"] is None
            elif resource["type"].startswith("restaurant-review:"):
                assert resource["parent"] is None or resource["parent"] in components
                assert resource["inputs"] == {} and resource["armId"] is None
            else:
                assert resource["parent"] in components, (stack, resource["name"])
        table = rendered[f"{stack}.md"].split("## Resources", 1)[1]
        assert "| `web-app` | `web:WebApp` | `app:Site::app` |" in table


def test_snapshots_carry_arm_ids(rendered):
    resources = json.loads(rendered["prod.json"])["resources"]
    by_name = {r["name"]: r for r in resources}
    slot = by_name["web-app-staging"]
    assert slot["armId"] == (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/"
        f"{slot['inputs']['resourceGroupName']}/providers/Microsoft.Web/sites/"
        f"{slot['inputs']['name']}/slots/staging")
    assert by_name["database-roles"]["armId"] is None  # a component, not an Azure resource
    assert all(r["armId"].startswith("/subscriptions/") for r in resources
               if r["type"].startswith("azure-native:"))
