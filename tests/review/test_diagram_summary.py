"""The at-a-glance diagram: the seed's tiers, every drawn resource once, narrow when rendered."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from review.diagram import build, component_title, mermaid
from review.diagram_summary import Summary, summary
from review.model import normalize
from review.stacks import REPO_ROOT
from tests.review.test_diagram import NET, parse, subgraph_members

MMDC = REPO_ROOT / "devtools" / "node_modules" / ".bin" / "mmdc"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MAX_WIDTH = 1200  # px: beyond this GitHub shrinks the picture until the labels can't be read
HUB = "/subscriptions/h/resourceGroups/rg-hub/providers/Microsoft.Network/virtualNetworks/vnet-hub"


def first_mermaid(page: str) -> str:
    return page.split("```mermaid\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="module")
def summaries(rendered, stacks) -> dict[str, str]:
    return {stack: first_mermaid(rendered[f"{stack}.md"]) for stack in stacks}


def test_the_page_opens_with_the_summary_and_folds_the_full_graph(rendered, resources_by_stack):
    for stack, resources in resources_by_stack.items():
        page = rendered[f"{stack}.md"]
        assert first_mermaid(page) == summary(resources)
        full = page.split("<details>", 1)[1].split("</details>", 1)[0]
        assert mermaid(resources) in full


def test_every_drawn_resource_is_in_exactly_one_summary_node(resources_by_stack):
    for stack, resources in resources_by_stack.items():
        full = build(resources)
        folded = Summary(full).members
        placed = [node for members in folded.values() for node in members]
        assert sorted(placed) == sorted(full.labels), stack
        nodes, edges = parse(summary(resources))
        assert set(nodes) == set(folded), stack
        assert len(set(nodes.values())) == len(nodes), stack  # no label drawn twice
        joined = {end for source, _, target in edges for end in (source, target)}
        assert joined == set(nodes), (stack, set(nodes) - joined)  # nothing floats alone


def test_prod_reads_like_the_seed_standard_tier(summaries):
    nodes, edges = parse(summaries["prod"])
    flow = {(source, target) for source, _, target in edges}
    assert {("internet", "s_app"), ("s_plan", "s_app"), ("s_app", "s_vnet"),
            ("s_vnet", "n_snet_private_endpoints"), ("n_snet_private_endpoints", "n_postgres"),
            ("n_snet_private_endpoints", "n_key_vault"), ("n_snet_private_endpoints", "n_storage"),
            ("n_postgres", "s_dns"), ("s_app", "s_identities"), ("s_app", "s_monitoring")} <= flow
    assert "production + staging slot" in nodes["s_app"]
    assert "P1v3 · 2-6 instances" in nodes["s_plan"]
    assert "blob · postgresqlServer · vault" in nodes["n_snet_private_endpoints"]


def test_isolated_enters_only_through_the_gateway(summaries):
    _, edges = parse(summaries["isolated"])
    assert [e for e in edges if e[0] == "internet"] == [("internet", "HTTPS", "s_gateway")]
    assert {("s_gateway", "HTTPS", "s_ase"), ("s_ase", "hosts", "s_plan"),
            ("s_plan", "hosts", "s_app")} <= edges


def test_without_private_endpoints_the_app_reaches_each_data_service(summaries):
    """dev: the scripts' SQL step joins PostgreSQL too, but the app's own way in must show."""
    _, edges = parse(summaries["dev"])
    assert {("s_identities", "PostgreSQL role", "n_postgres"),
            ("s_identities", "Key Vault Secrets User", "n_key_vault"),
            ("s_identities", "Storage Blob Data Contributor", "n_storage")} <= edges


def test_the_deployment_scripts_are_drawn_with_what_they_change(summaries):
    for stack, diagram in summaries.items():
        nodes, edges = parse(diagram)
        assert "database-roles · deploy" in nodes["s_deploy"], stack
        assert {("s_deploy", "zip deploy", "s_app"), ("s_deploy", "SQL roles", "n_postgres")} <= (
            edges), stack


def test_a_hub_peering_and_its_dns_links_are_drawn(captured):
    zone = "azure-native:privatedns:PrivateZone::dns-blob"
    resources = normalize([
        captured(f"{NET}VirtualNetwork", "vnet", {"virtualNetworkName": "vnet-x"}),
        captured("azure-native:privatedns:PrivateZone", "dns-blob",
                 {"privateZoneName": "privatelink.blob.core.windows.net"}),
        captured(f"{NET}VirtualNetworkPeering", "to-hub",
                 {"virtualNetworkName": "vnet-x", "remoteVirtualNetwork": {"id": HUB}},
                 depends_on=(f"{NET}VirtualNetwork::vnet",)),
        captured("azure-native:privatedns:VirtualNetworkLink", "dns-blob-hub-link",
                 {"virtualNetwork": {"id": HUB}}, depends_on=(zone,)),
    ])
    _, full_edges = parse(mermaid(resources))
    assert {("n_vnet", "peering", "hub"), ("hub", "resolves via", "n_dns_blob")} <= full_edges
    nodes, edges = parse(summary(resources))
    assert "vnet-hub" in nodes["hub"]
    assert {("s_vnet", "peering", "hub"), ("hub", "resolves via", "s_dns")} <= edges


def test_group_titles_never_repeat_the_kind():
    assert component_title("restaurant-review:monitoring:Telemetry::telemetry") == "Telemetry"
    assert component_title("restaurant-review:app:AppService::app-service") == "AppService"
    assert component_title("restaurant-review:app:Site::staging") == "Site staging"


def test_committed_full_graphs_have_no_repeated_group_titles(rendered, stacks):
    for stack in stacks:
        full = rendered[f"{stack}.md"].split("<details>", 1)[1]
        for title in subgraph_members(first_mermaid(full)):
            kind, _, name = title.partition(" ")
            assert re.sub(r"[^a-z0-9]", "", name.lower()) != kind.lower(), (stack, title)


@pytest.mark.slow  # mmdc from devtools/node_modules, with Debian's Chromium
def test_each_summary_renders_at_most_1200_px_wide(summaries, tmp_path):
    """One mmdc run renders every stack's summary (Debian's Chromium, no downloaded browser)."""
    if not MMDC.exists() or CHROMIUM is None:
        pytest.fail("mermaid-cli or Chromium is missing: run `make deps`")
    config = tmp_path / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": CHROMIUM,
                                  "args": ["--no-sandbox", "--disable-gpu"]}))
    stacks = sorted(summaries)
    source = tmp_path / "summaries.md"
    source.write_text("".join(f"```mermaid\n{summaries[s]}```\n\n" for s in stacks))
    result = subprocess.run([str(MMDC), "--quiet", "-p", str(config), "-i", str(source),
                             "-o", str(tmp_path / "summary.svg")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    widths = {}
    for index, stack in enumerate(stacks, start=1):
        svg = (tmp_path / f"summary-{index}.svg").read_text()
        widths[stack] = float(re.search(r'viewBox="[\d.-]+ [\d.-]+ ([\d.]+) ', svg).group(1))
    assert all(width <= MAX_WIDTH for width in widths.values()), widths
