"""The Mermaid diagram is derived from resources and their dependencies, not drawn by hand."""

from __future__ import annotations

import re

import pytest

from review.diagram import mermaid
from review.model import normalize

WEB = "azure-native:web:"
NET = "azure-native:network:"
STORAGE = "azure-native:storage:StorageAccount::storage"

EDGE = re.compile(r'^  (\S+) -(?:->|\.->)(?:\|"([^"]*)"\|)? (\S+)$')
NODE = re.compile(r'^\s+(\S+)\["(.*)"\]$')


def parse(diagram: str) -> tuple[dict[str, str], set[tuple[str, str, str]]]:
    """(node id -> label, {(source, label, target)}) from a rendered diagram."""
    nodes, edges = {}, set()
    for line in diagram.splitlines():
        if node := NODE.match(line):
            nodes[node.group(1)] = node.group(2)
        elif edge := EDGE.match(line):
            edges.add((edge.group(1), edge.group(2) or "", edge.group(3)))
    return nodes, edges


@pytest.fixture
def small_private_stack(captured):
    """A plan, an app with an identity, a subnet, one private endpoint to storage and its DNS."""
    return normalize([
        captured(f"{WEB}AppServicePlan", "plan", {"sku": {"name": "P1v3"}}),
        captured(f"{WEB}WebApp", "app", {"identity": {"type": "SystemAssigned"}},
                 depends_on=(f"{WEB}AppServicePlan::plan", f"{NET}Subnet::snet-int")),
        captured(f"{NET}VirtualNetwork", "vnet"),
        captured(f"{NET}Subnet", "snet-int", {"addressPrefix": "10.0.1.0/26"},
                 depends_on=(f"{NET}VirtualNetwork::vnet",)),
        captured(f"{NET}Subnet", "snet-pe", depends_on=(f"{NET}VirtualNetwork::vnet",)),
        captured("azure-native:storage:StorageAccount", "storage"),
        captured(f"{NET}PrivateEndpoint", "pe-blob",
                 {"privateLinkServiceConnections": [{"groupIds": ["blob"]}]},
                 depends_on=(f"{NET}Subnet::snet-pe", STORAGE)),
        captured("azure-native:privatedns:PrivateZone", "dns-blob",
                 {"privateZoneName": "privatelink.blob.core.windows.net"}),
        captured(f"{NET}PrivateDnsZoneGroup", "pe-dns-blob",
                 depends_on=(f"{NET}PrivateEndpoint::pe-blob",
                             "azure-native:privatedns:PrivateZone::dns-blob")),
        captured("azure-native:authorization:RoleAssignment", "app-blob",
                 {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/"
                                      "ba92f5b4-2d11-453d-a403-e96b0029c9fe"},
                 depends_on=(f"{WEB}WebApp::app", STORAGE)),
    ])


def test_edges_follow_dependencies(small_private_stack):
    nodes, edges = parse(mermaid(small_private_stack))
    assert {
        ("internet", "HTTPS", "n_app"),
        ("n_plan", "hosts", "n_app"),
        ("n_app", "identity", "n_app_identity"),
        ("n_app", "outbound (VNet integration)", "n_snet_int"),
        ("n_vnet", "contains", "n_snet_pe"),
        ("n_snet_pe", "", "n_pe_blob"),
        ("n_pe_blob", "private link", "n_storage"),
        ("n_pe_blob", "DNS zone group", "n_dns_blob"),
        ("n_app_identity", "Storage Blob Data Contributor", "n_storage"),
    } <= edges
    assert "privatelink.blob.core.windows.net" in nodes["n_dns_blob"]
    assert "P1v3" in nodes["n_plan"]
    # Connectors are edges, never nodes.
    assert not any("pe_dns_blob" in node or "app_blob" in node for node in nodes)


def test_removing_a_dependency_removes_its_edge(small_private_stack, captured):
    unwired = [r for r in small_private_stack if r.name != "pe-dns-blob"]
    _, edges = parse(mermaid(unwired))
    assert not any(label == "DNS zone group" for _, label, _ in edges)


def test_ase_gets_an_ilb_and_no_internet_entry(captured):
    resources = normalize([
        captured(f"{NET}Subnet", "snet-ase"),
        captured(f"{WEB}AppServiceEnvironment", "ase",
                 {"internalLoadBalancingMode": "Web, Publishing"},
                 depends_on=(f"{NET}Subnet::snet-ase",)),
        captured(f"{WEB}AppServicePlan", "plan", depends_on=(f"{WEB}AppServiceEnvironment::ase",)),
        captured(f"{WEB}WebApp", "app", depends_on=(f"{WEB}AppServicePlan::plan",)),
    ])
    nodes, edges = parse(mermaid(resources))
    assert "internet" not in nodes
    assert "Web, Publishing" in nodes["n_ase_ilb"]
    assert {("n_snet_ase", "", "n_ase_ilb"), ("n_ase_ilb", "private only", "n_ase"),
            ("n_ase", "hosts", "n_plan"), ("n_plan", "hosts", "n_app")} <= edges


def test_every_edge_joins_declared_nodes(rendered, stacks):
    for stack in stacks:
        for diagram in (summary_graph(rendered[f"{stack}.md"]), labels(rendered[f"{stack}.md"])):
            nodes, edges = parse(diagram)
            assert edges
            for source, _, target in edges:
                assert source in nodes and target in nodes, (stack, source, target)


def summary_graph(rendered: str) -> str:
    """The page's first diagram: the stack at a glance."""
    return rendered.split("```mermaid", 1)[1].split("```", 1)[0]


def labels(rendered: str) -> str:
    """The page's full diagram, folded under the summary."""
    return rendered.split("<details>", 1)[1].split("```mermaid", 1)[1].split("```", 1)[0]


def test_prod_diagram_shows_the_seed_standard_tier(rendered):
    diagram = labels(rendered["prod.md"])
    nodes, edges = parse(diagram)
    for text in ("Internet", "App Service plan", "Deployment slot", "Autoscale",
                 "User-assigned managed identity", "Application Insights", "Log Analytics",
                 "delegated to Microsoft.Web/serverFarms", "postgresqlServer", "vault", "blob",
                 "privatelink.postgres.database.azure.com", "privatelink.vaultcore.azure.net",
                 "privatelink.blob.core.windows.net"):
        assert text in diagram, text
    titles = [label.split("<br/>")[0] for label in nodes.values()]
    assert titles.count("Private endpoint") == 3 and titles.count("Private DNS zone") == 3
    assert sum(1 for _, label, _ in edges if label == "private link") == 3
    assert sum(1 for _, label, _ in edges if label == "DNS zone group") == 3


def test_isolated_diagram_shows_internet_waf_ilb_app(rendered):
    diagram = labels(rendered["isolated.md"])
    assert "App Service Environment v3" in diagram and "Internal load balancer" in diagram
    assert "appserviceenvironment.net" in diagram
    nodes, edges = parse(diagram)
    assert "WAF_v2" in nodes["n_application_gateway"]
    assert "Prevention" in nodes["n_waf_policy"]
    # The only way in: Internet -> gateway (WAF) -> ILB -> ASE -> plan -> app.
    assert {("internet", "HTTPS (HTTP redirects)", "n_application_gateway"),
            ("n_waf_policy", "inspects (WAF)", "n_application_gateway"),
            ("n_application_gateway", "HTTPS to the app's host", "n_ase_ilb"),
            ("n_ase_ilb", "private only", "n_ase"), ("n_ase", "hosts", "n_plan"),
            ("n_plan", "hosts", "n_web_app")} <= edges
    assert [edge for edge in edges if edge[0] == "internet"] == [
        ("internet", "HTTPS (HTTP redirects)", "n_application_gateway")]


def test_a_gateway_in_front_of_a_public_app_is_its_only_internet_entry(captured):
    resources = normalize([
        captured(f"{WEB}WebApp", "app", {"name": "app-x"}),
        captured(f"{NET}WebApplicationFirewallPolicy", "waf",
                 {"policySettings": {"mode": "Prevention"}}),
        captured(f"{NET}ApplicationGateway", "gw",
                 {"sku": {"tier": "WAF_v2"},
                  "backendAddressPools": [{"backendAddresses": [
                      {"fqdn": "app-x.azurewebsites.net"}]}]},
                 depends_on=(f"{NET}WebApplicationFirewallPolicy::waf",)),
    ])
    _, edges = parse(mermaid(resources))
    assert {("internet", "HTTPS (HTTP redirects)", "n_gw"),
            ("n_gw", "HTTPS to the app's host", "n_app"),
            ("n_waf", "inspects (WAF)", "n_gw")} <= edges
    assert ("internet", "HTTPS", "n_app") not in edges


def test_hub_peering_is_drawn_from_the_stacks_vnet(captured):
    hub = ("/subscriptions/s/resourceGroups/rg-hub/providers/Microsoft.Network/"
           "virtualNetworks/vnet-hub")
    resources = normalize([
        captured(f"{NET}VirtualNetwork", "vnet", {"virtualNetworkName": "vnet-x"}),
        captured(f"{NET}VirtualNetworkPeering", "to-hub",
                 {"virtualNetworkName": "vnet-x", "remoteVirtualNetwork": {"id": hub}},
                 depends_on=(f"{NET}VirtualNetwork::vnet",)),
        captured(f"{NET}VirtualNetworkPeering", "from-hub",
                 {"virtualNetworkName": "vnet-hub", "remoteVirtualNetwork": {"id": "vnet-x-id"}},
                 depends_on=(f"{NET}VirtualNetwork::vnet",)),
    ])
    nodes, edges = parse(mermaid(resources))
    assert "vnet-hub" in nodes["hub"]
    assert [edge for edge in edges if "hub" in edge] == [("n_vnet", "peering", "hub")]


def test_dev_diagram_is_public_without_network(rendered):
    diagram = labels(rendered["dev.md"])
    assert "Internet" in diagram
    for absent in ("VNet", "Private endpoint", "Deployment slot", "Autoscale"):
        assert absent not in diagram, absent


def subgraph_members(diagram: str) -> dict[str, list[str]]:
    """subgraph title -> node ids directly inside it (nested subgraphs are their own entries)."""
    members: dict[str, list[str]] = {}
    stack: list[str] = []
    for line in diagram.splitlines():
        stripped = line.strip()
        if stripped.startswith("subgraph "):
            stack.append(stripped.split('["', 1)[1].rstrip('"]'))
            members.setdefault(stack[-1], [])
        elif stripped == "end":
            stack.pop()
        elif (node := NODE.match(line)) and stack:
            members[stack[-1]].append(node.group(1))
    return members


def test_nodes_are_grouped_by_their_component(captured, urn):
    service = urn("my:app:AppService", "svc")
    site = urn("my:app:Site", "app")
    resources = normalize([
        captured("my:app:AppService", "svc"),
        captured("my:app:Site", "app", parent=service),
        captured(f"{WEB}AppServicePlan", "plan", parent=service),
        captured(f"{WEB}WebApp", "app", {"identity": {"type": "SystemAssigned"}}, parent=site,
                 depends_on=(f"{WEB}AppServicePlan::plan",)),
        captured(f"{NET}VirtualNetwork", "vnet"),
    ])
    diagram = mermaid(resources)
    members = subgraph_members(diagram)
    assert members == {"AppService svc": ["n_plan"], "Site app": ["n_app", "n_app_identity"]}
    # Site app is nested in AppService svc; the VNet has no component and stays outside.
    lines = [line.strip() for line in diagram.splitlines()]
    assert lines.index('subgraph g_my_app_AppService__svc["AppService svc"]') < lines.index(
        'subgraph g_my_app_Site__app["Site app"]')
    assert 'n_vnet["VNet<br/>vnet"]' in lines[:lines.index(
        'subgraph g_my_app_AppService__svc["AppService svc"]')]


def test_committed_diagrams_have_a_subgraph_per_drawn_component(rendered):
    members = subgraph_members(labels(rendered["prod.md"]))
    assert members["DataServices data"] == ["n_key_vault", "n_postgres", "n_storage"]
    assert members["Site staging"] == ["n_web_app_staging"]
    # Both sites run as one user-assigned identity made (and granted) before them.
    assert members["SiteIdentities identities"] == ["n_app_identity"]
    assert {f"PrivateLink {key}" for key in ("postgres", "vault", "blob")} <= set(members)
    assert "n_snet_private_endpoints" in members["VirtualNetwork network"]
