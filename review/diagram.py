"""A Mermaid architecture diagram generated from a stack's resources (never drawn by hand).

Nodes are the resources a reviewer cares about (by type); each sits in a subgraph per component
instance it belongs to (from the resources' parents, nested like the components); edges come
from the dependency graph
the program itself produced: when B's inputs use A's outputs, Pulumi records A as a dependency of
B, and a table says how such a pair is drawn. "Connector" resources (DNS zone groups, role
assignments, record sets, VNet links...) are not nodes: they draw an edge between the nodes they
depend on. So a diagram changes exactly when the program's wiring changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from review.model import Resource
from review.resource_types import diagram_roles

# type token -> role, from the one resource-type table. Types without a role are not nodes.
ROLES: Mapping[str, str] = diagram_roles()

TITLES: Mapping[str, str] = {
    "app": "Web app",
    "slot": "Deployment slot",
    "plan": "App Service plan",
    "ase": "App Service Environment v3",
    "autoscale": "Autoscale",
    "insights": "Application Insights",
    "workspace": "Log Analytics",
    "vnet": "VNet",
    "subnet": "Subnet",
    "endpoint": "Private endpoint",
    "postgres": "PostgreSQL flexible server",
    "keyvault": "Key Vault",
    "storage": "Storage account",
    "dnszone": "Private DNS zone",
    "identity": "System-assigned managed identity",
    "uai": "User-assigned managed identity",
    "ilb": "Internal load balancer",
    "internet": "Internet",
    "gateway": "Application Gateway",
    "waf": "WAF policy",
    "hub": "Hub VNet (peered)",
    "script": "Deployment script",
}

DATA_ROLES = ("postgres", "keyvault", "storage")

# (role of the dependency, role of the dependent) -> (from, to, label, target suffix): how a
# direct dependency between two drawn resources is shown. "dep"/"self" name the two ends; the
# suffix points at a derived node (the ASE's ILB sits in the ASE subnet, not the ASE itself).
DIRECT_EDGES: Mapping[tuple[str, str], tuple[str, str, str, str]] = {
    ("plan", "app"): ("dep", "self", "hosts", ""),
    ("uai", "app"): ("self", "dep", "identity", ""),
    ("uai", "slot"): ("self", "dep", "identity", ""),
    ("app", "slot"): ("dep", "self", "slot", ""),
    ("plan", "autoscale"): ("dep", "self", "scaled by", ""),
    ("insights", "app"): ("self", "dep", "telemetry", ""),
    ("insights", "slot"): ("self", "dep", "telemetry", ""),
    ("workspace", "insights"): ("self", "dep", "workspace-based", ""),
    ("vnet", "subnet"): ("dep", "self", "contains", ""),
    ("subnet", "app"): ("self", "dep", "outbound (VNet integration)", ""),
    ("subnet", "slot"): ("self", "dep", "outbound (VNet integration)", ""),
    ("subnet", "endpoint"): ("dep", "self", "", ""),
    ("subnet", "ase"): ("dep", "self", "", "_ilb"),
    ("ase", "plan"): ("dep", "self", "hosts", ""),
    ("dnszone", "endpoint"): ("self", "dep", "DNS", ""),
    ("subnet", "gateway"): ("dep", "self", "", ""),
    ("waf", "gateway"): ("dep", "self", "inspects (WAF)", ""),
    **{(data, "endpoint"): ("self", "dep", "private link", "") for data in DATA_ROLES},
}

# Well-known built-in role definition GUIDs, so role-assignment edges read as roles.
BUILT_IN_ROLES: Mapping[str, str] = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "de139f84-1756-47ae-9be6-808fbbe84772": "Website Contributor",
}

SCRIPT_TYPE = "azure-native:resources:AzureCliScript"


@dataclass(frozen=True, order=True)
class Edge:
    source: str
    target: str
    label: str = ""
    dashed: bool = False


class Diagram:
    """Collects nodes and edges, then renders them in a stable order."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.by_ref = {r.ref: r for r in resources}
        self.roles = {ref: ROLES[r.type] for ref, r in self.by_ref.items() if r.type in ROLES}
        self.labels: dict[str, str] = {}
        self.groups: dict[str, str | None] = {}  # node id -> ref of its component (None: none)
        self.edges: set[Edge] = set()
        self.hub_ids: set[str] = set()  # the remote VNet ids of the stack's hub peerings

    # nodes -------------------------------------------------------------------------------
    def add_node(self, node_id: str, role: str, detail: str = "",
                 group: str | None = None) -> None:
        title = TITLES[role]
        self.labels[node_id] = f"{title}<br/>{detail}" if detail else title
        self.groups[node_id] = group

    def node_id(self, ref: str) -> str:
        return "n_" + re.sub(r"[^A-Za-z0-9]", "_", ref.split("::", 1)[1])

    def add_resource_nodes(self) -> None:
        for ref, role in self.roles.items():
            resource = self.by_ref[ref]
            self.add_node(self.node_id(ref), role, describe(role, resource), resource.parent)

    def add_derived_nodes(self) -> None:
        """Nodes that are properties of resources, not resources: identity, ILB, Internet."""
        has_ase = any(role == "ase" for role in self.roles.values())
        # With a gateway, the Internet reaches the app only through it (add_gateway_edges).
        has_gateway = any(role == "gateway" for role in self.roles.values())
        for ref, role in sorted(self.roles.items()):
            resource = self.by_ref[ref]
            if role in ("app", "slot") and has_system_identity(resource):
                identity = self.node_id(ref) + "_identity"
                self.add_node(identity, "identity", resource.name, resource.parent)
                self.edges.add(Edge(self.node_id(ref), identity, "identity"))
            if role == "app" and not has_ase and not has_gateway:
                self.add_node("internet", "internet")
                self.edges.add(Edge("internet", self.node_id(ref), "HTTPS"))
            if role == "ase":
                ilb = self.node_id(ref) + "_ilb"
                mode = str(resource.inputs.get("internalLoadBalancingMode", ""))
                self.add_node(ilb, "ilb", mode, resource.parent)
                self.edges.add(Edge(ilb, self.node_id(ref), "private only"))

    def add_gateway_edges(self) -> None:
        """Internet -> gateway -> its backend: the ASE's ILB, or the app when there is no ASE.

        The backend is a host name, not a dependency: <app>.<ase>.appserviceenvironment.net or
        <app>.azurewebsites.net, matched against the drawn ASE and apps by name.
        """
        for ref, role in sorted(self.roles.items()):
            if role != "gateway":
                continue
            self.add_node("internet", "internet")
            self.edges.add(Edge("internet", self.node_id(ref), "HTTPS (HTTP redirects)"))
            for host in backend_hosts(self.by_ref[ref]):
                target = self.backend_node(host)
                if target:
                    self.edges.add(Edge(self.node_id(ref), target, "HTTPS to the app's host"))

    def backend_node(self, host: str) -> str | None:
        labels = host.split(".")
        for ref, role in sorted(self.roles.items()):
            name = self.by_ref[ref].inputs.get("name")
            if role == "ase" and len(labels) > 1 and name == labels[1]:
                return self.node_id(ref) + "_ilb"
            if role == "app" and name == labels[0] and not host.endswith(
                    ".appserviceenvironment.net"):
                return self.node_id(ref)
        return None

    def add_hub_edges(self, peering: Resource) -> None:
        """The stack side of a hub peering: VNet -> the hub VNet (not a resource of the stack)."""
        for vnet in self.deps_with_role(peering, "vnet"):
            if peering.inputs.get("virtualNetworkName") != self.by_ref[vnet].inputs.get(
                    "virtualNetworkName"):
                continue
            remote = str((peering.inputs.get("remoteVirtualNetwork") or {}).get("id", ""))
            self.add_node("hub", "hub", remote.rsplit("/", 1)[-1])
            self.hub_ids.add(remote.lower())
            self.edges.add(Edge(self.node_id(vnet), "hub", "peering", dashed=True))

    def add_hub_links(self) -> None:
        """A private DNS zone linked to the hub VNet: resolvable from behind the hub too."""
        for resource in self.by_ref.values():
            if not resource.type.endswith(":VirtualNetworkLink"):
                continue
            linked = str((resource.inputs.get("virtualNetwork") or {}).get("id", "")).lower()
            if linked in self.hub_ids:
                for zone in self.deps_with_role(resource, "dnszone"):
                    self.edges.add(Edge("hub", self.node_id(zone), "resolves via", dashed=True))

    def add_script(self, script: Resource) -> None:
        """A deployment script: a node in its component, run as the deployer's identity in its
        subnet, pointed at what it changes (PostgreSQL's roles, or the site it deploys to)."""
        node = self.node_id(script.ref)
        # Drawn in the component around its one-script wrapper (the Deployer).
        wrapper = script.parent
        self.add_node(node, "script", wrapper.split("::", 1)[-1] if wrapper else script.name,
                      self.component_parent(wrapper) if wrapper else None)
        sites = self.site_identities()
        for identity in self.deps_with_role(script, "uai"):
            if identity not in sites:
                self.edges.add(Edge(self.node_id(identity), node, "runs as"))
        for subnet in self.deps_with_role(script, "subnet"):
            self.edges.add(Edge(node, self.node_id(subnet), "runs in"))
        databases = [d for d in script.depends_on if self.roles.get(d) == "postgres"]
        targets = databases or ([d for d in script.depends_on if self.roles.get(d) == "slot"]
                                or [d for d in script.depends_on if self.roles.get(d) == "app"])
        label = "SQL: site roles" if databases else "zip deploy"
        for target in targets:
            self.edges.add(Edge(node, self.node_id(target), label))
        # What the SQL script gives each site identity: a least-privilege PostgreSQL role.
        for principal in self.deps_with_role(script, "uai") if databases else ():
            if principal in sites:
                for database in databases:
                    self.edges.add(Edge(self.node_id(principal), self.node_id(database),
                                        "PostgreSQL role (Entra token)"))

    # edges -------------------------------------------------------------------------------
    def add_dependency_edges(self) -> None:
        for ref, resource in self.by_ref.items():
            if ref not in self.roles:
                self.add_connector_edges(resource)
                continue
            for dep in resource.depends_on:
                if dep in self.roles:
                    self.add_direct_edge(dep, ref)

    def add_direct_edge(self, dep: str, ref: str) -> None:
        rule = DIRECT_EDGES.get((self.roles[dep], self.roles[ref]))
        if rule is None:
            return
        ends = {"dep": dep, "self": ref}
        source, target, label = ends[rule[0]], ends[rule[1]], rule[2]
        self.edges.add(Edge(self.node_id(source), self.node_id(target) + rule[3], label))

    def deps_with_role(self, resource: Resource, *roles: str) -> list[str]:
        """Drawn dependencies with one of `roles`, looking through one undrawn resource.

        A role assignment scoped to a blob container depends on the container, which is not
        drawn; the container depends on its storage account, which is.
        """
        found = set()
        for dep in resource.depends_on:
            if self.roles.get(dep) in roles:
                found.add(dep)
            elif dep in self.by_ref and dep not in self.roles:
                found.update(d for d in self.by_ref[dep].depends_on if self.roles.get(d) in roles)
        return sorted(found)

    def add_connector_edges(self, connector: Resource) -> None:
        """Edges drawn for resources that only link two drawn resources together."""
        kind = connector.type.rsplit(":", 1)[-1]
        if kind == "PrivateDnsZoneGroup":
            self.link(connector, ("endpoint",), ("dnszone",), "DNS zone group")
        elif kind == "RoleAssignment":
            self.link_identity(connector, DATA_ROLES, role_label(connector))
        elif kind.startswith("Administrator"):
            self.link_identity(connector, ("postgres",), "Entra admin")
        elif kind == "VirtualNetworkLink":
            self.link(connector, ("vnet",), ("dnszone",), "resolves via", dashed=True)
        elif kind == "PrivateRecordSet":
            self.link(connector, ("ase",), ("dnszone",), "A records", suffix="_ilb")
        elif kind == "Command" and self.deps_with_role(connector, "postgres"):
            # The SQL step that creates the identity's least-privilege PostgreSQL role.
            self.link_identity(connector, ("postgres",), "PostgreSQL role (Entra token)")
        elif kind == "AzureCliScript":
            self.add_script(connector)
        elif kind == "VirtualNetworkPeering":
            self.add_hub_edges(connector)
        elif kind.startswith("WebAppSwiftVirtualNetworkConnection"):
            self.link(connector, ("app", "slot"), ("subnet",), "outbound (VNet integration)")

    def link(self, connector: Resource, sources: tuple[str, ...], targets: tuple[str, ...],
             label: str, *, dashed: bool = False, suffix: str = "") -> None:
        for source in self.deps_with_role(connector, *sources):
            for target in self.deps_with_role(connector, *targets):
                self.edges.add(Edge(self.node_id(source) + suffix, self.node_id(target),
                                    label, dashed))

    def link_identity(self, connector: Resource, targets: tuple[str, ...], label: str) -> None:
        """Identity -> data service: the principal is a user-assigned identity the connector
        uses, or the system-assigned identity of an app or slot it uses."""
        principals = [self.node_id(p) for p in self.deps_with_role(connector, "uai")]
        principals += [self.node_id(p) + "_identity"
                       for p in self.deps_with_role(connector, "app", "slot")
                       if has_system_identity(self.by_ref[p])]
        for principal in principals:
            for target in self.deps_with_role(connector, *targets):
                self.edges.add(Edge(principal, self.node_id(target), label))

    def site_identities(self) -> set[str]:
        """The user-assigned identities some app or slot runs as."""
        return {dep for ref, role in self.roles.items() if role in ("app", "slot")
                for dep in self.by_ref[ref].depends_on if self.roles.get(dep) == "uai"}

    # rendering ---------------------------------------------------------------------------
    def component_parent(self, ref: str) -> str | None:
        """The component a component sits in (None: directly under the stack)."""
        component = self.by_ref.get(ref)
        return component.parent if component is not None else None

    def render_group(self, group: str | None, depth: int, lines: list[str]) -> None:
        """The nodes of `group`, then one nested subgraph per child component with nodes."""
        indent = "  " * (depth + 2)
        lines.extend(f'{indent}{n}["{escape(self.labels[n])}"]'
                     for n in sorted(n for n, g in self.groups.items() if g == group))
        for component in sorted({c for c in self.drawn_components()
                                 if self.component_parent(c) == group}):
            lines.append(f'{indent}subgraph {self.group_id(component)}'
                         f'["{escape(component_title(component))}"]')
            self.render_group(component, depth + 1, lines)
            lines.append(f"{indent}end")

    def drawn_components(self) -> set[str]:
        """Components holding a node, and the components around them."""
        found: set[str] = set()
        for group in self.groups.values():
            while group is not None and group not in found:
                found.add(group)
                group = self.component_parent(group)
        return found

    @staticmethod
    def group_id(component: str) -> str:
        return "g_" + re.sub(r"[^A-Za-z0-9]", "_", component)

    def render(self) -> str:
        lines = ["flowchart TB"]
        self.render_group(None, 0, lines)
        known = set(self.labels)
        lines.extend(edge_line(edge) for edge in sorted(self.edges)
                     if edge.source in known and edge.target in known)
        return "\n".join(lines) + "\n"


def edge_line(edge: Edge) -> str:
    arrow = "-.->" if edge.dashed else "-->"
    label = f'|"{escape(edge.label)}"|' if edge.label else ""
    return f"  {edge.source} {arrow}{label} {edge.target}"


def component_title(ref: str) -> str:
    """restaurant-review:app:Site::staging -> Site staging; Telemetry::telemetry -> Telemetry."""
    type_token, name = ref.split("::", 1)
    kind = type_token.rsplit(":", 1)[-1]
    same = re.sub(r"[^a-z0-9]", "", name.lower()) == kind.lower()
    return kind if same else f"{kind} {name}"


def escape(text: str) -> str:
    """Mermaid labels are quoted: a double quote has to become its entity."""
    return text.replace('"', "#quot;")


def has_system_identity(resource: Resource) -> bool:
    identity = resource.inputs.get("identity") or {}
    return "SystemAssigned" in str(identity.get("type", ""))


def role_label(assignment: Resource) -> str:
    definition = str(assignment.inputs.get("roleDefinitionId", ""))
    guid = definition.rsplit("/", 1)[-1].lower()
    return BUILT_IN_ROLES.get(guid, "role assignment")


def backend_hosts(gateway: Resource) -> list[str]:
    return sorted({str(address["fqdn"])
                   for pool in gateway.inputs.get("backendAddressPools") or []
                   for address in pool.get("backendAddresses") or [] if address.get("fqdn")})


def describe(role: str, resource: Resource) -> str:
    """The one or two facts that identify a node at a glance (SKU, CIDR, zone name...)."""
    inputs = resource.inputs
    facts: list[str] = [resource.name]
    if role == "plan":
        sku = inputs.get("sku") or {}
        facts.append(" ".join(str(sku[k]) for k in ("tier", "name") if sku.get(k)))
    elif role == "slot":
        facts.append(str(inputs.get("slot", "")))
    elif role == "subnet":
        facts.append(str(inputs.get("addressPrefix", "")))
        delegations = inputs.get("delegations") or []
        facts.extend(f"delegated to {d.get('serviceName')}" for d in delegations)
    elif role == "vnet":
        facts.extend((inputs.get("addressSpace") or {}).get("addressPrefixes") or [])
    elif role == "endpoint":
        for connection in inputs.get("privateLinkServiceConnections") or []:
            facts.extend(connection.get("groupIds") or [])
    elif role == "dnszone":
        facts.append(str(inputs.get("privateZoneName", "")))
    elif role == "postgres":
        facts.append(f"PostgreSQL {inputs.get('version', '')}".strip())
    elif role == "gateway":
        facts.append(str((inputs.get("sku") or {}).get("tier", "")))
        scale = inputs.get("autoscaleConfiguration") or {}
        if scale:
            facts.append(f"{scale.get('minCapacity', '?')}-{scale.get('maxCapacity', '?')} "
                         "instances")
    elif role == "waf":
        facts.append(str((inputs.get("policySettings") or {}).get("mode", "")))
        facts.extend(f"{s.get('ruleSetType')} {s.get('ruleSetVersion')}"
                     for s in (inputs.get("managedRules") or {}).get("managedRuleSets") or [])
    elif role == "autoscale":
        for profile in inputs.get("profiles") or []:
            capacity = profile.get("capacity") or {}
            facts.append(f"{capacity.get('minimum', '?')}-{capacity.get('maximum', '?')} instances")
    return "<br/>".join(f for f in facts if f)


def build(resources: Iterable[Resource]) -> Diagram:
    """Every node and edge of the full diagram."""
    diagram = Diagram(resources)
    diagram.add_resource_nodes()
    diagram.add_derived_nodes()
    diagram.add_gateway_edges()
    diagram.add_dependency_edges()
    diagram.add_hub_links()
    return diagram


def mermaid(resources: Iterable[Resource]) -> str:
    return build(resources).render()
