"""App Service Environment v3 behind an internal load balancer, and the DNS that reaches it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import privatedns, web

from infra.context import Context
from infra.network import VirtualNetwork
from infra.private_endpoints import private_zone

# Microsoft quotes 2-6 hours to build an ASE v3 (and scaling/upgrades take as long); the
# provider's default timeouts would abandon a healthy operation half way.
ASE_TIMEOUTS = pulumi.CustomTimeouts(create="6h", update="6h", delete="6h")

# The records that make <app>.<ase>.appserviceenvironment.net and its SCM site resolve to the ILB.
ASE_RECORDS = ("*", "*.scm", "@")


@dataclass(frozen=True)
class Environment:
    ase: web.AppServiceEnvironment
    zone: privatedns.PrivateZone
    records: tuple[privatedns.PrivateRecordSet, ...]

    @property
    def internal_ip(self) -> pulumi.Output[str]:
        return self.ase.networking_configuration.apply(
            lambda net: net.internal_inbound_ip_addresses[0]
        )


def create_environment(ctx: Context, vnet: VirtualNetwork) -> Environment:
    assert vnet.ase_subnet is not None, "the isolated tier always creates an ASE subnet"
    ase = web.AppServiceEnvironment(
        "ase",
        name=ctx.names.ase,
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        kind="ASEv3",
        virtual_network=web.VirtualNetworkProfileArgs(id=vnet.ase_subnet.id),
        # Both the apps and their SCM (publishing) endpoints answer only on the private ILB IP.
        internal_load_balancing_mode="Web, Publishing",
        zone_redundant=ctx.cfg.zone_redundant,
        networking_configuration=web.AseV3NetworkingConfigurationArgs(
            ftp_enabled=False, remote_debug_enabled=False,
            allow_new_private_endpoint_connections=False,
        ),
        cluster_settings=[web.NameValuePairArgs(name="DisableTls1.0", value="1")],
        tags=ctx.tags,
        opts=pulumi.ResourceOptions(custom_timeouts=ASE_TIMEOUTS),
    )
    zone, _link = private_zone(ctx, "ase", f"{ctx.names.ase}.appserviceenvironment.net", vnet)
    environment = Environment(ase, zone, ())
    records = tuple(
        privatedns.PrivateRecordSet(
            f"dns-ase-{'apex' if name == '@' else name.replace('*', 'wildcard')}",
            private_zone_name=zone.name,
            resource_group_name=ctx.rg_name,
            record_type="A",
            relative_record_set_name=name,
            ttl=3600,
            a_records=[privatedns.ARecordArgs(ipv4_address=environment.internal_ip)],
        )
        for name in ASE_RECORDS
    )
    return Environment(ase, zone, records)
