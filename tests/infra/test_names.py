"""Globally unique names follow the subscription: two deployers of one stack file never collide."""

from __future__ import annotations

import uuid

import pytest

from infra.config import ConfigError, parse_config
from infra.naming import Names
from review.mocks import SUBSCRIPTION_ID, load_stack_config, run_stack

OTHER_SUBSCRIPTION = str(uuid.uuid5(uuid.NAMESPACE_URL, "another-deployer-subscription"))

# Resource type -> the input holding its name, for the names Azure makes unique worldwide.
GLOBAL_NAMES = {
    "web:WebApp": "name",
    "storage:StorageAccount": "accountName",
    "keyvault:Vault": "vaultName",
    "dbforpostgresql:Server": "serverName",
    "web:AppServiceEnvironment": "name",
}


def _global_names(view_or_run) -> dict[str, str]:
    resources = view_or_run.resources
    names = {}
    for type_suffix, key in GLOBAL_NAMES.items():
        for resource in resources:
            if resource.type.endswith(":" + type_suffix):
                names[type_suffix] = resource.inputs[key]
    return names


def test_one_stack_in_two_subscriptions_gets_different_global_names(stack_view):
    here = _global_names(stack_view.run)
    there_run = run_stack(stack_view.stack, subscription_id=OTHER_SUBSCRIPTION)
    there = _global_names(there_run)
    assert here.keys() == there.keys()
    assert "web:WebApp" in here and "storage:StorageAccount" in here
    if stack_view.tier == "isolated":
        assert "web:AppServiceEnvironment" in here
    for type_suffix in here:
        assert here[type_suffix] != there[type_suffix], type_suffix
    # Names only unique inside a resource group stay readable and the same.
    assert there_run.outputs["resourceGroupName"] == stack_view.run.outputs["resourceGroupName"]
    assert all(r.inputs["scope"].startswith(f"/subscriptions/{OTHER_SUBSCRIPTION}/")
               for r in there_run.resources if r.type.endswith("RoleAssignment"))


def test_name_suffix_still_overrides_the_derived_one(basic_view):
    config = {**load_stack_config(basic_view.stack), "restaurant-review:nameSuffix": "fixed1"}
    first = _global_names(run_stack(basic_view.stack, config=config))
    second = _global_names(run_stack(basic_view.stack, config=config,
                                     subscription_id=OTHER_SUBSCRIPTION))
    assert first == second
    assert first["web:WebApp"].endswith("-fixed1")


def test_the_suffix_is_stable_for_one_subscription(valid_config):
    def web_app(subscription: str) -> str:
        cfg = parse_config("dev", valid_config.get, "westeurope", subscription)
        return Names.for_stack(cfg).web_app

    assert web_app(SUBSCRIPTION_ID) == web_app(SUBSCRIPTION_ID)
    assert web_app(SUBSCRIPTION_ID) != web_app(OTHER_SUBSCRIPTION)


def test_a_subscription_id_that_is_not_a_guid_is_refused(valid_config):
    with pytest.raises(ConfigError, match=r"subscription id 'not-a-guid' .* not a GUID"):
        parse_config("dev", valid_config.get, "westeurope", "not-a-guid")
