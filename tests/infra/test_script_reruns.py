"""Recovering from a failed deployment script, the way infra/README.md ("Recovering from a failed
run") says, over several `pulumi up` runs of the real program (under mocks) against ARM's,
azure-native's and Pulumi's rules (tests/infra/script_platform.py). The database-role script's
real shell runs against the local Azure-like PostgreSQL; the deploy script's run is stood in for.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from datetime import timedelta

import pytest

from review.mocks import load_stack_config, run_stack
from tests.azure_postgres import cursor_as
from tests.infra.script_platform import AzureNative, DeploymentScripts, Inputs, Stack, iso_duration

STACK = "dev"
DEPLOYER_TOKEN = "token-for-deployer"  # noqa: S105 - a stand-in, not a credential
SCRIPT = "azure-native:resources:AzureCliScript"


@functools.cache
def declared_scripts(attempt: int | None = None) -> list[tuple[str, Inputs]]:
    """The script resources `pulumi up` would send, with config scriptAttempt set or not."""
    config = load_stack_config(STACK)
    if attempt is not None:
        config["restaurant-review:scriptAttempt"] = str(attempt)
    return [(r.urn, r.inputs) for r in run_stack(STACK, config=config).resources
            if r.type == SCRIPT]


def _environment(inputs: Inputs) -> dict[str, str]:
    return {pair["name"]: pair["value"] for pair in inputs["environmentVariables"]}


def _database(inputs: Inputs) -> str:
    return re.search(r"--set database=(\S+)", str(inputs["scriptContent"])).group(1)


def _roles(inputs: Inputs) -> list[tuple[str, str]]:
    content = str(inputs["scriptContent"])
    return re.findall(r"--set role=(\S+) --set object_id=(\S+)", content)


@pytest.fixture
def database_roles_host(azure_like_server, tmp_path):
    """The server the database-role script signs in to as the deployer (an administrator);
    the app database is missing until the test makes it, the cause of the first failure."""
    cluster, fake_bin = azure_like_server
    roles_script = next(inputs for _, inputs in declared_scripts() if "PGUSER" in
                        _environment(inputs))
    deployer = _environment(roles_script)["PGUSER"]
    cluster.execute(f'DROP DATABASE IF EXISTS "{_database(roles_script)}" WITH (FORCE)')
    if not cluster.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", params=(deployer,)):
        cluster.execute(f"CREATE ROLE \"{deployer}\" LOGIN CREATEROLE PASSWORD "
                        f"'{DEPLOYER_TOKEN}' IN ROLE azure_pg_admin")
    az = tmp_path / "az"
    az.write_text(f"#!/bin/sh\necho {DEPLOYER_TOKEN}\n")
    az.chmod(0o755)
    return cluster, tmp_path


def _runner(cluster, bin_dir):
    def run(inputs: Inputs) -> bool:
        env = _environment(inputs)
        if "PGUSER" not in env:
            return True  # the deploy script: its shell has tests of its own
        env.update(PGHOST="127.0.0.1", PGPORT=str(cluster.port), PGSSLMODE="disable",
                   PATH=f"{bin_dir}:{os.environ['PATH']}")
        result = subprocess.run(["/bin/sh", "-c", str(inputs["scriptContent"])],
                                env={**os.environ, **env}, capture_output=True, text=True,
                                check=False, timeout=120)
        return result.returncode == 0
    return run


@pytest.mark.parametrize("records_failed_creates", [True, False],
                         ids=["failed-create-in-state", "failed-create-not-in-state"])
def test_a_failed_script_runs_again_after_the_documented_recovery(database_roles_host,
                                                                  records_failed_creates):
    cluster, bin_dir = database_roles_host
    arm = DeploymentScripts(_runner(cluster, bin_dir))
    stack = Stack(AzureNative(arm, records_failed_creates))
    first = declared_scripts()
    (roles_urn, roles), *_ = first
    assert "PGUSER" in _environment(roles), "the database-role script runs first"

    assert stack.up(first), "the first run fails: the app database is missing"
    failed = arm.get(str(roles["scriptName"]))
    assert failed.state == "Failed" and failed.container_kept  # its logs can be read

    cluster.execute(f'CREATE DATABASE "{_database(roles)}" OWNER azure_pg_admin')  # the fix
    # `pulumi up` alone is not enough: the same script comes back unchanged, which ARM does
    # not run again, or under the name of the failed one, which azure-native will not create.
    assert stack.up(declared_scripts()) and arm.runs == [roles["scriptName"]]

    again = declared_scripts(attempt=2)  # pulumi config set scriptAttempt 2
    assert stack.up(again) == []
    retried = dict(again)[roles_urn]
    assert retried["scriptName"] != roles["scriptName"]
    assert arm.get(str(retried["scriptName"])).state == "Succeeded"
    for role, object_id in _roles(retried):
        with cursor_as(cluster, role, object_id, database=_database(retried)) as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (f"{_database(retried)}_owner",)

    assert stack.up(again) == [] and len(arm.runs) == 3  # once done, an unchanged up is a no-op
    arm.advance(iso_duration(str(roles["retentionInterval"])) + timedelta(seconds=1))
    assert arm.get(str(roles["scriptName"])) is None  # the failed run is gone in the end
