"""A private endpoint wired into private DNS: endpoint, zone, VNet link and DNS zone group.

The zone group makes Azure maintain the endpoint's A record in the zone, so the service's public
name (e.g. myvault.vault.azure.net) resolves to the private IP from inside the VNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network, privatedns

from infra.context import Context
from infra.network import VirtualNetwork

# group id of the target sub-resource -> the privatelink zone Azure documents for it.
PRIVATE_DNS_ZONES = {
    "postgresqlServer": "privatelink.postgres.database.azure.com",
    "vault": "privatelink.vaultcore.azure.net",
    "blob": "privatelink.blob.core.windows.net",
}


def private_zone(ctx: Context, key: str, zone_name: pulumi.Input[str], vnet: VirtualNetwork,
                 parent: pulumi.Resource) -> tuple[privatedns.PrivateZone,
                                                   privatedns.VirtualNetworkLink]:
    """A private DNS zone resolvable from the VNet (also used for the ASE's own zone)."""
    zone = privatedns.PrivateZone(
        f"dns-{key}",
        private_zone_name=zone_name,
        resource_group_name=ctx.rg_name,
        location="global",
        tags=ctx.tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    link = privatedns.VirtualNetworkLink(
        f"dns-link-{key}",
        virtual_network_link_name=f"link-{ctx.names.vnet}",
        private_zone_name=zone.name,
        resource_group_name=ctx.rg_name,
        location="global",
        virtual_network=privatedns.SubResourceArgs(id=vnet.vnet.id),
        # The VNet only reads these records; Azure writes them through the zone group.
        registration_enabled=False,
        tags=ctx.tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return zone, link


@dataclass(frozen=True)
class PrivateLinkArgs:
    ctx: Context
    target: pulumi.CustomResource  # the service the endpoint reaches
    group_id: str  # its sub-resource: a key of PRIVATE_DNS_ZONES
    vnet: VirtualNetwork
    # What must exist before the endpoint is created (PostgreSQL: its admin, TLS settings...).
    after: tuple[pulumi.Resource, ...] = ()


class PrivateLink(pulumi.ComponentResource):
    """`name` is the short key of the linked service (postgres, vault, blob): it names the
    children (pe-<name>, dns-<name>...)."""

    endpoint: network.PrivateEndpoint
    zone: privatedns.PrivateZone
    link: privatedns.VirtualNetworkLink
    zone_group: network.PrivateDnsZoneGroup

    def __init__(self, name: str, args: PrivateLinkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:network:PrivateLink", name, None, opts)
        ctx, group_id = args.ctx, args.group_id
        if group_id not in PRIVATE_DNS_ZONES:
            raise ValueError(f"private link {name!r}: no private DNS zone known for group id "
                             f"{group_id!r} (known: {', '.join(PRIVATE_DNS_ZONES)})")
        self.zone, self.link = private_zone(ctx, name, PRIVATE_DNS_ZONES[group_id], args.vnet,
                                            parent=self)
        self.endpoint = network.PrivateEndpoint(
            f"pe-{name}",
            private_endpoint_name=f"pe-{ctx.names.base}-{name}",
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            subnet=network.SubnetArgs(id=args.vnet.private_endpoint_subnet.id),
            private_link_service_connections=[
                network.PrivateLinkServiceConnectionArgs(
                    name=f"plsc-{name}",
                    private_link_service_id=args.target.id,
                    group_ids=[group_id],
                )
            ],
            tags=ctx.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after) or None),
        )
        self.zone_group = network.PrivateDnsZoneGroup(
            f"pe-dns-{name}",
            private_dns_zone_group_name="default",
            private_endpoint_name=self.endpoint.name,
            resource_group_name=ctx.rg_name,
            private_dns_zone_configs=[
                network.PrivateDnsZoneConfigArgs(name=group_id, private_dns_zone_id=self.zone.id)
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.link]),
        )
        self.register_outputs({"endpointId": self.endpoint.id})
