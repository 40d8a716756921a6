"""VNet with one subnet per role, each behind its own NSG (standard and isolated tiers)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network

from infra import config
from infra.context import Context


def _allow_from_vnet(name: str, priority: int, ports: list[str]) -> network.SecurityRuleArgs:
    return network.SecurityRuleArgs(
        name=name,
        priority=priority,
        direction="Inbound",
        access="Allow",
        protocol="Tcp",
        source_address_prefix="VirtualNetwork",
        source_port_range="*",
        destination_address_prefix="VirtualNetwork",
        destination_port_ranges=ports,
    )


def _deny_inbound(name: str, priority: int, source: str) -> network.SecurityRuleArgs:
    return network.SecurityRuleArgs(
        name=name,
        priority=priority,
        direction="Inbound",
        access="Deny",
        protocol="*",
        source_address_prefix=source,
        source_port_range="*",
        destination_address_prefix="*",
        destination_port_range="*",
    )


def _private_endpoint_rules() -> list[network.SecurityRuleArgs]:
    # Only clients inside the VNet reach the data services' private endpoints, only on their ports.
    return [
        _allow_from_vnet("allow-vnet-to-data-services", 100, ["443", "5432"]),
        _deny_inbound("deny-all-other-inbound", 4096, source="*"),
    ]


def _ase_rules() -> list[network.SecurityRuleArgs]:
    # The ILB answers HTTP(S) for the VNet (and peered/on-premises networks routed into it);
    # nothing arrives from the internet because the ASE has no public inbound address.
    return [
        _allow_from_vnet("allow-vnet-https", 100, ["80", "443"]),
        _deny_inbound("deny-internet-inbound", 4000, source="Internet"),
    ]


def _nsg(ctx: Context, role: str, rules: list[network.SecurityRuleArgs],
         parent: pulumi.Resource) -> network.NetworkSecurityGroup:
    return network.NetworkSecurityGroup(
        f"nsg-{role}",
        network_security_group_name=f"nsg-{ctx.names.base}-{role}",
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        security_rules=rules,
        tags=ctx.tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class VirtualNetworkArgs:
    ctx: Context
    addresses: config.Network  # the VNet's address space and each subnet's prefix
    # The isolated tier: a subnet for the ASE instead of one for VNet integration.
    ase: bool = False


class VirtualNetwork(pulumi.ComponentResource):
    """The VNet and its subnets: private endpoints, plus app integration (standard) or the ASE
    (isolated), each subnet behind its own NSG."""

    vnet: network.VirtualNetwork
    private_endpoint_subnet: network.Subnet
    integration_subnet: network.Subnet | None  # standard: regional VNet integration
    ase_subnet: network.Subnet | None  # isolated: the ASE v3 lives here
    # Delegated to container instances: the deployment scripts run here (infra/deployer.py).
    script_subnet: network.Subnet
    # The last write to the VNet so far: Azure takes one write per VNet at a time, so every
    # later subnet or peering on this VNet waits for it (and becomes the new last write).
    last_write: pulumi.Resource

    def __init__(self, name: str, args: VirtualNetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:network:VirtualNetwork", name, None, opts)
        ctx = args.ctx
        net = args.addresses
        self.vnet = network.VirtualNetwork(
            "vnet",
            virtual_network_name=ctx.names.vnet,
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[net.address_space]),
            tags=ctx.tags,
            # Subnets are separate resources; without this the VNet would try to own them too.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["subnets"]),
        )
        self.private_endpoint_subnet = self._subnet(
            ctx, "private-endpoints", net.private_endpoint_subnet, _private_endpoint_rules())
        self.integration_subnet = None
        self.ase_subnet = None
        if args.ase:
            self.ase_subnet = self._subnet(
                ctx, "ase", net.ase_subnet, _ase_rules(),
                delegation="Microsoft.Web/hostingEnvironments",
                after=self.private_endpoint_subnet)
        else:
            self.integration_subnet = self._subnet(
                ctx, "app-integration", net.integration_subnet, [],
                delegation="Microsoft.Web/serverFarms", after=self.private_endpoint_subnet)
        # Nothing connects to the scripts' containers; they only call out (Entra, ARM, the
        # package blob, PostgreSQL's private endpoint, the SCM site), so default outbound access
        # stays on (infra/README.md, "First deploy from empty").
        # Its Microsoft.Storage service endpoint is the scripts' route to their file share, as
        # Microsoft Learn's "Access a private virtual network from a Bicep deployment script"
        # sets it up.
        self.script_subnet = self._subnet(
            ctx, "deployment-scripts", net.script_subnet,
            [_deny_inbound("deny-all-inbound", 4096, source="*")],
            delegation="Microsoft.ContainerInstance/containerGroups",
            after=self.ase_subnet or self.integration_subnet, default_outbound_access=True,
            service_endpoints=["Microsoft.Storage"])
        self.last_write = self.script_subnet
        self.register_outputs({"vnetId": self.vnet.id})

    def _subnet(self, ctx: Context, role: str, prefix: str,
                rules: list[network.SecurityRuleArgs], delegation: str | None = None,
                after: network.Subnet | None = None,
                default_outbound_access: bool | None = None,
                service_endpoints: list[str] | None = None) -> network.Subnet:
        nsg = _nsg(ctx, role, rules, parent=self)
        return network.Subnet(
            f"snet-{role}",
            subnet_name=f"snet-{role}",
            resource_group_name=ctx.rg_name,
            virtual_network_name=self.vnet.name,
            address_prefix=prefix,
            network_security_group=network.NetworkSecurityGroupArgs(id=nsg.id),
            delegations=[network.DelegationArgs(name=delegation, service_name=delegation)]
            if delegation else None,
            # NSGs apply to private endpoints only when the subnet's network policies are enabled.
            private_endpoint_network_policies="Enabled",
            default_outbound_access=default_outbound_access,
            service_endpoints=[network.ServiceEndpointPropertiesFormatArgs(service=service)
                               for service in service_endpoints] if service_endpoints else None,
            # Azure serialises writes to one VNet; chaining subnets avoids
            # AnotherOperationInProgress.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[after] if after else None),
        )
