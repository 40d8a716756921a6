"""The three tiers, composed like the seed's diagrams.

basic     Internet -> App Service (B1) -> public data endpoints (Entra only), App Insights
standard  Internet -> App Service (P1v3/S1) + staging slot -> VNet integration subnet ->
          private endpoints (PostgreSQL, Key Vault, Blob) + private DNS; autoscale
isolated  VNet -> ASE v3 (ILB) -> App Service (I1v2) + staging slot -> private endpoints + DNS
ingress   (config, standard or isolated) Internet -> Application Gateway WAF_v2 -> the app
hub       (config, standard or isolated) hub VNet <-> peering <-> VNet; every private DNS zone
          also linked to the hub
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import privatedns

from infra import ase as ase_module
from infra.app import AppService, Hosting, Site, bind_custom_domain, create_app_service
from infra.config import StackConfig
from infra.context import Context, create_context
from infra.data import PHOTO_CONTAINER, DataServices, create_data_services
from infra.db_role import create_database_role
from infra.deploy import PackageRef, deploy_package
from infra.gateway import ApplicationGateway, ApplicationGatewayArgs
from infra.hub import HubConnection, HubConnectionArgs
from infra.identity import KEY_VAULT_SECRETS_USER, STORAGE_BLOB_DATA_CONTRIBUTOR, grant
from infra.monitoring import (
    SITE_LOG_CATEGORIES,
    Telemetry,
    create_alerts,
    create_autoscale,
    create_telemetry,
    diagnostics,
)
from infra.network import VirtualNetwork, create_network
from infra.private_endpoints import private_link


@dataclass
class Foundation:
    """What every tier has before the app exists."""

    ctx: Context
    telemetry: Telemetry
    data: DataServices
    # Network plumbing the app's first requests (and the deployer) depend on.
    network_ready: list[pulumi.Resource] = field(default_factory=list)


def _foundation(cfg: StackConfig) -> Foundation:
    ctx = create_context(cfg)
    return Foundation(ctx, create_telemetry(ctx), create_data_services(ctx))


def _private_links(base: Foundation, vnet: VirtualNetwork) -> dict[str, privatedns.PrivateZone]:
    """PostgreSQL, Key Vault and Blob reachable only through private endpoints in the VNet."""
    ctx, data = base.ctx, base.data
    links = [
        private_link(ctx, "postgres", data.postgres, "postgresqlServer", vnet,
                     after=data.postgres_ready),
        private_link(ctx, "vault", data.vault, "vault", vnet),
        private_link(ctx, "blob", data.storage_account, "blob", vnet),
    ]
    base.network_ready += [link.zone_group for link in links]
    return {key: link.zone for key, link in zip(("postgres", "vault", "blob"), links,
                                                strict=True)}


def _ingress(base: Foundation, vnet: VirtualNetwork, app_host_name: str,
             after: pulumi.Resource) -> ApplicationGateway | None:
    """Internet -> WAF -> the app, when config `ingress` is applicationGateway."""
    if not base.ctx.cfg.has_gateway:
        return None
    return ApplicationGateway("ingress", ApplicationGatewayArgs(
        ctx=base.ctx, vnet_name=vnet.vnet.name, backend_host_name=app_host_name,
        vault=base.data.vault, workspace_id=base.telemetry.workspace.id,
        app_service_endpoint=base.ctx.cfg.tier == "standard", after=after))


def _hub(base: Foundation, vnet: VirtualNetwork, zones: dict) -> HubConnection | None:
    if base.ctx.cfg.hub is None:
        return None
    return HubConnection("hub", HubConnectionArgs(ctx=base.ctx, vnet=vnet.vnet, zones=zones))


def _ingress_outputs(outputs: dict, gateway: ApplicationGateway | None) -> dict:
    if gateway is not None:
        # What the site's users open; the app's own URL stays internal (isolated) or closed.
        outputs["siteUrl"] = gateway.public_url
        outputs["gatewayPublicIp"] = gateway.public_ip.ip_address
    return outputs


def _grant_site(ctx: Context, data: DataServices, site: Site) -> list[pulumi.Resource]:
    container_key = f"{ctx.names.storage_account}/{PHOTO_CONTAINER}"
    principal_key = f"{ctx.names.web_app}/{site.key}"
    return [
        grant(f"{site.key}-blob-data-contributor", role_id=STORAGE_BLOB_DATA_CONTRIBUTOR,
              scope=data.photo_container.id, scope_key=container_key,
              principal_id=site.principal_id, principal_key=principal_key,
              subscription_id=ctx.subscription_id),
        grant(f"{site.key}-key-vault-secrets-user", role_id=KEY_VAULT_SECRETS_USER,
              scope=data.vault.id, scope_key=ctx.names.key_vault,
              principal_id=site.principal_id, principal_key=principal_key,
              subscription_id=ctx.subscription_id),
    ]


def _observe(base: Foundation, service: AppService) -> None:
    ctx, telemetry, data = base.ctx, base.telemetry, base.data
    for site in service.sites:
        diagnostics(ctx, f"site-{site.key}", site.resource.id, telemetry, SITE_LOG_CATEGORIES)
    diagnostics(ctx, "key-vault", data.vault.id, telemetry, category_group="audit")
    diagnostics(ctx, "postgres", data.postgres.id, telemetry, category_group="allLogs")
    create_alerts(ctx, service.app.resource)


def _finish(base: Foundation, service: AppService, package: PackageRef) -> dict:
    """Identity wiring, observability, the package deploy and the stack outputs."""
    ctx, data = base.ctx, base.data
    ready_for_site: dict[str, list[pulumi.Resource]] = {}
    for site in service.sites:
        grants = _grant_site(ctx, data, site)
        role = create_database_role(ctx, data, site, depends_on=base.network_ready)
        ready_for_site[site.key] = [*grants, role, *base.network_ready]
    _observe(base, service)
    binding = bind_custom_domain(ctx, service)
    target = service.staging or service.app
    deploy_package(ctx, target, package, depends_on=ready_for_site[target.key])
    return _outputs(base, service, package, custom_domain_bound=binding is not None)


def _outputs(base: Foundation, service: AppService, package: PackageRef,
             custom_domain_bound: bool) -> dict:
    ctx, data = base.ctx, base.data
    app = service.app
    outputs = {
        "tier": ctx.cfg.tier,
        "resourceGroupName": ctx.rg_name,
        "appName": app.resource.name,
        "siteUrl": f"https://{ctx.cfg.custom_domain}" if custom_domain_bound else app.url,
        "defaultSiteUrl": app.url,
        "appPrincipalId": app.principal_id,
        "databaseHost": data.postgres.fully_qualified_domain_name,
        "databaseName": data.database.name,
        "storageAccountUrl": data.blob_endpoint,
        "keyVaultName": data.vault.name,
        "customDomainVerificationId": app.resource.custom_domain_verification_id,
        "packageSha256": package.sha256,
        "deployTarget": "staging slot" if service.staging else "production app",
    }
    if service.staging is not None:
        outputs["stagingUrl"] = service.staging.url
        outputs["stagingPrincipalId"] = service.staging.principal_id
    return outputs


def build_basic(cfg: StackConfig, package: PackageRef) -> dict:
    """B1, public endpoint, no VNet: the dev stack."""
    base = _foundation(cfg)
    service = create_app_service(base.ctx, base.data, base.telemetry.connection_string, Hosting())
    return _finish(base, service, package)


def build_standard(cfg: StackConfig, package: PackageRef) -> dict:
    """P1v3/S1 with VNet integration, private endpoints, staging slot and autoscale."""
    base = _foundation(cfg)
    vnet = create_network(base.ctx)
    assert vnet.integration_subnet is not None
    zones = _private_links(base, vnet)
    # The app's default host name; known before the app exists, which admits the gateway.
    gateway = _ingress(base, vnet, f"{base.ctx.names.web_app}.azurewebsites.net",
                       after=vnet.integration_subnet)
    _hub(base, vnet, zones)
    hosting = Hosting(integration_subnet_id=vnet.integration_subnet.id,
                      gateway_subnet_id=gateway.subnet.id if gateway else None)
    service = create_app_service(base.ctx, base.data, base.telemetry.connection_string, hosting)
    create_autoscale(base.ctx, service.plan)
    outputs = _finish(base, service, package)
    outputs["vnetName"] = vnet.vnet.name
    return _ingress_outputs(outputs, gateway)


def build_isolated(cfg: StackConfig, package: PackageRef) -> dict:
    """ASE v3 (internal load balancer) in the VNet, I1v2 plan, private endpoints."""
    base = _foundation(cfg)
    vnet = create_network(base.ctx)
    zones = _private_links(base, vnet)
    environment = ase_module.create_environment(base.ctx, vnet)
    zones["ase"] = environment.zone
    names = base.ctx.names
    # The app's host name on the ASE (the ASE's DNS suffix); known before the app exists.
    gateway = _ingress(base, vnet, f"{names.web_app}.{names.ase}.appserviceenvironment.net",
                       after=vnet.ase_subnet)
    _hub(base, vnet, zones)
    # The deployer reaches the internal SCM site through the ASE's private zone.
    base.network_ready += list(environment.records)
    hosting = Hosting(ase_id=environment.ase.id)
    service = create_app_service(base.ctx, base.data, base.telemetry.connection_string, hosting)
    create_autoscale(base.ctx, service.plan)
    outputs = _finish(base, service, package)
    outputs["vnetName"] = vnet.vnet.name
    outputs["aseName"] = environment.ase.name
    outputs["aseInternalIp"] = environment.internal_ip
    return _ingress_outputs(outputs, gateway)


TIER_BUILDERS = {"basic": build_basic, "standard": build_standard, "isolated": build_isolated}


def build(cfg: StackConfig, package: PackageRef) -> dict:
    return TIER_BUILDERS[cfg.tier](cfg, package)
