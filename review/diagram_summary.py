"""The stack at a glance: the full diagram folded into the seed's tiers, narrow enough to read.

Internet -> ingress -> App Service -> VNet -> private endpoints -> data, with deployment and
monitoring beside them (the shape of the tier diagrams in the App Service Python guide). It is
derived from the full diagram (review/diagram.py), never drawn by hand: every drawn resource
lands in exactly one summary node, nodes of one kind that read as one thing (the plan and its
autoscale, the site identities, the DNS zones, the gateway and its WAF policy) become one node,
and the full diagram's edges are mapped onto the merged nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from review.diagram import BUILT_IN_ROLES, TITLES, Diagram, Edge, build, edge_line, escape
from review.model import Resource

# Tighter spacing than Mermaid's default keeps the widest row under ~1,200 px. No subgraphs:
# Mermaid's layout puts clusters side by side, which is what made the full diagrams so wide.
LAYOUT = '%%{init: {"flowchart": {"nodeSpacing": 20, "rankSpacing": 40, "wrappingWidth": 160}}}%%'
# The tiers, top to bottom: nodes are declared in this order (Internet, DNS and the hub first).
TIERS = ("ingress", "app", "network", "data", "operations")
ROLE_TIERS: Mapping[str, str] = {
    "gateway": "ingress", "waf": "ingress",
    "ase": "app", "ilb": "app", "plan": "app", "autoscale": "app", "app": "app", "slot": "app",
    "identity": "app", "uai": "app",
    "vnet": "network", "subnet": "network", "endpoint": "network",
    "postgres": "data", "keyvault": "data", "storage": "data",
    "insights": "operations", "workspace": "operations", "script": "operations",
    "deployer": "operations",
}
# Roles folded into one node per stack: summary node id, title.
MERGED: Mapping[str, tuple[str, str]] = {
    "gateway": ("s_gateway", "Application Gateway"), "waf": ("s_gateway", "Application Gateway"),
    "ase": ("s_ase", "App Service Environment v3"), "ilb": ("s_ase", "App Service Environment v3"),
    "plan": ("s_plan", "App Service plan"), "autoscale": ("s_plan", "App Service plan"),
    "identity": ("s_identities", "Managed identities"),
    "uai": ("s_identities", "Managed identities"),
    "dnszone": ("s_dns", "Private DNS zones"),
    "vnet": ("s_vnet", "VNet"),
    "insights": ("s_monitoring", "Application Insights"),
    "workspace": ("s_monitoring", "Application Insights"),
    "app": ("s_app", "Web app"), "slot": ("s_app", "Web app"),
    "deployer": ("s_deploy", "Deployment scripts"), "script": ("s_deploy", "Deployment scripts"),
}
# Edges the summary leaves to the full diagram: who may use which data (one edge per role
# assignment) and the wiring inside a tier. The way in, the private path to the data, DNS, the
# hub and the deployment scripts stay.
LEFT_TO_FULL = frozenset({"PostgreSQL role (Entra token)", "Entra admin", "workspace-based",
                          "scaled by", "A records", *BUILT_IN_ROLES.values(),
                          "role assignment"})
# The app's outbound subnet is drawn as "app -> VNet" (as in the seed), so the picture reads
# top to bottom: app -> VNet -> subnets -> private endpoints -> data.
OUTBOUND = "outbound (VNet integration)"
PRIVATE_PATH = "private endpoint"
# Shorter edge labels: the summary has room for a word, the full diagram says the rest.
SHORT_LABELS = {OUTBOUND: "outbound", "HTTPS (HTTP redirects)": "HTTPS",
                "HTTPS to the app's host": "HTTPS", "DNS zone group": "DNS",
                "SQL: site roles": "SQL roles", "private link": PRIVATE_PATH,
                "PostgreSQL role (Entra token)": "PostgreSQL role"}
# How a merged member reads on its node's second line: its first fact with a prefix, or words.
FACT_PREFIX = {"waf": "WAF ", "ilb": "ILB "}
MEMBER_WORDS = {"workspace": "+ Log Analytics"}


class Summary:
    def __init__(self, full: Diagram) -> None:
        self.full = full
        self.roles = self.node_roles()
        self.members: dict[str, list[str]] = {}  # summary node -> full nodes in it
        for node in sorted(full.labels):
            self.members.setdefault(self.summary_id(node), []).append(node)

    def node_roles(self) -> dict[str, str]:
        """Full-diagram node id -> role; the deployer's identity and storage are 'deployer'."""
        roles = {"internet": "internet", "hub": "hub"}
        for ref, role in self.full.roles.items():
            roles[self.full.node_id(ref)] = role
        for node in self.full.labels:
            if node.endswith("_identity") and node not in roles:
                roles[node] = "identity"
            elif node.endswith("_ilb"):
                roles[node] = "ilb"
            elif node not in roles:
                roles[node] = "script"
        site_identities = {self.full.node_id(ref) for ref in self.full.site_identities()}
        granted = {edge.target for edge in self.full.edges if edge.source in site_identities}
        for node, role in roles.items():
            if (role == "uai" and node not in site_identities) or (
                    role == "storage" and node not in granted):
                roles[node] = "deployer"
        return roles

    def summary_id(self, node: str) -> str:
        role = self.roles.get(node, "")
        if role in MERGED:
            return MERGED[role][0]
        if role == "subnet" and not self.endpoints_in(node):
            return "s_vnet"  # listed in the VNet's label
        if role == "endpoint":  # drawn as its subnet, as in the seed
            return next((e.source for e in sorted(self.full.edges)
                         if e.target == node and self.roles.get(e.source) == "subnet"), node)
        return node

    def endpoints_in(self, subnet: str) -> list[str]:
        return sorted(e.target for e in self.full.edges
                      if e.source == subnet and self.roles.get(e.target) == "endpoint")

    # labels -----------------------------------------------------------------------------
    def facts(self, node: str) -> list[str]:
        """The full node's label minus its title and resource name."""
        parts = self.full.labels[node].split("<br/>")[1:]
        name = node.removeprefix("n_").replace("_", "-")
        return [p for p in parts if p.replace("_", "-") != name]

    def label(self, summary_node: str) -> str:
        members = self.members[summary_node]
        role = self.summary_role(summary_node)
        if summary_node in {merged for merged, _ in MERGED.values()}:
            title = next(title for merged, title in MERGED.values() if merged == summary_node)
            return "<br/>".join([title, *self.merged_facts(members)])
        if role == "subnet":
            name = self.full.labels[summary_node].split("<br/>")[1]
            services = [self.facts(e)[0] for e in self.endpoints_in(summary_node)]
            return "<br/>".join(["Private endpoints", " · ".join(services),
                                 f"in {name} {self.facts(summary_node)[0]}"])
        facts = self.facts(members[0])[:1]
        if role == "app":
            facts = ["production"]
        return "<br/>".join([TITLES.get(role, role), *facts])

    def merged_facts(self, members: list[str]) -> list[str]:
        role_members = [(self.roles[m], m) for m in members]
        roles = {role for role, _ in role_members}
        if roles & {"script", "deployer"}:
            scripts = sorted(self.facts(m)[0] for role, m in role_members if role == "script")
            return [" · ".join(scripts), "as the deployer identity"]
        if roles & {"app", "slot"}:
            slots = sorted(self.facts(m)[0] for role, m in role_members if role == "slot")
            return [" + ".join(["production", *(f"{slot} slot" for slot in slots)])]
        if "vnet" in roles:
            spaces = [f for role, m in role_members if role == "vnet" for f in self.facts(m)]
            subnets = [self.full.labels[m].split("<br/>")[1] + " " + self.facts(m)[0]
                       for role, m in role_members if role == "subnet"]
            return [*spaces, *subnets]
        if roles & {"identity", "uai"}:
            return [" · ".join(sorted(self.full.labels[m].split("<br/>")[1]
                                      for _, m in role_members))]
        if roles == {"dnszone"}:
            zones = sorted(self.facts(m)[0] for _, m in role_members)
            private = [z.split(".")[1] for z in zones if z.startswith("privatelink.")]
            others = [z for z in zones if not z.startswith("privatelink.")]
            return [*(["privatelink: " + ", ".join(private)] if private else []), *others]
        facts = []
        order = list(MERGED)  # the node's own kind first: "P1v3 · 2-6 instances"
        for role, member in sorted(role_members, key=lambda rm: (order.index(rm[0]), rm[1])):
            first = (self.facts(member) or [""])[0]
            if role in MEMBER_WORDS:
                facts.append(MEMBER_WORDS[role])
            elif first:
                facts.append(FACT_PREFIX.get(role, "") + first)
        return [" · ".join(facts)] if facts else []

    # edges ------------------------------------------------------------------------------
    def edges(self) -> list[Edge]:
        """The full diagram's edges between different summary nodes, one per pair. An edge
        left to the full diagram still shows when it is all that joins a node, or when it is
        how the app reaches data that has no private endpoint (dev's Key Vault, storage and
        PostgreSQL, which the deployment scripts' SQL step also joins)."""
        kept: dict[tuple[str, str], Edge] = {}
        spare: dict[tuple[str, str], Edge] = {}
        for edge in sorted(self.full.edges):
            if edge.source not in self.full.labels or edge.target not in self.full.labels:
                continue
            label = SHORT_LABELS.get(edge.label, edge.label)
            source, target, label = self.into_vnet(self.dns_from(edge), edge.target, label)
            if source == target or (source == "s_vnet" and target == "s_dns"):
                continue  # inside one node, or the VNet's own zone links
            chosen = spare if edge.label in LEFT_TO_FULL else kept
            chosen.setdefault((source, target), Edge(source, target, label, edge.dashed))
        joined = {end for pair in kept for end in pair}
        private = {target for (_, target), edge in kept.items() if edge.label == PRIVATE_PATH}
        for pair, edge in spare.items():
            without_private_path = self.tier(pair[1]) == "data" and pair[1] not in private
            if pair not in kept and (not set(pair) <= joined or without_private_path):
                kept[pair] = edge
        return [kept[pair] for pair in sorted(kept)]

    def dns_from(self, edge: Edge) -> str:
        """A private endpoint's DNS record is drawn from the data service it reaches (as in the
        seed: Key Vault -> private DNS), which puts the zones below the data."""
        if edge.label != "DNS zone group":
            return edge.source
        return next((e.target for e in sorted(self.full.edges)
                     if e.source == edge.source and e.label == "private link"), edge.source)

    def into_vnet(self, source: str, target: str, label: str) -> tuple[str, str, str]:
        """Summary ends of a full edge. What sits in a subnet points at the VNet (the subnets
        hang below it), so the picture reads top to bottom: ingress and app -> VNet -> subnets
        -> private endpoints."""
        network = ("vnet", "subnet")
        for inside, other in ((source, target), (target, source)):
            if self.roles.get(inside) in network and self.roles.get(other) not in (
                    *network, "endpoint", "dnszone", "hub"):
                return self.summary_id(other), "s_vnet", label or "in"
        return self.summary_id(source), self.summary_id(target), label

    def summary_role(self, summary_node: str) -> str:
        """The role of the node a summary node is named after (a subnet, not its endpoints)."""
        members = self.members.get(summary_node)
        if not members:
            return ""
        return self.roles.get(summary_node if summary_node in members else members[0], "")

    def tier(self, summary_node: str) -> str | None:
        members = self.members.get(summary_node)
        return ROLE_TIERS.get(self.summary_role(summary_node)) if members else None

    # rendering --------------------------------------------------------------------------
    def render(self) -> str:
        order = {tier: index for index, tier in enumerate((None, *TIERS))}
        nodes = sorted(self.members, key=lambda n: (order[self.tier(n)], n))
        lines = [LAYOUT, "flowchart TB"]
        lines.extend(f'  {node}["{escape(self.label(node))}"]' for node in nodes)
        lines.extend(edge_line(edge) for edge in self.edges())
        return "\n".join(lines) + "\n"


def summary(resources: Iterable[Resource]) -> str:
    """The at-a-glance Mermaid diagram of one stack."""
    return Summary(build(resources)).render()
