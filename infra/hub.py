"""Hub connectivity: the stack's VNet peered with an existing hub, its private DNS shared with it.

People and deployers behind the hub (VPN, ExpressRoute, other peered spokes) then reach the
ILB-only site, its SCM endpoint and the data services' private endpoints, and resolve their
names, because every private DNS zone of the stack (the privatelink.* zones and the ASE's own
zone) is linked to the hub VNet too.

What the hub must already have (the program only reads its id from config
`hubVirtualNetworkId`):
* an address space that does not overlap the stack's `vnetAddressSpace`;
* with `hubUseRemoteGateways` true (the default): a VPN or ExpressRoute gateway in the hub, which
  the stack's VNet then uses for the way back to on-premises (the hub side allows transit);
* for on-premises clients: DNS forwarding into Azure, e.g. a Private DNS Resolver inbound
  endpoint in the hub, with the on-premises DNS servers forwarding the stack's zones
  (privatelink.postgres.database.azure.com, privatelink.vaultcore.azure.net,
  privatelink.blob.core.windows.net, <ase>.appserviceenvironment.net) to it;
* no private DNS zone of the same name already linked to the hub VNet (landing zones that keep
  central privatelink zones should link those instead: Azure refuses two zones of one name on a
  VNet).

Permissions: the hub-side peering is created in the hub's resource group (and subscription,
through an explicit provider), so the identity running `pulumi up` needs, on the hub VNet,
Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write, .../peer/action and, for the DNS
links, .../join/action: Network Contributor on the hub VNet covers all three.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure_native
from pulumi_azure_native import network, privatedns

from infra.config import Hub
from infra.context import Context

TYPE = "restaurant-review:hub:HubConnection"


@dataclass(frozen=True)
class HubConnectionArgs:
    ctx: Context
    hub: Hub  # config `hub*`: the hub VNet, its subscription and group, gateway transit
    vnet: network.VirtualNetwork  # the stack's VNet
    # Every private DNS zone of the stack, by a short key (e.g. "vault", "ase").
    zones: dict[str, privatedns.PrivateZone]
    # The last subnet written to the stack's VNet: Azure takes one write per VNet at a time.
    after: pulumi.Resource | None = None


class HubConnection(pulumi.ComponentResource):
    """Peering both ways with the hub VNet and a hub link on each of the stack's DNS zones."""

    def __init__(self, name: str, args: HubConnectionArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        ctx, hub = args.ctx, args.hub
        assert hub is not None, "only built when config 'hubVirtualNetworkId' is set"
        # The hub usually lives in another (connectivity) subscription.
        hub_provider = azure_native.Provider(
            "hub-subscription", subscription_id=hub.subscription_id,
            opts=pulumi.ResourceOptions(parent=self))
        self.hub_peering = network.VirtualNetworkPeering(
            "peering-hub-to-stack",
            virtual_network_peering_name=f"peer-to-{ctx.names.vnet}",
            virtual_network_name=hub.vnet_name,
            resource_group_name=hub.resource_group,
            remote_virtual_network=network.SubResourceArgs(id=args.vnet.id),
            allow_virtual_network_access=True,
            allow_forwarded_traffic=True,
            allow_gateway_transit=hub.use_remote_gateways,
            opts=pulumi.ResourceOptions(parent=self, provider=hub_provider))
        self.stack_peering = network.VirtualNetworkPeering(
            "peering-stack-to-hub",
            virtual_network_peering_name=f"peer-to-{hub.vnet_name}",
            virtual_network_name=args.vnet.name,
            resource_group_name=ctx.rg_name,
            remote_virtual_network=network.SubResourceArgs(id=hub.vnet_id),
            allow_virtual_network_access=True,
            allow_forwarded_traffic=True,
            use_remote_gateways=hub.use_remote_gateways,
            # Using the hub's gateway needs the hub side to allow transit first; the stack's
            # VNet takes this write after its subnets'.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[
                self.hub_peering, *([args.after] if args.after else [])]))
        self.dns_links = [
            privatedns.VirtualNetworkLink(
                f"dns-hub-link-{key}",
                virtual_network_link_name=f"link-{hub.vnet_name}",
                private_zone_name=zone.name,
                resource_group_name=ctx.rg_name,
                location="global",
                virtual_network=privatedns.SubResourceArgs(id=hub.vnet_id),
                # The hub only reads these records.
                registration_enabled=False,
                tags=ctx.tags,
                opts=pulumi.ResourceOptions(parent=self))
            for key, zone in sorted(args.zones.items())
        ]
        self.register_outputs({"hubVirtualNetworkId": hub.vnet_id,
                               "linkedZones": sorted(args.zones)})
