"""The Linux App Service plan, the web app, its staging slot and their app settings."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import web
from pulumi_command import local

from infra.context import Context
from infra.data import PHOTO_CONTAINER, DataServices

STARTUP_COMMAND = "python startup.py"  # the deploy package's entry point (issue 4)
STAGING_SLOT = "staging"
# Each slot runs as its own identity, hence its own PostgreSQL role: this must not swap.
SLOT_STICKY_SETTINGS = ("AZURE_POSTGRESQL_USER",)


@dataclass(frozen=True)
class Site:
    """The production app or one of its slots: what grants, deploys and diagnostics target."""

    key: str  # "app" or the slot name
    resource: web.WebApp | web.WebAppSlot
    slot: str | None
    database_role: str  # the PostgreSQL role its identity logs in as
    hardening: tuple[pulumi.Resource, ...]  # basic-auth publishing switched off
    app_name: pulumi.Output[str]  # the web app's name (for a slot: its parent app's)

    @property
    def principal_id(self) -> pulumi.Output[str]:
        return self.resource.identity.apply(lambda identity: identity.principal_id)

    @property
    def url(self) -> pulumi.Output[str]:
        return self.resource.default_host_name.apply(lambda host: f"https://{host}")


@dataclass(frozen=True)
class AppService:
    plan: web.AppServicePlan
    app: Site
    staging: Site | None

    @property
    def sites(self) -> tuple[Site, ...]:
        return (self.app,) if self.staging is None else (self.app, self.staging)


@dataclass(frozen=True)
class Hosting:
    """Where the app runs: a VNet-integration subnet (standard) or an ASE (isolated)."""

    integration_subnet_id: pulumi.Output[str] | None = None
    ase_id: pulumi.Output[str] | None = None
    # Standard tier behind the Application Gateway: the only subnet the app admits.
    gateway_subnet_id: pulumi.Output[str] | None = None


def create_plan(ctx: Context, hosting: Hosting) -> web.AppServicePlan:
    cfg = ctx.cfg
    return web.AppServicePlan(
        "plan",
        name=ctx.names.plan,
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        kind="linux",
        reserved=True,  # Linux
        sku=web.SkuDescriptionArgs(name=cfg.sku, capacity=cfg.min_instances),
        zone_redundant=cfg.zone_redundant,
        hosting_environment_profile=web.HostingEnvironmentProfileArgs(id=hosting.ase_id)
        if hosting.ase_id else None,
        tags=ctx.tags,
        # Autoscale owns the instance count once it exists; the next `up` must not reset it.
        opts=pulumi.ResourceOptions(ignore_changes=["sku.capacity"]) if cfg.has_autoscale else None,
    )


def app_settings(ctx: Context, data: DataServices, insights_connection_string,
                 database_role: str) -> list[web.NameValuePairArgs]:
    """The env-var contract the site reads (COMMON.md); no secret value appears here."""
    settings = {
        "AZURE_POSTGRESQL_HOST": data.postgres.fully_qualified_domain_name,
        "AZURE_POSTGRESQL_DATABASE": data.database.name,
        "AZURE_POSTGRESQL_USER": database_role,
        "AZURE_POSTGRESQL_PORT": "5432",
        "AZURE_POSTGRESQL_SSLMODE": "require",
        "AZURE_STORAGE_ACCOUNT_URL": data.blob_endpoint,
        "AZURE_STORAGE_CONTAINER": PHOTO_CONTAINER,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": insights_connection_string,
        "SECRET_KEY": data.secret_key_reference,
        # The package ships its dependencies vendored: no Oryx build, no pip at start-up.
        "SCM_DO_BUILD_DURING_DEPLOYMENT": "false",
    }
    if ctx.cfg.has_gateway:
        # Application Gateway -> App Service front end -> the site (webapp/security.py).
        settings["TRUSTED_PROXY_HOPS"] = "2"
    if ctx.cfg.has_slot:
        # The platform's own swap warm-up then also waits for a healthy answer, not just any.
        settings["WEBSITE_SWAP_WARMUP_PING_PATH"] = ctx.cfg.health_check_path
        settings["WEBSITE_SWAP_WARMUP_PING_STATUSES"] = "200"
    return [web.NameValuePairArgs(name=name, value=value) for name, value in settings.items()]


def _site_config(ctx: Context, settings, hosting: Hosting) -> web.SiteConfigArgs:
    cfg = ctx.cfg
    return web.SiteConfigArgs(
        linux_fx_version=f"PYTHON|{cfg.python_version}",
        app_command_line=STARTUP_COMMAND,
        app_settings=settings,
        health_check_path=cfg.health_check_path,
        always_on=True,  # every tier this program offers (B1 and up) has Always On
        ftps_state="Disabled",
        http20_enabled=True,
        min_tls_version="1.2",
        scm_min_tls_version="1.2",
        remote_debugging_enabled=False,
        # Older API spelling of outbound_vnet_routing.all_traffic; kept in step with it.
        vnet_route_all_enabled=True if hosting.integration_subnet_id else None,
        **_gateway_only(hosting),
    )


def _gateway_only(hosting: Hosting) -> dict:
    """Access restrictions that admit the gateway's subnet alone; the SCM site keeps its own
    (unrestricted) rules, so deploys work as before."""
    if hosting.gateway_subnet_id is None:
        return {}
    return {
        "ip_security_restrictions": [web.IpSecurityRestrictionArgs(
            name="application-gateway", action="Allow", priority=100,
            vnet_subnet_resource_id=hosting.gateway_subnet_id)],
        "ip_security_restrictions_default_action": "Deny",
        "scm_ip_security_restrictions_use_main": False,
    }


def _site_args(ctx: Context, plan: web.AppServicePlan, settings, hosting: Hosting) -> dict:
    """Arguments shared by the app and its slot: the slot gets exactly the same hardening."""
    integrated = hosting.integration_subnet_id is not None
    return {
        "resource_group_name": ctx.rg_name,
        "location": ctx.location,
        "kind": "app,linux",
        "server_farm_id": plan.id,
        "identity": web.ManagedServiceIdentityArgs(type="SystemAssigned"),
        "key_vault_reference_identity": "SystemAssigned",
        "https_only": True,
        "client_affinity_enabled": False,
        "site_config": _site_config(ctx, settings, hosting),
        "virtual_network_subnet_id": hosting.integration_subnet_id,
        # All outbound traffic (not only RFC1918) goes through the VNet and its private DNS.
        "outbound_vnet_routing": web.OutboundVnetRoutingArgs(all_traffic=True)
        if integrated else None,
        "hosting_environment_profile": web.HostingEnvironmentProfileArgs(id=hosting.ase_id)
        if hosting.ase_id else None,
        "tags": ctx.tags,
    }


def _disable_basic_auth(ctx: Context, key: str, app_name, slot: str | None):
    """Publishing with user/password (FTP and the SCM site) off: deploys use Entra tokens."""
    created = []
    for kind, plain, slotted in (("ftp", web.WebAppFtpAllowed, web.WebAppFtpAllowedSlot),
                                 ("scm", web.WebAppScmAllowed, web.WebAppScmAllowedSlot)):
        args = {"name": app_name, "resource_group_name": ctx.rg_name, "allow": False}
        if slot is None:
            created.append(plain(f"{key}-{kind}-basic-auth", **args))
        else:
            created.append(slotted(f"{key}-{kind}-basic-auth", slot=slot, **args))
    return tuple(created)


def create_app_service(ctx: Context, data: DataServices, insights_connection_string,
                       hosting: Hosting) -> AppService:
    plan = create_plan(ctx, hosting)
    app_name = ctx.names.web_app
    app_role = app_name
    # The settings only name the secret; depending on it keeps the first start from racing it.
    after_secret = pulumi.ResourceOptions(depends_on=[data.secret_key])
    app = web.WebApp(
        "web-app",
        name=app_name,
        **_site_args(ctx, plan, app_settings(ctx, data, insights_connection_string, app_role),
                     hosting),
        opts=after_secret,
    )
    production = Site("app", app, None, app_role,
                      _disable_basic_auth(ctx, "app", app.name, None), app.name)
    if not ctx.cfg.has_slot:
        return AppService(plan, production, None)
    slot_role = f"{app_name}-{STAGING_SLOT}"
    slot = web.WebAppSlot(
        "web-app-staging",
        name=app.name,
        slot=STAGING_SLOT,
        **_site_args(ctx, plan, app_settings(ctx, data, insights_connection_string, slot_role),
                     hosting),
        opts=after_secret,
    )
    web.WebAppSlotConfigurationNames(
        "web-app-sticky-settings",
        name=app.name,
        resource_group_name=ctx.rg_name,
        app_setting_names=list(SLOT_STICKY_SETTINGS),
    )
    staging = Site(STAGING_SLOT, slot, STAGING_SLOT, slot_role,
                   _disable_basic_auth(ctx, STAGING_SLOT, app.name, STAGING_SLOT), app.name)
    return AppService(plan, production, staging)


def bind_custom_domain(ctx: Context, service: AppService) -> local.Command | None:
    """Seed step 07: hostname binding, free App Service managed certificate, SNI binding.

    Needs, before `pulumi up`, a CNAME from the domain to the app's default host name and a TXT
    record asuid.<domain> holding the `customDomainVerificationId` stack output.
    """
    domain = ctx.cfg.custom_domain
    if domain is None:
        return None
    app = service.app.resource
    binding = web.WebAppHostNameBinding(
        "custom-domain",
        name=app.name,
        host_name=domain,
        resource_group_name=ctx.rg_name,
        custom_host_name_dns_record_type="CName",
        host_name_type="Verified",
        ssl_state="Disabled",
        # The SNI step below turns TLS on for this same binding; don't undo it on the next `up`.
        opts=pulumi.ResourceOptions(ignore_changes=["ssl_state", "thumbprint"]),
    )
    certificate = web.Certificate(
        "custom-domain-certificate",
        name=f"cert-{domain.replace('.', '-')}",
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        server_farm_id=service.plan.id,
        canonical_name=domain,  # no pfx/password: App Service issues and renews it
        tags=ctx.tags,
        opts=pulumi.ResourceOptions(depends_on=[binding]),
    )
    # The managed certificate can only be issued for a host name that is already bound, and ARM
    # has one binding resource per host name: a second Pulumi resource for it would collide, so
    # the SNI switch is the CLI's update of that binding.
    command = pulumi.Output.all(ctx.rg_name, app.name, certificate.thumbprint).apply(
        lambda values: shlex.join([
            "az", "webapp", "config", "ssl", "bind", "--resource-group", values[0],
            "--name", values[1], "--hostname", domain, "--certificate-thumbprint", values[2],
            "--ssl-type", "SNI",
        ])
    )
    return local.Command(
        "custom-domain-sni",
        create=command,
        triggers=[certificate.thumbprint],
        opts=pulumi.ResourceOptions(depends_on=[binding, certificate]),
    )
