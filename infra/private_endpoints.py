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


@dataclass(frozen=True)
class PrivateLink:
    endpoint: network.PrivateEndpoint
    zone: privatedns.PrivateZone
    link: privatedns.VirtualNetworkLink
    zone_group: network.PrivateDnsZoneGroup


def private_zone(ctx: Context, key: str, zone_name: pulumi.Input[str],
                 vnet: VirtualNetwork) -> tuple[privatedns.PrivateZone,
                                                privatedns.VirtualNetworkLink]:
    """A private DNS zone resolvable from the VNet (also used for the ASE's own zone)."""
    zone = privatedns.PrivateZone(
        f"dns-{key}",
        private_zone_name=zone_name,
        resource_group_name=ctx.rg_name,
        location="global",
        tags=ctx.tags,
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
    )
    return zone, link


def private_link(ctx: Context, key: str, target: pulumi.CustomResource, group_id: str,
                 vnet: VirtualNetwork, after: list[pulumi.Resource] | None = None) -> PrivateLink:
    zone, link = private_zone(ctx, key, PRIVATE_DNS_ZONES[group_id], vnet)
    endpoint = network.PrivateEndpoint(
        f"pe-{key}",
        private_endpoint_name=f"pe-{ctx.names.base}-{key}",
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        subnet=network.SubnetArgs(id=vnet.private_endpoint_subnet.id),
        private_link_service_connections=[
            network.PrivateLinkServiceConnectionArgs(
                name=f"plsc-{key}",
                private_link_service_id=target.id,
                group_ids=[group_id],
            )
        ],
        tags=ctx.tags,
        opts=pulumi.ResourceOptions(depends_on=after),
    )
    zone_group = network.PrivateDnsZoneGroup(
        f"pe-dns-{key}",
        private_dns_zone_group_name="default",
        private_endpoint_name=endpoint.name,
        resource_group_name=ctx.rg_name,
        private_dns_zone_configs=[
            network.PrivateDnsZoneConfigArgs(name=group_id, private_dns_zone_id=zone.id)
        ],
        opts=pulumi.ResourceOptions(depends_on=[link]),
    )
    return PrivateLink(endpoint, zone, link, zone_group)
