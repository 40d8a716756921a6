"""The shared mocks harness (review/mocks.py): config loading and what a run captures."""

from __future__ import annotations

import pytest

from review.mocks import (
    PROJECT,
    SECRET,
    SUBSCRIPTION_ID,
    as_pulumi_config,
    load_stack_config,
    run_stack,
)


def test_stack_config_keys_are_namespaced(committed_stacks):
    for stack in committed_stacks:
        config = load_stack_config(stack)
        assert config[f"{PROJECT}:tier"] in ("basic", "standard", "isolated")
        assert all(":" in key for key in config)


def test_unknown_stack_file_is_reported():
    with pytest.raises(FileNotFoundError, match=r"Pulumi\.nope\.yaml"):
        load_stack_config("nope")


def test_config_reaches_the_program_as_pulumi_strings_with_secrets_sealed():
    flat, secret_keys = as_pulumi_config({
        "tier": "basic", "azure-native:location": "westeurope", "zoneRedundant": False,
        "maxInstances": 4, "tags": ["a", "b"], "token": {"secure": "v1:AAAA"},
    })
    assert flat == {
        f"{PROJECT}:tier": "basic", "azure-native:location": "westeurope",
        f"{PROJECT}:zoneRedundant": "false", f"{PROJECT}:maxInstances": "4",
        f"{PROJECT}:tags": '["a", "b"]', f"{PROJECT}:token": SECRET,
    }
    assert secret_keys == [f"{PROJECT}:token"]


def test_captured_resources_come_after_their_parent_and_dependencies(stack_view):
    resources = stack_view.run.resources
    stack = resources[0]
    assert stack.type == "pulumi:pulumi:Stack" and stack.parent is None
    seen = {stack.urn}
    for resource in resources[1:]:
        assert resource.parent in seen, resource.name
        assert set(resource.depends_on) <= seen, resource.name
        seen.add(resource.urn)
    assert not any(r.type.startswith("pulumi:providers:") for r in resources)
    timed = [r.name for r in resources if r.custom_timeouts]
    scripts = ["script-database-roles", "script-deploy"]  # they wait on ARM for their run
    assert sorted(timed) == sorted((["ase"] if stack_view.tier == "isolated" else []) + scripts)


def test_a_resource_of_an_explicit_provider_gets_an_id_in_that_providers_subscription():
    """The hub-side peering lives in the hub's subscription: the snapshot (and the plan) say so."""
    hub_subscription = "22222222-3333-4444-5555-666666666666"
    hub = (f"/subscriptions/{hub_subscription}/resourceGroups/rg-hub/providers/"
           "Microsoft.Network/virtualNetworks/vnet-hub")
    run = run_stack("prod", {**load_stack_config("prod"),
                             f"{PROJECT}:hubVirtualNetworkId": hub})
    ids = {r.name: r.arm_id for r in run.resources}
    assert ids["peering-hub-to-stack"].startswith(hub + "/virtualNetworkPeerings/")
    assert ids["peering-stack-to-hub"].startswith(f"/subscriptions/{SUBSCRIPTION_ID}/")
