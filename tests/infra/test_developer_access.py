"""Developer access to the dev stack (`make dev-azure`): declared only when configured, dev only.

The developers' Entra group gets Storage Blob Data Contributor on the photo container alone, a
PostgreSQL role made by the deployer's SQL step (as a `group` principal, with the app's
privileges) and one firewall rule per configured range; unset keys declare none of it.
"""

from __future__ import annotations

import shlex
import uuid
from functools import cache

import pytest

from infra.config import ConfigError, parse_config
from infra.identity import STORAGE_BLOB_DATA_CONTRIBUTOR
from review import mocks
from review.mocks import StackRun, load_stack_config, run_stack

GROUP_ID = "7f3c2a1e-5b4d-4c3b-9a2f-1e0d9c8b7a65"
GROUP_NAME = "rr-dev-developers"
RANGES = "20.50.1.0/28,52.10.20.30/32"
DEVELOPER_CONFIG = {
    "restaurant-review:developerGroupObjectId": GROUP_ID,
    "restaurant-review:developerGroupName": GROUP_NAME,
    "restaurant-review:developerIpRanges": RANGES,
}


@cache
def dev_with_developers() -> StackRun:
    return run_stack("dev", config={**load_stack_config("dev"), **DEVELOPER_CONFIG})


@cache
def dev_as_committed() -> StackRun:
    return run_stack("dev")


def firewall_rules(run: StackRun) -> dict[str, tuple[str, str]]:
    return {r.inputs["firewallRuleName"]: (r.inputs["startIpAddress"], r.inputs["endIpAddress"])
            for r in run.resources if r.type.endswith("FirewallRule")}


def group_assignments(run: StackRun) -> list:
    return [r for r in run.resources if r.type.endswith("authorization:RoleAssignment")
            and r.inputs.get("principalType") == "Group"]


def sql_step(run: StackRun) -> str:
    script = next(r for r in run.resources if r.name == "script-database-roles")
    return script.inputs["scriptContent"]


def test_configured_developers_get_the_photo_container_only():
    run = dev_with_developers()
    (assignment,) = group_assignments(run)
    container = next(r for r in run.resources if r.name == "photo-container")
    assert assignment.inputs["principalId"] == GROUP_ID
    assert assignment.inputs["scope"] == container.arm_id
    assert assignment.inputs["roleDefinitionId"].endswith(STORAGE_BLOB_DATA_CONTRIBUTOR)
    uuid.UUID(assignment.inputs["roleAssignmentName"])  # deterministic GUID, not a random name
    again = run_stack("dev", config={**load_stack_config("dev"), **DEVELOPER_CONFIG})
    assert [r.inputs["roleAssignmentName"] for r in group_assignments(again)] == [
        assignment.inputs["roleAssignmentName"]]


def psql_variables(script: str) -> list[dict[str, str]]:
    """The psql variables (--set name=value) of each psql run in the script, in order."""
    runs = []
    for line in script.splitlines():
        if "psql --no-psqlrc" not in line:
            continue
        command = line[line.index("psql --no-psqlrc"):line.index(" < app_role.sql")]
        args = shlex.split(command)
        runs.append(dict(value.split("=", 1) for flag, value in zip(args, args[1:], strict=False)
                         if flag == "--set"))
    return runs


def test_configured_developers_get_a_postgres_group_role_after_the_app():
    app, developers = psql_variables(sql_step(dev_with_developers()))
    assert developers["role"] == GROUP_NAME
    assert developers["object_id"] == GROUP_ID
    assert developers["principal_type"] == "group"
    assert app["principal_type"] == "service"
    # Same owner role and database: the app's privileges, no more.
    assert (developers["owner_role"], developers["database"]) == (app["owner_role"],
                                                                    app["database"])


def test_configured_developer_ranges_open_the_firewall_to_those_ranges_only():
    rules = firewall_rules(dev_with_developers())
    assert rules["developer-20-50-1-0-28"] == ("20.50.1.0", "20.50.1.15")
    assert rules["developer-52-10-20-30-32"] == ("52.10.20.30", "52.10.20.30")
    assert set(rules) == {"AllowAllAzureServicesAndResourcesWithinAzureIps",
                          "developer-20-50-1-0-28", "developer-52-10-20-30-32"}


def test_the_outputs_name_what_dev_azure_needs():
    outputs = dev_with_developers().outputs
    assert outputs["developerGroupName"] == GROUP_NAME
    assert outputs["photoContainer"] == "photos"
    assert {"databaseHost", "databaseName", "storageAccountUrl"} <= set(outputs)


def test_nothing_for_developers_when_the_keys_are_unset():
    run = dev_as_committed()
    assert not group_assignments(run)
    assert not [name for name in firewall_rules(run) if name.startswith("developer-")]
    assert "developerGroupName" not in run.outputs
    assert [run["principal_type"] for run in psql_variables(sql_step(run))] == ["service"]


def parse(values: dict[str, str]):
    return parse_config("test", values.get, values.get("azure-native:location"),
                        mocks.SUBSCRIPTION_ID)


@pytest.mark.parametrize("tier", ["standard", "isolated"])
@pytest.mark.parametrize("key", ["developerGroupObjectId", "developerGroupName",
                                 "developerIpRanges"])
def test_production_tiers_refuse_every_developer_key(valid_config, tier, key):
    values = {**valid_config, "tier": tier, "sku": "P1v3" if tier == "standard" else "I1v2",
              key: DEVELOPER_CONFIG[f"restaurant-review:{key}"]}
    with pytest.raises(ConfigError, match=rf"config '{key}': .* unset in the {tier} tier "
                                          r"\(it applies to: basic\)"):
        parse(values)


@pytest.mark.parametrize(("changes", "message"), [
    ({"developerIpRanges": RANGES}, r"'developerIpRanges': .* unset while "
                                    r"developerGroupObjectId is unset"),
    ({"developerGroupObjectId": GROUP_ID}, r"config 'developerGroupName' is required"),
    ({"developerGroupName": GROUP_NAME}, r"config 'developerGroupObjectId' is required"),
    ({"developerGroupObjectId": "developers", "developerGroupName": GROUP_NAME},
     r"'developerGroupObjectId': 'developers' .* a GUID"),
    ({"developerGroupObjectId": GROUP_ID, "developerGroupName": "x" * 64},
     r"'developerGroupName': 'x+' .* 1-63 printable characters"),
    ({"developerGroupObjectId": GROUP_ID, "developerGroupName": GROUP_NAME,
      "developerIpRanges": "10.0.0.0/24"}, r"'developerIpRanges': '10.0.0.0/24' .* public"),
    ({"developerGroupObjectId": GROUP_ID, "developerGroupName": GROUP_NAME,
      "developerIpRanges": "20.50.0.0/16"}, r"'developerIpRanges': '20.50.0.0/16' .* no larger "
                                            r"than a /24"),
    ({"developerGroupObjectId": GROUP_ID, "developerGroupName": GROUP_NAME,
      "developerIpRanges": "20.50.1.5/28"}, r"'developerIpRanges': '20.50.1.5/28' .* no host "
                                            r"bits"),
    ({"developerGroupObjectId": GROUP_ID, "developerGroupName": GROUP_NAME,
      "developerIpRanges": " , "}, r"'developerIpRanges': ' , ' .* comma-separated"),
])
def test_bad_developer_config_names_key_value_and_what_is_allowed(valid_config, changes,
                                                                   message):
    with pytest.raises(ConfigError, match=message):
        parse({**valid_config, **changes})


def test_a_group_without_ranges_is_allowed(valid_config):
    cfg = parse({**valid_config, "developerGroupObjectId": GROUP_ID.upper(),
                 "developerGroupName": GROUP_NAME})
    assert cfg.developer_access.group_object_id == GROUP_ID
    assert cfg.developer_access.ip_ranges == ()
