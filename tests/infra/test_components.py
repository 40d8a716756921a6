"""The program is a tree of components: what `pulumi preview` shows and the snapshots record."""

from __future__ import annotations

import pytest

from infra.app import STAGING_SLOT
from review.mocks import load_stack_config
from review.model import parent_ref

COMPONENT_NAMESPACE = "restaurant-review:"
STACK = "pulumi:pulumi:Stack"
# The only resources allowed directly under the stack besides components.
TOP_LEVEL = {"azure-native:resources:ResourceGroup"}

_EVERY_TIER = {"deployer:Deployer", "deployer:DeploymentScript", "identity:SiteIdentities"}
EXPECTED_COMPONENTS = {
    "basic": {"app:AppService", "app:Site", "data:DataServices", "monitoring:Telemetry",
              "monitoring:Monitoring"},
    "standard": {"app:AppService", "app:Site", "data:DataServices", "monitoring:Telemetry",
                 "monitoring:Monitoring", "network:VirtualNetwork", "network:PrivateLink"},
    "isolated": {"app:AppService", "app:Site", "data:DataServices", "monitoring:Telemetry",
                 "monitoring:Monitoring", "network:VirtualNetwork", "network:PrivateLink",
                 "ase:Environment"},
}
# Components that config switches on, by key (infra/gateway.py, infra/hub.py).
OPTIONAL_COMPONENTS = {"ingress": "ingress:ApplicationGateway",
                       "hubVirtualNetworkId": "hub:HubConnection"}


def _expected_components(view) -> set[str]:
    config = load_stack_config(view.stack)
    optional = {component for key, component in OPTIONAL_COMPONENTS.items()
                if config.get(f"restaurant-review:{key}", "none") != "none"}
    return EXPECTED_COMPONENTS[view.tier] | optional


def _components(view):
    return [r for r in view.run.resources if not r.type.startswith(("azure-native:", "command:",
                                                                    "random:", "tls:", "time:",
                                                                    STACK))]


def test_every_resource_but_the_group_sits_in_a_component(stack_view):
    stack = stack_view.one(STACK)
    components = {r.urn for r in _components(stack_view)}
    for resource in stack_view.run.resources:
        if resource.type == STACK:
            continue
        if resource.parent == stack.urn:
            assert resource.type in TOP_LEVEL or resource.urn in components, (
                f"{stack_view.stack}: {resource.type} {resource.name} is directly under the "
                "stack; create it with parent=<its component>")
        else:
            assert resource.parent in components, f"{resource.name}: parent {resource.parent}"


def test_component_types_are_in_the_project_namespace(stack_view):
    components = _components(stack_view)
    assert components
    for component in components:
        assert component.type.startswith(COMPONENT_NAMESPACE), component.type
        assert component.inputs == {}  # no Azure inputs: a component only groups its children
        assert component.arm_id is None
    found = {c.type.removeprefix(COMPONENT_NAMESPACE) for c in components}
    assert found == _expected_components(stack_view) | _EVERY_TIER


def test_each_site_holds_its_hardening_and_the_one_identity_its_grants(stack_view):
    sites = {c.name: c.urn for c in _components(stack_view) if c.type.endswith(":app:Site")}
    expected = {"app", STAGING_SLOT} if stack_view.tier != "basic" else {"app"}
    assert set(sites) == expected
    for key, urn in sites.items():
        children = {r.name for r in stack_view.run.resources if r.parent == urn}
        assert {f"{key}-ftp-basic-auth", f"{key}-scm-basic-auth"} <= children, key
    # One identity for every site, so a swap never restarts a slot with an identity it lacks.
    identity = stack_view.one("restaurant-review:identity:SiteIdentities")
    held = {r.name for r in stack_view.run.resources if r.parent == identity.urn}
    assert held == {"app-identity", "app-blob-data-contributor", "app-key-vault-secrets-user",
                    "app-key-vault-grant-propagation"}


def test_the_deployer_runs_the_sql_and_the_deploy_as_its_scripts(stack_view):
    deployer = stack_view.one("restaurant-review:deployer:Deployer")
    scripts = {s.name: s for s in stack_view.all("restaurant-review:deployer:DeploymentScript")}
    assert set(scripts) == {"database-roles", "deploy"}
    assert all(script.parent == deployer.urn for script in scripts.values())
    for name, script in scripts.items():
        (run,) = [r for r in stack_view.run.resources if r.parent == script.urn]
        assert run.type == "azure-native:resources:AzureCliScript" and run.name == f"script-{name}"


@pytest.mark.parametrize("policy", ["WebAppFtpAllowedSlot", "WebAppScmAllowedSlot"])
def test_slot_basic_auth_policies_wait_for_the_slot(vnet_view, policy):
    """They name the slot only through the app's name: without the explicit dependency a
    first `pulumi up` would write the policy before the slot exists."""
    resource = vnet_view.one(f"web:{policy}")
    slot = vnet_view.one("web:WebAppSlot")
    assert slot.urn in resource.depends_on
    assert parent_ref(resource.parent) == f"restaurant-review:app:Site::{STAGING_SLOT}"



def test_sites_sit_in_the_app_service(stack_view):
    service = stack_view.one("restaurant-review:app:AppService")
    for site in stack_view.all("restaurant-review:app:Site"):
        assert site.parent == service.urn, site.name
