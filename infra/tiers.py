"""The three tiers, composed like the seed's diagrams.

basic     Internet -> App Service (B1) -> public data endpoints (Entra only), App Insights
standard  Internet -> App Service (P1v3/S1) + staging slot -> VNet integration subnet ->
          private endpoints (PostgreSQL, Key Vault, Blob) + private DNS; autoscale
isolated  VNet -> ASE v3 (ILB) -> App Service (I1v2) + staging slot -> private endpoints + DNS
ingress   (config, standard or isolated) Internet -> Application Gateway WAF_v2 -> the app
hub       (config, standard or isolated) hub VNet <-> peering <-> VNet; every private DNS zone
          also linked to the hub

Each box is a component (infra/<module>.py); the resource group stays at the top of the stack
and every Azure resource sits under one of these components:

    Deployer "deployer"            SiteIdentity "identities"
    Telemetry "telemetry"          DataServices "data"
    VirtualNetwork "network"       PrivateLink "postgres" / "vault" / "blob"
    Environment "ase"              AppService "app-service" -> Site "app", Site "staging"
    Monitoring "monitoring"        Deployer -> DeploymentScript "database-roles", "deploy"
    ApplicationGateway "ingress"   HubConnection "hub"          (when configured)

This module is the one place that reads the stack's config: it hands each component the
settings its Args declare, and the stack-wide names, location and tags in its Context.

The deployer's scripts run the data-plane steps inside Azure (infra/README.md, "First deploy
from empty"): `pulumi up` itself needs no network and no login beyond the provider's.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import privatedns

from infra.app import AppService, AppServiceArgs, Hosting, PlanSize, SiteSetup
from infra.ase import Environment, EnvironmentArgs
from infra.config import StackConfig
from infra.context import Context, create_context
from infra.data import DataServices, DataServicesArgs, PostgresSettings
from infra.deployer import Deployer, DeployerArgs, deploy_package, run_database_roles
from infra.gateway import ApplicationGateway, ApplicationGatewayArgs
from infra.hub import HubConnection, HubConnectionArgs
from infra.identity import SiteIdentity, SiteIdentityArgs, grant_developers
from infra.monitoring import (
    InstanceRange,
    Monitoring,
    MonitoringArgs,
    Telemetry,
    TelemetryArgs,
)
from infra.network import VirtualNetwork, VirtualNetworkArgs
from infra.private_link import PrivateLink, PrivateLinkArgs
from infra.site_package import PackageRef


@dataclass(frozen=True)
class Foundation:
    """What every tier has before the app exists."""

    cfg: StackConfig  # read here alone: each component takes its settings in its Args
    ctx: Context
    package: PackageRef
    deployer: Deployer
    identity: SiteIdentity  # the one every site runs as
    telemetry: Telemetry
    data: DataServices
    deployer_admin: pulumi.Resource  # the deployer as a PostgreSQL Entra administrator


def _data_services_args(cfg: StackConfig, ctx: Context) -> DataServicesArgs:
    postgres = PostgresSettings(
        sku=cfg.postgres_sku, sku_tier=cfg.postgres_sku_tier,
        storage_gb=cfg.postgres_storage_gb,
        backup_retention_days=cfg.postgres_backup_retention_days,
        geo_redundant_backup=cfg.postgres_geo_redundant_backup,
        high_availability=cfg.postgres_high_availability, admin=cfg.postgres_admin)
    return DataServicesArgs(ctx, private_endpoints=cfg.has_vnet, postgres=postgres,
                            deployer_ip_address=cfg.deployer_ip_address,
                            developers=cfg.developer_access)


def _foundation(cfg: StackConfig, package: PackageRef) -> Foundation:
    """The site identity first (so its grants apply early), then the data services."""
    ctx = create_context(cfg)
    deployer = Deployer("deployer", DeployerArgs(ctx, package, cfg.has_vnet, cfg.script_attempt))
    data = DataServices("data", _data_services_args(cfg, ctx))
    identity = SiteIdentity("identities", SiteIdentityArgs(ctx, data))
    grant_developers(ctx, data, cfg.developer_access)
    deployer_admin = deployer.postgres_admin(ctx, data.postgres, after=data.postgres_ready)
    telemetry = Telemetry("telemetry", TelemetryArgs(ctx, cfg.log_retention_days))
    return Foundation(cfg, ctx, package, deployer, identity, telemetry, data, deployer_admin)


def _private_links(base: Foundation, vnet: VirtualNetwork) -> dict[str, PrivateLink]:
    """PostgreSQL, Key Vault and Blob reachable only through private endpoints in the VNet."""
    ctx, data = base.ctx, base.data
    return {
        # After every other change to the server, the deployer administrator included: a
        # flexible server takes one change at a time.
        "postgres": PrivateLink("postgres", PrivateLinkArgs(
            ctx, data.postgres, "postgresqlServer", vnet,
            after=(*data.postgres_ready, base.deployer_admin))),
        "vault": PrivateLink("vault", PrivateLinkArgs(ctx, data.vault, "vault", vnet)),
        "blob": PrivateLink("blob", PrivateLinkArgs(ctx, data.storage_account, "blob", vnet)),
    }


def _zone_groups(links: dict[str, PrivateLink]) -> list[pulumi.Resource]:
    """The app's first requests and the deployer need the endpoints' DNS records."""
    return [link.zone_group for link in links.values()]


def _zones(links: dict[str, PrivateLink]) -> dict[str, privatedns.PrivateZone]:
    return {key: link.zone for key, link in links.items()}


def _ingress(base: Foundation, vnet: VirtualNetwork, app_host_name: str,
             links: dict[str, PrivateLink]) -> ApplicationGateway | None:
    """Internet -> WAF -> the app, when config `ingress` is applicationGateway.

    app_host_name is the app's default host name, known before the app exists (its name and
    the ASE's DNS suffix): in the standard tier the app's access restrictions need the
    gateway's subnet, so the gateway comes first.
    """
    cfg = base.cfg
    if cfg.ingress is None:
        return None
    return ApplicationGateway("ingress", ApplicationGatewayArgs(
        ctx=base.ctx, ingress=cfg.ingress, zone_redundant=cfg.zone_redundant,
        health_check_path=cfg.health_check_path, vnet_name=vnet.vnet.name,
        backend_host_name=app_host_name,
        vault=base.data.vault, workspace_id=base.telemetry.workspace.id,
        app_service_endpoint=cfg.tier == "standard", after=vnet.last_write,
        vault_reachable=(links["vault"].endpoint, links["vault"].zone_group)))


def _hub(base: Foundation, vnet: VirtualNetwork, zones: dict[str, privatedns.PrivateZone],
         gateway: ApplicationGateway | None) -> HubConnection | None:
    hub = base.cfg.hub
    if hub is None:
        return None
    # The peering is a write to the stack's VNet too: after its last subnet.
    last_write = gateway.subnet if gateway else vnet.last_write
    return HubConnection("hub", HubConnectionArgs(ctx=base.ctx, hub=hub, vnet=vnet.vnet,
                                                  zones=zones, after=last_write))


def _with_ingress(outputs: dict, gateway: ApplicationGateway | None) -> dict:
    if gateway is None:
        return outputs
    # What the site's users open; the app's own URL stays internal (isolated) or closed.
    return {**outputs, "siteUrl": gateway.public_url,
            "gatewayPublicIp": gateway.public_ip.ip_address}


def _app_service(base: Foundation, hosting: Hosting | None = None,
                 network_ready: list[pulumi.Resource] | None = None,
                 script_subnet_id: pulumi.Input[str] | None = None) -> AppService:
    """The app and its slot; the deployer's SQL and deploy scripts; then what watches them."""
    ctx, data, deployer = base.ctx, base.data, base.deployer
    ready = tuple(network_ready or ())
    cfg = base.cfg
    size = PlanSize(cfg.sku, cfg.min_instances, cfg.zone_redundant, cfg.has_autoscale)
    setup = SiteSetup(cfg.python_version, cfg.health_check_path,
                      behind_gateway=cfg.has_gateway, staging_slot=cfg.has_slot)
    service = AppService("app-service", AppServiceArgs(
        ctx, data, base.telemetry.connection_string, base.identity, deployer, size, setup,
        hosting or Hosting(), ready, cfg.custom_domain))
    roles = run_database_roles(
        ctx, deployer, data.postgres.fully_qualified_domain_name,
        service.database_logins, base.cfg.developer_access, script_subnet_id,
        after=[base.deployer_admin, *data.postgres_ready, *ready])
    target = service.deploy_target
    deployment = deploy_package(
        ctx, deployer, target.target, target.app_name, base.package, script_subnet_id,
        after=[roles, service.deploy_grant, *target.hardening,
               *base.identity.grants, *ready])
    autoscale = (InstanceRange(cfg.min_instances, cfg.max_instances) if cfg.has_autoscale
                 else None)
    Monitoring("monitoring", MonitoringArgs(ctx, base.telemetry, data, service,
                                            cfg.alert_email, autoscale,
                                            alerts_after=(deployment,)))
    return service


def _outputs(base: Foundation, service: AppService, package: PackageRef) -> dict:
    cfg, ctx, data = base.cfg, base.ctx, base.data
    app = service.app
    outputs = {
        "tier": cfg.tier,
        "resourceGroupName": ctx.rg_name,
        "appName": app.resource.name,
        "siteUrl": f"https://{cfg.custom_domain}" if service.custom_domain else app.url,
        "defaultSiteUrl": app.url,
        "appPrincipalId": app.principal_id,
        "databaseHost": data.postgres.fully_qualified_domain_name,
        "databaseName": data.database.name,
        "storageAccountUrl": data.blob_endpoint,
        "photoContainer": data.photo_container.name,
        "keyVaultName": data.vault.name,
        "customDomainVerificationId": app.resource.custom_domain_verification_id,
        "packageSha256": package.sha256,
        "deployTarget": "staging slot" if service.staging else "production app",
    }
    if service.staging is not None:
        outputs["stagingUrl"] = service.staging.url
    if cfg.developer_access is not None:
        # `make dev-azure` signs its members in with this name (infra/README.md).
        outputs["developerGroupName"] = cfg.developer_access.group_name
    return outputs


def build_basic(cfg: StackConfig, package: PackageRef) -> dict:
    """B1, public endpoint, no VNet: the dev stack."""
    base = _foundation(cfg, package)
    service = _app_service(base)
    return _outputs(base, service, package)


def build_standard(cfg: StackConfig, package: PackageRef) -> dict:
    """P1v3/S1 with VNet integration, private endpoints, staging slot and autoscale."""
    base = _foundation(cfg, package)
    assert cfg.network is not None
    vnet = VirtualNetwork("network", VirtualNetworkArgs(base.ctx, cfg.network))
    links = _private_links(base, vnet)
    assert vnet.integration_subnet is not None
    gateway = _ingress(base, vnet, f"{base.ctx.names.web_app}.azurewebsites.net", links)
    _hub(base, vnet, _zones(links), gateway)
    hosting = Hosting(integration_subnet_id=vnet.integration_subnet.id,
                      gateway_subnet_id=gateway.subnet.id if gateway else None)
    service = _app_service(base, hosting, _zone_groups(links), vnet.script_subnet.id)
    return _with_ingress({**_outputs(base, service, package), "vnetName": vnet.vnet.name},
                         gateway)


def build_isolated(cfg: StackConfig, package: PackageRef) -> dict:
    """ASE v3 (internal load balancer) in the VNet, I1v2 plan, private endpoints."""
    base = _foundation(cfg, package)
    assert cfg.network is not None
    vnet = VirtualNetwork("network", VirtualNetworkArgs(base.ctx, cfg.network, ase=True))
    links = _private_links(base, vnet)
    environment = Environment("ase", EnvironmentArgs(base.ctx, vnet, cfg.zone_redundant))
    names = base.ctx.names
    gateway = _ingress(base, vnet, f"{names.web_app}.{names.ase}.appserviceenvironment.net",
                       links)
    _hub(base, vnet, {**_zones(links), "ase": environment.zone}, gateway)
    # The deploy script reaches the internal SCM site through the ASE's private zone.
    network_ready = [*_zone_groups(links), *environment.records]
    service = _app_service(base, Hosting(ase_id=environment.ase.id), network_ready,
                           vnet.script_subnet.id)
    return _with_ingress({**_outputs(base, service, package), "vnetName": vnet.vnet.name,
                          "aseName": environment.ase.name,
                          "aseInternalIp": environment.internal_ip}, gateway)


TIER_BUILDERS = {"basic": build_basic, "standard": build_standard, "isolated": build_isolated}


def build(cfg: StackConfig, package: PackageRef) -> dict:
    return TIER_BUILDERS[cfg.tier](cfg, package)
