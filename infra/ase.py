"""App Service Environment v3 behind an internal load balancer, and the DNS that reaches it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import privatedns, web

from infra.context import Context
from infra.network import VirtualNetwork
from infra.private_link import private_zone

# Microsoft quotes 2-6 hours to build an ASE v3 (and scaling/upgrades take as long); the
# provider's default timeouts would abandon a healthy operation half way.
ASE_TIMEOUTS = pulumi.CustomTimeouts(create="6h", update="6h", delete="6h")

# The records that make <app>.<ase>.appserviceenvironment.net and its SCM site resolve to the ILB.
ASE_RECORDS = ("*", "*.scm", "@")


@dataclass(frozen=True)
class EnvironmentArgs:
    ctx: Context
    vnet: VirtualNetwork  # must have its ASE subnet (the isolated tier's VNet)
    zone_redundant: bool  # the ASE's instances spread over zones (config zoneRedundant)


class Environment(pulumi.ComponentResource):
    """The ASE, its private DNS zone linked to the VNet, and the A records pointing at its ILB."""

    ase: web.AppServiceEnvironment
    zone: privatedns.PrivateZone
    records: tuple[privatedns.PrivateRecordSet, ...]

    def __init__(self, name: str, args: EnvironmentArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:ase:Environment", name, None, opts)
        ctx, vnet = args.ctx, args.vnet
        if vnet.ase_subnet is None:
            raise ValueError(f"ASE {name!r} needs a VNet with an ASE subnet (isolated tier)")
        self.ase = web.AppServiceEnvironment(
            "ase",
            name=ctx.names.ase,
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            kind="ASEv3",
            virtual_network=web.VirtualNetworkProfileArgs(id=vnet.ase_subnet.id),
            # Both the apps and their SCM (publishing) endpoints answer only on the private ILB.
            internal_load_balancing_mode="Web, Publishing",
            zone_redundant=args.zone_redundant,
            networking_configuration=web.AseV3NetworkingConfigurationArgs(
                ftp_enabled=False, remote_debug_enabled=False,
                allow_new_private_endpoint_connections=False,
            ),
            cluster_settings=[web.NameValuePairArgs(name="DisableTls1.0", value="1")],
            tags=ctx.tags,
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=ASE_TIMEOUTS),
        )
        self.zone, _link = private_zone(ctx, "ase", f"{ctx.names.ase}.appserviceenvironment.net",
                                        vnet, parent=self)
        self.records = tuple(
            privatedns.PrivateRecordSet(
                f"dns-ase-{'apex' if record == '@' else record.replace('*', 'wildcard')}",
                private_zone_name=self.zone.name,
                resource_group_name=ctx.rg_name,
                record_type="A",
                relative_record_set_name=record,
                ttl=3600,
                a_records=[privatedns.ARecordArgs(ipv4_address=self.internal_ip)],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for record in ASE_RECORDS
        )
        self.register_outputs({"aseId": self.ase.id, "internalIp": self.internal_ip})

    @property
    def internal_ip(self) -> pulumi.Output[str]:
        return self.ase.networking_configuration.apply(internal_inbound_ip)


def internal_inbound_ip(networking) -> str:
    """The ILB's address from the ASE's networking configuration, or an error that says why.

    ARM reports internalInboundIpAddresses once the ASE is built; without this guard a response
    that lacks it would fail as an IndexError inside the DNS records' arguments.
    """
    addresses = getattr(networking, "internal_inbound_ip_addresses", None) or []
    if not addresses:
        raise ValueError(
            "the App Service Environment reports no internalInboundIpAddresses in its "
            "networkingConfiguration, so the private DNS records cannot point at its internal "
            "load balancer: check that the ASE finished building, then `pulumi refresh` and "
            "`pulumi up` again")
    return addresses[0]
