"""Every Azure resource that lives under another in ARM waits for it, in every stack.

A child PUT before its parent exists fails a first `pulumi up` (a slot's publishing policy before
the slot, a DNS record before its zone...). Pulumi orders resources only by their dependencies,
so this walks each stack's dependency graph: for every pair where one ARM id lies under the
other's, the child must depend on the parent, directly or through other resources. Being its
child in the component tree does not count: that orders nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from review.mocks import CapturedResource


def dependency_closure(resources: Iterable[CapturedResource]) -> dict[str, set[str]]:
    """URN -> every URN it transitively depends on."""
    direct = {r.urn: set(r.depends_on) for r in resources}
    closure: dict[str, set[str]] = {}

    def visit(urn: str) -> set[str]:
        if urn not in closure:
            closure[urn] = set()
            for dependency in direct.get(urn, ()):
                closure[urn] |= {dependency, *visit(dependency)}
        return closure[urn]

    for urn in direct:
        visit(urn)
    return closure


def children_not_waiting_for_parents(resources: Iterable[CapturedResource]) -> list[str]:
    resources = [r for r in resources if r.arm_id]
    waits_for = dependency_closure(resources)
    problems = []
    for child in resources:
        child_id = child.arm_id.lower()
        for parent in resources:
            parent_id = parent.arm_id.lower()
            if child_id.startswith(parent_id + "/") and parent.urn not in waits_for[child.urn]:
                problems.append(f"{child.name} ({child.arm_id}) does not wait for "
                                f"{parent.name} ({parent.arm_id})")
    return problems


def test_every_child_waits_for_its_arm_parent(stack_view):
    assert children_not_waiting_for_parents(stack_view.run.resources) == []


def test_the_walk_covers_the_nested_kinds_that_broke_before(stack_view):
    """The check has something to bite on: slots, their policies, DNS records, subnets..."""
    nested = {r.type.rsplit(":", 1)[1] for r in stack_view.run.resources
              if r.arm_id and any(r.arm_id.lower().startswith(p.arm_id.lower() + "/")
                                  for p in stack_view.run.resources if p.arm_id and p is not r)}
    expected = {"WebAppFtpAllowed", "Database", "Configuration", "BlobContainer", "Secret",
                "AdministratorsMicrosoftEntra", "RoleAssignment", "DiagnosticSetting"}
    if stack_view.tier != "basic":
        expected |= {"WebAppSlot", "WebAppScmAllowedSlot", "Subnet", "VirtualNetworkLink",
                     "PrivateDnsZoneGroup"}
    if stack_view.tier == "isolated":
        expected |= {"PrivateRecordSet"}
    assert expected <= nested


def _resource(name: str, arm_id: str, depends_on: tuple[str, ...] = ()) -> CapturedResource:
    return CapturedResource(type=f"azure-native:test:{name}", name=name, urn=f"urn:{name}",
                            parent="urn:stack", inputs={}, protect=False,
                            retain_on_delete=False, depends_on=depends_on,
                            custom_timeouts=None, arm_id=arm_id)


def test_a_child_that_only_shares_its_parents_name_is_caught():
    site = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/app"
    group = _resource("group", "/subscriptions/s/resourceGroups/rg")
    app = _resource("app", site, ("urn:group",))
    slot = _resource("slot", f"{site}/slots/staging", ("urn:app",))
    # Named through the app's name output only: depends on the app, not on the slot.
    policy = _resource("policy", f"{site}/slots/staging/basicPublishingCredentialsPolicies/scm",
                       ("urn:app",))
    assert children_not_waiting_for_parents([group, app, slot, policy]) == [
        f"policy ({site}/slots/staging/basicPublishingCredentialsPolicies/scm) does not wait "
        f"for slot ({site}/slots/staging)"]
    fixed = _resource("policy", policy.arm_id, ("urn:slot",))
    assert children_not_waiting_for_parents([group, app, slot, fixed]) == []


# --- one write per VNet at a time -----------------------------------------------------------

VNET_WRITES = ("azure-native:network:Subnet", "azure-native:network:VirtualNetworkPeering")


def unordered_vnet_writes(resources: Iterable[CapturedResource]) -> list[str]:
    """Pairs of subnets/peerings on one VNet that Pulumi may write at the same time.

    Azure refuses a second write to a VNet while one runs (AnotherOperationInProgress), so
    every subnet and peering of one VNet must sit on one dependency chain.
    """
    resources = list(resources)
    waits_for = dependency_closure(resources)
    by_vnet: dict[tuple[str, str], list[CapturedResource]] = {}
    for r in resources:
        if r.type in VNET_WRITES:
            key = (r.inputs["resourceGroupName"], r.inputs["virtualNetworkName"])
            by_vnet.setdefault(key, []).append(r)
    problems = []
    for (_, vnet), writes in sorted(by_vnet.items()):
        for i, first in enumerate(writes):
            for second in writes[i + 1:]:
                if first.urn not in waits_for[second.urn] and \
                        second.urn not in waits_for[first.urn]:
                    problems.append(f"{vnet}: {first.name} and {second.name} are not ordered")
    return problems


def test_every_write_to_one_vnet_is_on_one_chain(stack_view):
    assert unordered_vnet_writes(stack_view.run.resources) == []


def test_gateway_and_hub_writes_to_the_vnet_are_on_the_chain_too():
    from tests.infra.test_ingress import HUB_ID, isolated, standard

    for view in (standard(ingress="applicationGateway", applicationGatewaySubnet="10.40.3.0/24",
                          hubVirtualNetworkId=HUB_ID),
                 isolated(hubVirtualNetworkId=HUB_ID)):
        names = {r.name for r in view.run.resources if r.type in VNET_WRITES}
        assert {"snet-gateway", "snet-deployment-scripts", "peering-stack-to-hub"} <= names
        assert unordered_vnet_writes(view.run.resources) == []


def test_two_subnets_after_the_same_one_are_caught():
    def subnet(name: str, depends_on: tuple[str, ...] = ()) -> CapturedResource:
        return CapturedResource(
            type="azure-native:network:Subnet", name=name, urn=f"urn:{name}", parent="urn:stack",
            inputs={"resourceGroupName": "rg", "virtualNetworkName": "vnet"}, protect=False,
            retain_on_delete=False, depends_on=depends_on, custom_timeouts=None, arm_id=None)

    resources = [subnet("a"), subnet("b", ("urn:a",)), subnet("c", ("urn:a",))]
    assert unordered_vnet_writes(resources) == ["vnet: b and c are not ordered"]
