"""The Linux App Service plan, the web app and its staging slot: one Site component each.

A Site carries what makes that app (or slot) servable and safe: its settings, basic-auth
publishing off, its identity's role assignments and PostgreSQL role, and (for the deploy
target) the package deployment.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import authorization, web
from pulumi_command import local

from infra.context import Context
from infra.data import PHOTO_CONTAINER, DataServices
from infra.db_role import create_database_role
from infra.deploy import PackageRef, deploy_package
from infra.identity import KEY_VAULT_SECRETS_USER, STORAGE_BLOB_DATA_CONTRIBUTOR, grant

STARTUP_COMMAND = "python startup.py"  # the deploy package's entry point (release/)
STAGING_SLOT = "staging"
# Each slot runs as its own identity, hence its own PostgreSQL role: this must not swap.
SLOT_STICKY_SETTINGS = ("AZURE_POSTGRESQL_USER",)


@dataclass(frozen=True)
class Hosting:
    """Where the app runs: a VNet-integration subnet (standard) or an ASE (isolated)."""

    integration_subnet_id: pulumi.Output[str] | None = None
    ase_id: pulumi.Output[str] | None = None
    # Standard tier behind the Application Gateway: the only subnet the app admits.
    gateway_subnet_id: pulumi.Output[str] | None = None


def create_plan(ctx: Context, hosting: Hosting, parent: pulumi.Resource) -> web.AppServicePlan:
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
        opts=pulumi.ResourceOptions(
            parent=parent, ignore_changes=["sku.capacity"] if cfg.has_autoscale else None),
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


@dataclass(frozen=True)
class SiteArgs:
    ctx: Context
    data: DataServices
    plan: web.AppServicePlan
    hosting: Hosting
    insights_connection_string: pulumi.Input[str]
    # Private DNS and endpoints the site's first requests (and the deployer) go through.
    network_ready: tuple[pulumi.Resource, ...]
    app: web.WebApp | None = None  # for a slot: the production app it belongs to
    package: PackageRef | None = None  # deployed to this site when set


class Site(pulumi.ComponentResource):
    """The production app (name "app") or one of its slots (name = the slot's name), with
    everything it needs to serve: basic-auth publishing off, its identity's role assignments,
    its PostgreSQL role and, for the deploy target, the package deployment."""

    key: str
    resource: web.WebApp | web.WebAppSlot
    slot: str | None
    database_role: str  # the PostgreSQL role its identity logs in as
    hardening: tuple[pulumi.Resource, ...]  # basic-auth publishing switched off
    app_name: pulumi.Output[str]  # the web app's name (for a slot: its parent app's)
    grants: tuple[authorization.RoleAssignment, ...]
    database_role_step: local.Command
    deployment: local.Command | None

    def __init__(self, name: str, args: SiteArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:app:Site", name, None, opts)
        ctx = args.ctx
        self.key = name
        self.slot = None if args.app is None else name
        app_name = ctx.names.web_app
        self.database_role = app_name if self.slot is None else f"{app_name}-{self.slot}"
        self.resource = self._web_app(args)
        self.app_name = self.resource.name if args.app is None else args.app.name
        self.hardening = self._disable_basic_auth(ctx)
        self.grants = self._grant(ctx, args.data)
        network_ready = list(args.network_ready)
        self.database_role_step = create_database_role(ctx, args.data, self,
                                                       depends_on=network_ready)
        self.deployment = None
        if args.package is not None:
            self.deployment = deploy_package(
                ctx, self, args.package,
                depends_on=[*self.grants, self.database_role_step, *network_ready])
        self.register_outputs({"siteId": self.resource.id, "principalId": self.principal_id})

    def _web_app(self, args: SiteArgs) -> web.WebApp | web.WebAppSlot:
        ctx = args.ctx
        site_args = _site_args(ctx, args.plan, app_settings(
            ctx, args.data, args.insights_connection_string, self.database_role), args.hosting)
        # The settings only name the secret; depending on it keeps the first start from racing it.
        options = pulumi.ResourceOptions(parent=self, depends_on=[args.data.secret_key])
        if args.app is None:
            return web.WebApp("web-app", name=ctx.names.web_app, **site_args, opts=options)
        return web.WebAppSlot(f"web-app-{self.slot}", name=args.app.name, slot=self.slot,
                              **site_args, opts=options)

    @property
    def principal_id(self) -> pulumi.Output[str]:
        return self.resource.identity.apply(lambda identity: identity.principal_id)

    @property
    def url(self) -> pulumi.Output[str]:
        return self.resource.default_host_name.apply(lambda host: f"https://{host}")

    def _disable_basic_auth(self, ctx: Context) -> tuple[pulumi.Resource, ...]:
        """Publishing with user/password (FTP and the SCM site) off: deploys use Entra tokens.

        The policies name the site only through its app's name, so they depend on the site
        explicitly: a slot's policy must not be written before the slot exists.
        """
        created = []
        options = pulumi.ResourceOptions(parent=self, depends_on=[self.resource])
        for kind, plain, slotted in (("ftp", web.WebAppFtpAllowed, web.WebAppFtpAllowedSlot),
                                     ("scm", web.WebAppScmAllowed, web.WebAppScmAllowedSlot)):
            args = {"name": self.app_name, "resource_group_name": ctx.rg_name, "allow": False}
            if self.slot is None:
                created.append(plain(f"{self.key}-{kind}-basic-auth", **args, opts=options))
            else:
                created.append(slotted(f"{self.key}-{kind}-basic-auth", slot=self.slot, **args,
                                       opts=options))
        return tuple(created)

    def _grant(self, ctx: Context, data: DataServices) -> tuple[authorization.RoleAssignment, ...]:
        """Least privilege for the site's identity: the photo container and the vault only."""
        container_key = f"{ctx.names.storage_account}/{PHOTO_CONTAINER}"
        principal_key = f"{ctx.names.web_app}/{self.key}"
        return (
            grant(f"{self.key}-blob-data-contributor", role_id=STORAGE_BLOB_DATA_CONTRIBUTOR,
                  scope=data.photo_container.id, scope_key=container_key,
                  principal_id=self.principal_id, principal_key=principal_key,
                  subscription_id=ctx.subscription_id, parent=self),
            grant(f"{self.key}-key-vault-secrets-user", role_id=KEY_VAULT_SECRETS_USER,
                  scope=data.vault.id, scope_key=ctx.names.key_vault,
                  principal_id=self.principal_id, principal_key=principal_key,
                  subscription_id=ctx.subscription_id, parent=self),
        )


@dataclass(frozen=True)
class AppServiceArgs:
    ctx: Context
    data: DataServices
    insights_connection_string: pulumi.Input[str]
    package: PackageRef  # deployed to the staging slot when there is one, else to the app
    hosting: Hosting = field(default_factory=Hosting)
    network_ready: tuple[pulumi.Resource, ...] = ()


class AppService(pulumi.ComponentResource):
    """The Linux plan, the production Site, its staging Site where the tier has slots, the
    slot-sticky settings and the optional custom domain."""

    plan: web.AppServicePlan
    app: Site
    staging: Site | None
    custom_domain: local.Command | None  # the SNI step, last of the domain's resources

    def __init__(self, name: str, args: AppServiceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:app:AppService", name, None, opts)
        ctx = args.ctx
        self.plan = create_plan(ctx, args.hosting, parent=self)
        has_slot = ctx.cfg.has_slot

        def site_args(app: web.WebApp | None, deploy_here: bool) -> SiteArgs:
            return SiteArgs(ctx, args.data, self.plan, args.hosting,
                            args.insights_connection_string, args.network_ready, app=app,
                            package=args.package if deploy_here else None)

        child = pulumi.ResourceOptions(parent=self)
        self.app = Site("app", site_args(None, deploy_here=not has_slot), child)
        self.staging = None
        if has_slot:
            app = self.app.resource
            self.staging = Site(STAGING_SLOT, site_args(app, deploy_here=True), child)
            web.WebAppSlotConfigurationNames(
                "web-app-sticky-settings",
                name=app.name,
                resource_group_name=ctx.rg_name,
                app_setting_names=list(SLOT_STICKY_SETTINGS),
                opts=child,
            )
        self.custom_domain = self._bind_custom_domain(ctx)
        self.register_outputs({"planId": self.plan.id, "appUrl": self.app.url})

    @property
    def sites(self) -> tuple[Site, ...]:
        return (self.app,) if self.staging is None else (self.app, self.staging)

    def _bind_custom_domain(self, ctx: Context) -> local.Command | None:
        """Seed step 07: hostname binding, free App Service managed certificate, SNI binding.

        Needs, before `pulumi up`, a CNAME from the domain to the app's default host name and a
        TXT record asuid.<domain> holding the `customDomainVerificationId` stack output.
        """
        domain = ctx.cfg.custom_domain
        if domain is None:
            return None
        app = self.app.resource
        binding = web.WebAppHostNameBinding(
            "custom-domain",
            name=app.name,
            host_name=domain,
            resource_group_name=ctx.rg_name,
            custom_host_name_dns_record_type="CName",
            host_name_type="Verified",
            ssl_state="Disabled",
            # The SNI step below turns TLS on for this same binding; don't undo it next `up`.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ssl_state", "thumbprint"]),
        )
        certificate = web.Certificate(
            "custom-domain-certificate",
            name=f"cert-{domain.replace('.', '-')}",
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            server_farm_id=self.plan.id,
            canonical_name=domain,  # no pfx/password: App Service issues and renews it
            tags=ctx.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[binding]),
        )
        # The managed certificate can only be issued for a host name that is already bound, and
        # ARM has one binding resource per host name: a second Pulumi resource for it would
        # collide, so the SNI switch is the CLI's update of that binding.
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=[binding, certificate]),
        )
