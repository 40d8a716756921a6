"""The Linux App Service plan, the web app and its staging slot: one Site component each.

A Site carries what makes that app (or slot) servable and safe: its settings, basic-auth
publishing off, and the sites' one user-assigned identity (infra/identity.py, granted before the
site exists). The SQL step and the package deploy run as the deployer's scripts (infra/deployer.py).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace

import pulumi
from pulumi_azure_native import managedidentity, web
from pulumi_command import local

from infra.context import Context
from infra.data import PHOTO_CONTAINER, DataServices
from infra.deployer import (
    Deployer,
    DeploymentScript,
    DeploymentScriptArgs,
    SiteTarget,
    retry_until_granted,
)
from infra.identity import SiteIdentity

STARTUP_COMMAND = "python startup.py"  # the deploy package's entry point (release/)
STAGING_SLOT = "staging"
# Slot-specific (sticky) app settings: none. Both slots run as the one identity and its one
# PostgreSQL role, so every setting travels with the code and a swap's first phase (staging
# restarted with production's sticky settings, under staging's own identities) changes nothing
# an identity depends on. Declared empty, so the slot's names are the program's alone.
SLOT_STICKY_SETTINGS: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hosting:
    """Where the app runs: a VNet-integration subnet (standard) or an ASE (isolated)."""

    integration_subnet_id: pulumi.Output[str] | None = None
    ase_id: pulumi.Output[str] | None = None
    # Standard tier behind the Application Gateway: the only subnet the app admits.
    gateway_subnet_id: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class PlanSize:
    """The Linux App Service plan's size."""

    sku: str  # config sku: B1, P1v3, S1, I1v2...
    instances: int  # the count it starts with (config minInstances)
    zone_redundant: bool  # instances spread over zones (config zoneRedundant)
    autoscaled: bool  # CPU autoscale (infra/monitoring.py) owns the count after creation


@dataclass(frozen=True)
class SiteSetup:
    """What every site (the app and its slot) runs with."""

    python_version: str  # the Linux runtime, PYTHON|<version> (config pythonVersion)
    health_check_path: str  # App Service's health check (config healthCheckPath)
    # The Application Gateway is in front: the site trusts its forwarded headers.
    behind_gateway: bool
    # The app has a staging slot; a swap into production warms up on the health path.
    staging_slot: bool


def create_plan(ctx: Context, size: PlanSize, hosting: Hosting,
                parent: pulumi.Resource) -> web.AppServicePlan:
    return web.AppServicePlan(
        "plan",
        name=ctx.names.plan,
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        kind="linux",
        reserved=True,  # Linux
        sku=web.SkuDescriptionArgs(name=size.sku, capacity=size.instances),
        zone_redundant=size.zone_redundant,
        hosting_environment_profile=web.HostingEnvironmentProfileArgs(id=hosting.ase_id)
        if hosting.ase_id else None,
        tags=ctx.tags,
        # Autoscale owns the instance count once it exists; the next `up` must not reset it.
        opts=pulumi.ResourceOptions(
            parent=parent, ignore_changes=["sku.capacity"] if size.autoscaled else None),
    )


def app_settings(setup: SiteSetup, data: DataServices, insights_connection_string,
                 database_role: str, client_id: pulumi.Input[str]) -> list[web.NameValuePairArgs]:
    """The env-var contract the site reads (infra/README.md, App settings); no secret value here."""
    settings = {
        # DefaultAzureCredential signs in as this user-assigned identity (PostgreSQL, Blob).
        "AZURE_CLIENT_ID": client_id,
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
    if setup.behind_gateway:
        # Application Gateway -> App Service front end -> the site (webapp/security.py).
        settings["TRUSTED_PROXY_HOPS"] = "2"
    if setup.staging_slot:
        # The platform's own swap warm-up then also waits for a healthy answer, not just any.
        settings["WEBSITE_SWAP_WARMUP_PING_PATH"] = setup.health_check_path
        settings["WEBSITE_SWAP_WARMUP_PING_STATUSES"] = "200"
    return [web.NameValuePairArgs(name=name, value=value) for name, value in settings.items()]


def _site_config(setup: SiteSetup, settings, hosting: Hosting) -> web.SiteConfigArgs:
    return web.SiteConfigArgs(
        linux_fx_version=f"PYTHON|{setup.python_version}",
        app_command_line=STARTUP_COMMAND,
        app_settings=settings,
        health_check_path=setup.health_check_path,
        always_on=True,  # every tier this program offers (B1 and up) has Always On
        ftps_state="Disabled",
        http20_enabled=True,
        min_tls_version="1.2",
        scm_min_tls_version="1.2",
        remote_debugging_enabled=False,
        # The older switch for routing all of the app's outbound traffic through the VNet; the
        # SDK maps it to outboundVnetRouting.applicationTraffic, while outbound_vnet_routing below
        # sets allTraffic (application traffic plus image pulls and content share).
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


def _site_args(ctx: Context, setup: SiteSetup, plan: web.AppServicePlan, settings,
               hosting: Hosting, identity: managedidentity.UserAssignedIdentity) -> dict:
    """Arguments shared by the app and its slot: the slot gets the same hardening (apart from
    the production app's gateway-only access restrictions, see Site._web_app)."""
    integrated = hosting.integration_subnet_id is not None
    return {
        "resource_group_name": ctx.rg_name,
        "location": ctx.location,
        "kind": "app,linux",
        "server_farm_id": plan.id,
        "identity": web.ManagedServiceIdentityArgs(type="UserAssigned",
                                                   user_assigned_identities=[identity.id]),
        # Granted Key Vault Secrets User minutes before the site exists (SiteIdentity): the
        # reference resolves on the first start.
        "key_vault_reference_identity": identity.id,
        "https_only": True,
        "client_affinity_enabled": False,
        "site_config": _site_config(setup, settings, hosting),
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
    setup: SiteSetup
    insights_connection_string: pulumi.Input[str]
    identity: managedidentity.UserAssignedIdentity  # the sites' one identity
    # Its role assignments, the wait for the Key Vault one to apply, and the private DNS and
    # endpoints its first requests go through.
    ready: tuple[pulumi.Resource, ...]
    app: web.WebApp | None = None  # for a slot: the production app it belongs to


class Site(pulumi.ComponentResource):
    """The production app (name "app") or one of its slots (name = the slot's name), running as
    the sites' user-assigned identity and its PostgreSQL role, with basic-auth publishing off."""

    key: str
    resource: web.WebApp | web.WebAppSlot
    slot: str | None
    database_role: str  # the PostgreSQL role the identity logs in as (the app's name)
    hardening: tuple[pulumi.Resource, ...]  # basic-auth publishing switched off
    app_name: pulumi.Output[str]  # the web app's name (for a slot: its parent app's)
    identity: managedidentity.UserAssignedIdentity

    def __init__(self, name: str, args: SiteArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:app:Site", name, None, opts)
        ctx = args.ctx
        self.key = name
        self.slot = None if args.app is None else name
        self.identity = args.identity
        self.database_role = ctx.names.web_app
        self.resource = self._web_app(args)
        self.app_name = self.resource.name if args.app is None else args.app.name
        self.hardening = self._disable_basic_auth(ctx)
        self.register_outputs({"siteId": self.resource.id, "principalId": self.principal_id})

    def _web_app(self, args: SiteArgs) -> web.WebApp | web.WebAppSlot:
        ctx = args.ctx
        settings = app_settings(args.setup, args.data, args.insights_connection_string,
                                self.database_role, args.identity.client_id)
        # IP restrictions stay with their slot on a swap: closing the staging slot to all but
        # the gateway would only turn the swap's /readyz probe from the runner into a 403.
        hosting = args.hosting if args.app is None else replace(args.hosting,
                                                                gateway_subnet_id=None)
        site_args = _site_args(ctx, args.setup, args.plan, settings, hosting, args.identity)
        # The settings only name the secret; depending on it (and on the identity's grants and
        # the private DNS) keeps the first start from racing them.
        options = pulumi.ResourceOptions(parent=self,
                                         depends_on=[args.data.secret_key, *args.ready])
        if args.app is None:
            return web.WebApp("web-app", name=ctx.names.web_app, **site_args, opts=options)
        return web.WebAppSlot(f"web-app-{self.slot}", name=args.app.name, slot=self.slot,
                              **site_args, opts=options)

    @property
    def principal_id(self) -> pulumi.Output[str]:
        return self.identity.principal_id

    @property
    def url(self) -> pulumi.Output[str]:
        return self.resource.default_host_name.apply(lambda host: f"https://{host}")

    @property
    def target(self) -> SiteTarget:
        return SiteTarget(self.key, self.slot, self.database_role, self.principal_id,
                          self.resource)

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


@dataclass(frozen=True)
class AppServiceArgs:
    ctx: Context
    data: DataServices
    insights_connection_string: pulumi.Input[str]
    identity: SiteIdentity  # every site's, granted before the sites exist
    deployer: Deployer  # gets Website Contributor on the app; runs the custom-domain SNI step
    size: PlanSize
    setup: SiteSetup
    hosting: Hosting = field(default_factory=Hosting)
    network_ready: tuple[pulumi.Resource, ...] = ()
    # Config customDomain: bound with a free managed certificate (its CNAME and TXT records
    # made beforehand); None: the app's default host name only.
    custom_domain: str | None = None


class AppService(pulumi.ComponentResource):
    """The Linux plan, the production Site, its staging Site where the tier has slots, the
    slot-sticky settings and the optional custom domain."""

    plan: web.AppServicePlan
    app: Site
    staging: Site | None
    deploy_grant: pulumi.Resource  # the deployer's Website Contributor on the app
    custom_domain: DeploymentScript | None  # the SNI step, last of the domain's resources

    def __init__(self, name: str, args: AppServiceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:app:AppService", name, None, opts)
        ctx = args.ctx
        self.plan = create_plan(ctx, args.size, args.hosting, parent=self)

        def site_args(app: web.WebApp | None) -> SiteArgs:
            ready = (*args.identity.grants, args.identity.key_vault_applied,
                     *args.network_ready)
            return SiteArgs(ctx, args.data, self.plan, args.hosting, args.setup,
                            args.insights_connection_string, args.identity.identity, ready,
                            app=app)

        child = pulumi.ResourceOptions(parent=self)
        self.app = Site("app", site_args(None), child)
        self.deploy_grant = args.deployer.allow_deploy_to(ctx, self.app.resource)
        self.staging = None
        if args.setup.staging_slot:
            app = self.app.resource
            self.staging = Site(STAGING_SLOT, site_args(app), child)
            web.WebAppSlotConfigurationNames(
                "web-app-sticky-settings",
                name=app.name,
                resource_group_name=ctx.rg_name,
                app_setting_names=list(SLOT_STICKY_SETTINGS),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[app]),
            )
        self.custom_domain = self._bind_custom_domain(ctx, args.custom_domain, args.deployer)
        self.register_outputs({"planId": self.plan.id, "appUrl": self.app.url})

    @property
    def sites(self) -> tuple[Site, ...]:
        return (self.app,) if self.staging is None else (self.app, self.staging)

    @property
    def database_logins(self) -> tuple[SiteTarget, ...]:
        """The login roles the deployer's SQL step makes: one, as every site runs as the same
        identity and role (SLOT_STICKY_SETTINGS)."""
        return (self.app.target,)

    @property
    def deploy_target(self) -> Site:
        """The staging slot where there is one, else the app: releases land here first."""
        return self.staging or self.app

    def _bind_custom_domain(self, ctx: Context, domain: str | None,
                            deployer: Deployer) -> DeploymentScript | None:
        """Seed step 07: hostname binding, free App Service managed certificate, SNI binding.

        Needs, before `pulumi up`, a CNAME from the domain to the app's default host name and a
        TXT record asuid.<domain> holding the `customDomainVerificationId` stack output.
        """
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=[app],
                                        ignore_changes=["ssl_state", "thumbprint"]),
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
        # collide, so the SNI switch is an update of that binding, run by the deployer identity
        # (Website Contributor on the app) as a deployment script.
        script = pulumi.Output.all(binding.id, certificate.thumbprint).apply(
            lambda values: sni_bind_script(values[0], values[1]))
        sni = DeploymentScript("custom-domain-sni", DeploymentScriptArgs(
            ctx, deployer, "custom-domain-sni", script, environment={}, subnet_id=None,
            triggers=[certificate.thumbprint],
            depends_on=[binding, certificate, self.deploy_grant]),
            pulumi.ResourceOptions(parent=self))
        # On destroy the certificate can only go once no binding uses it. ARM cannot run that
        # step, so this one runs on the deployer, with the az CLI signed in (`az login`).
        unbind = pulumi.Output.all(ctx.rg_name, app.name, certificate.thumbprint).apply(
            lambda values: shlex.join([
                "az", "webapp", "config", "ssl", "unbind", "--resource-group", values[0],
                "--name", values[1], "--certificate-thumbprint", values[2]]))
        local.Command("custom-domain-sni-unbind", delete=unbind,
                      opts=pulumi.ResourceOptions(parent=self, depends_on=[sni, certificate]))
        return sni


API_VERSION_WEB = "2023-12-01"


def sni_bind_script(binding_id: str, thumbprint: str) -> str:
    """The host name binding, rewritten with SNI TLS and the managed certificate's thumbprint.

    The deployer's Website Contributor on the app may be minutes old and not applied yet: the
    PUT is retried until it is, like the deploy script's first call.
    """
    body = json.dumps({"properties": {"sslState": "SniEnabled", "thumbprint": thumbprint,
                                      "customHostNameDnsRecordType": "CName",
                                      "hostNameType": "Verified"}})
    put = shlex.join([
        "az", "rest", "--method", "put", "--only-show-errors", "--output", "none",
        "--uri", f"{binding_id}?api-version={API_VERSION_WEB}", "--body", body])
    return "set -eu\n" + retry_until_granted(put, "switching the binding to SNI") + "\n"
