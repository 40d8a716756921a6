"""The stateful services: photo storage, the Key Vault holding SECRET_KEY, PostgreSQL.

Every one of them authenticates with Microsoft Entra only (no shared keys, no passwords) and, in
the tiers with a VNet, has its public endpoint disabled in favour of a private endpoint.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import dbforpostgresql, keyvault, storage

from infra.config import DeveloperAccess, PostgresAdmin
from infra.context import Context
from infra.naming import Names

PHOTO_CONTAINER = "photos"
SECRET_KEY_NAME = "flask-secret-key"  # noqa: S105 - a name, not a value
AZURE_SERVICES_RULE = "AllowAllAzureServicesAndResourcesWithinAzureIps"
# Letters and digits a disposable stack adds to its vault and server names (recreatable_names).
NAME_GENERATION_LENGTH = 4


@dataclass(frozen=True)
class PostgresSettings:
    """The flexible server's size, backups, availability and Entra administrator."""

    sku: str  # config postgresSku, e.g. Standard_B1ms
    sku_tier: str  # Burstable, GeneralPurpose or MemoryOptimized: the SKU's family
    storage_gb: int
    backup_retention_days: int
    geo_redundant_backup: bool
    high_availability: bool  # a zone-redundant standby
    admin: PostgresAdmin  # the Entra administrator named in config


def _public_access(private_endpoints: bool) -> str:
    return "Disabled" if private_endpoints else "Enabled"


def create_storage(ctx: Context, private_endpoints: bool, parent: pulumi.Resource,
                   ) -> tuple[storage.StorageAccount, storage.BlobContainer]:
    production = ctx.production
    account = storage.StorageAccount(
        "storage",
        account_name=ctx.names.storage_account,
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        kind="StorageV2",
        # Photos are the one copy of user uploads: geo- and zone-redundant outside dev.
        sku=storage.SkuArgs(name="Standard_GZRS" if production else "Standard_LRS"),
        minimum_tls_version="TLS1_2",
        enable_https_traffic_only=True,
        allow_blob_public_access=False,
        # Entra only: account keys and SAS tokens signed with them stop working.
        allow_shared_key_access=False,
        default_to_o_auth_authentication=True,
        allow_cross_tenant_replication=False,
        public_network_access=_public_access(private_endpoints),
        # Dev has no VNet, so App Service reaches the account over its public endpoint (App Service
        # is not a "trusted service" for the firewall); identity-only auth is the gate there.
        network_rule_set=storage.NetworkRuleSetArgs(
            default_action="Deny" if private_endpoints else "Allow", bypass="AzureServices"
        ),
        tags=ctx.tags,
        opts=ctx.stateful(parent=parent),
    )
    retention = storage.DeleteRetentionPolicyArgs(enabled=True, days=30 if production else 7)
    blob_service = storage.BlobServiceProperties(
        "storage-blob-service",
        account_name=account.name,
        resource_group_name=ctx.rg_name,
        blob_services_name="default",
        delete_retention_policy=retention,
        container_delete_retention_policy=retention,
        is_versioning_enabled=production,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    container = storage.BlobContainer(
        "photo-container",
        container_name=PHOTO_CONTAINER,
        account_name=account.name,
        resource_group_name=ctx.rg_name,
        public_access="None",
        opts=ctx.stateful(blob_service, parent=parent),
    )
    return account, container


def recreatable_names(ctx: Context, parent: pulumi.Resource) -> pulumi.Output[Names]:
    """The names of the vault and the server, which Azure keeps reserved after a delete.

    A deleted vault's name stays taken for its soft-delete retention (7 days in dev), a deleted
    flexible server's for days too. Dev is meant to be destroyed and recreated, so there a random
    generation, kept in the stack's state and deleted with it, joins the suffix: a recreated dev
    gets new names, a rerun keeps its own. Production stacks are never destroyed (protected) and
    keep fixed names.
    """
    if ctx.production:
        return pulumi.Output.from_input(ctx.names)
    generation = random.RandomString(
        "name-generation", length=NAME_GENERATION_LENGTH, upper=False, special=False,
        opts=pulumi.ResourceOptions(parent=parent))
    return generation.result.apply(ctx.names.generation)


def create_key_vault(ctx: Context, names: pulumi.Output[Names], private_endpoints: bool,
                     parent: pulumi.Resource) -> tuple[keyvault.Vault, keyvault.Secret]:
    production = ctx.production
    vault = keyvault.Vault(
        "key-vault",
        vault_name=names.apply(lambda n: n.key_vault),
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        properties=keyvault.VaultPropertiesArgs(
            tenant_id=ctx.tenant_id,
            sku=keyvault.SkuArgs(family="A", name="standard"),
            enable_rbac_authorization=True,
            enable_soft_delete=True,
            soft_delete_retention_in_days=90 if production else 7,
            # Purge protection can never be turned off again, so dev leaves it unset.
            enable_purge_protection=True if production else None,
            public_network_access=_public_access(private_endpoints),
            network_acls=keyvault.NetworkRuleSetArgs(
                default_action="Deny" if private_endpoints else "Allow", bypass="AzureServices"
            ),
        ),
        tags=ctx.tags,
        opts=ctx.stateful(parent=parent),
    )
    secret_value = random.RandomPassword("flask-secret-key", length=64, special=False,
                                         opts=pulumi.ResourceOptions(parent=parent))
    # Written through ARM (control plane), so the deployer needs no data-plane role on the vault.
    secret = keyvault.Secret(
        "flask-secret-key",
        secret_name=SECRET_KEY_NAME,
        vault_name=vault.name,
        resource_group_name=ctx.rg_name,
        # Sealed explicitly: the provider marks `result` secret, but only the engine applies
        # that, and nothing should depend on it to keep the key out of plain text.
        properties=keyvault.SecretPropertiesArgs(value=pulumi.Output.secret(secret_value.result),
                                                 content_type="text/plain"),
        opts=ctx.stateful(parent=parent),
    )
    return vault, secret


def _postgres_server(args: DataServicesArgs, names: pulumi.Output[Names],
                     parent: pulumi.Resource) -> dbforpostgresql.Server:
    ctx, settings = args.ctx, args.postgres
    return dbforpostgresql.Server(
        "postgres",
        server_name=names.apply(lambda n: n.postgres_server),
        resource_group_name=ctx.rg_name,
        location=ctx.location,
        version="16",
        sku=dbforpostgresql.SkuArgs(name=settings.sku, tier=settings.sku_tier),
        storage=dbforpostgresql.StorageArgs(storage_size_gb=settings.storage_gb,
                                            auto_grow="Enabled"),
        backup=dbforpostgresql.BackupArgs(
            backup_retention_days=settings.backup_retention_days,
            geo_redundant_backup="Enabled" if settings.geo_redundant_backup else "Disabled",
        ),
        high_availability=dbforpostgresql.HighAvailabilityArgs(
            mode="ZoneRedundant" if settings.high_availability else "Disabled"
        ),
        auth_config=dbforpostgresql.AuthConfigArgs(
            active_directory_auth="Enabled",
            password_auth="Disabled",  # noqa: S106 - switches passwords off
            tenant_id=ctx.tenant_id,
        ),
        # Public-access mode (no delegated subnet): the only mode Private Link supports. Outside
        # dev the public endpoint is then switched off and the private endpoint is the way in.
        network=dbforpostgresql.NetworkArgs(
            public_network_access=_public_access(args.private_endpoints)),
        create_mode="Create",
        tags=ctx.tags,
        opts=ctx.stateful(parent=parent),
    )


def _server_setting(ctx: Context, server: dbforpostgresql.Server, name: str, value: str,
                    after: pulumi.Resource, parent: pulumi.Resource,
                    ) -> dbforpostgresql.Configuration:
    return dbforpostgresql.Configuration(
        f"postgres-{name.replace('_', '-')}",
        configuration_name=name,
        server_name=server.name,
        resource_group_name=ctx.rg_name,
        value=value,
        source="user-override",
        # A flexible server applies one change at a time; chain them to avoid ServerBusy.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[after]),
    )


def _dev_firewall(args: DataServicesArgs, server: dbforpostgresql.Server,
                  after: pulumi.Resource, parent: pulumi.Resource) -> list[pulumi.Resource]:
    """Basic tier only: Azure services (the web app), optionally the deployer's address and the
    developers' ranges (config developerIpRanges, for `make dev-azure`)."""
    rules = [("azure-services", AZURE_SERVICES_RULE, "0.0.0.0", "0.0.0.0")]  # noqa: S104
    if args.deployer_ip_address:
        address = args.deployer_ip_address
        rules.append(("deployer", "deployer", address, address))
    rules += developer_firewall_rules(args.developers)
    created: list[pulumi.Resource] = []
    for key, rule_name, start, end in rules:
        after = dbforpostgresql.FirewallRule(
            f"postgres-firewall-{key}",
            firewall_rule_name=rule_name,
            server_name=server.name,
            resource_group_name=args.ctx.rg_name,
            start_ip_address=start,
            end_ip_address=end,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[after]),
        )
        created.append(after)
    return created


def developer_firewall_rules(developers: DeveloperAccess | None,
                             ) -> list[tuple[str, str, str, str]]:
    """(logical key, rule name, first address, last address) per developer range."""
    if developers is None:
        return []
    rules = []
    for cidr in developers.ip_ranges:
        network = ipaddress.IPv4Network(cidr)
        # Named after the range, so adding or removing one leaves the others untouched.
        name = "developer-" + cidr.replace(".", "-").replace("/", "-")
        rules.append((name, name, str(network[0]), str(network[-1])))
    return rules


def create_postgres(args: DataServicesArgs, names: pulumi.Output[Names],
                    parent: pulumi.Resource,
                    ) -> tuple[dbforpostgresql.Server, dbforpostgresql.Database,
                               dbforpostgresql.AdministratorsMicrosoftEntra,
                               list[pulumi.Resource]]:
    ctx = args.ctx
    server = _postgres_server(args, names, parent)
    admin_cfg = args.postgres.admin
    admin = dbforpostgresql.AdministratorsMicrosoftEntra(
        "postgres-entra-admin",
        object_id=admin_cfg.object_id,
        principal_name=admin_cfg.principal_name,
        principal_type=admin_cfg.principal_type[0].lower() + admin_cfg.principal_type[1:],
        tenant_id=ctx.tenant_id,
        server_name=server.name,
        resource_group_name=ctx.rg_name,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    database = dbforpostgresql.Database(
        "postgres-database",
        database_name=ctx.names.database,
        server_name=server.name,
        resource_group_name=ctx.rg_name,
        charset="UTF8",
        collation="en_US.utf8",
        opts=ctx.stateful(admin, parent=parent),
    )
    tls = _server_setting(ctx, server, "require_secure_transport", "on", database, parent)
    tls_version = _server_setting(ctx, server, "ssl_min_protocol_version", "TLSv1.2", tls,
                                  parent)
    # The site's name search needs these (infra/sql/app_role.sql creates them).
    extensions = _server_setting(ctx, server, "azure.extensions", "PG_TRGM,UNACCENT",
                                 tls_version, parent)
    ready: list[pulumi.Resource] = [admin, database, tls, tls_version, extensions]
    if not args.private_endpoints:
        ready += _dev_firewall(args, server, extensions, parent)
    return server, database, admin, ready


@dataclass(frozen=True)
class DataServicesArgs:
    ctx: Context
    # Public endpoints off, reached through private endpoints in the VNet (standard, isolated);
    # otherwise public, behind Entra-only sign-in and PostgreSQL's firewall rules (basic).
    private_endpoints: bool
    postgres: PostgresSettings
    # Public endpoints only: one more PostgreSQL firewall rule, for the deployer's address.
    deployer_ip_address: str | None = None
    # Dev, when configured: a PostgreSQL firewall rule per developer range.
    developers: DeveloperAccess | None = None


class DataServices(pulumi.ComponentResource):
    """Photo storage, the Key Vault holding SECRET_KEY, and PostgreSQL with its database."""

    storage_account: storage.StorageAccount
    photo_container: storage.BlobContainer
    vault: keyvault.Vault
    secret_key: keyvault.Secret
    postgres: dbforpostgresql.Server
    database: dbforpostgresql.Database
    postgres_admin: dbforpostgresql.AdministratorsMicrosoftEntra
    # Everything that must exist before the server accepts the SQL step (admin, TLS, firewall).
    postgres_ready: list[pulumi.Resource]

    def __init__(self, name: str, args: DataServicesArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:data:DataServices", name, None, opts)
        ctx = args.ctx
        self.storage_account, self.photo_container = create_storage(
            ctx, args.private_endpoints, self)
        names = recreatable_names(ctx, self)
        self.vault, self.secret_key = create_key_vault(ctx, names, args.private_endpoints, self)
        self.postgres, self.database, self.postgres_admin, self.postgres_ready = (
            create_postgres(args, names, self))
        self.register_outputs({
            "storageAccountId": self.storage_account.id,
            "keyVaultId": self.vault.id,
            "postgresServerId": self.postgres.id,
        })

    @property
    def blob_endpoint(self) -> pulumi.Output[str]:
        # The app wants the bare account URL, without the trailing slash ARM reports.
        return self.storage_account.primary_endpoints.blob.apply(lambda url: url.rstrip("/"))

    @property
    def secret_key_reference(self) -> pulumi.Output[str]:
        # Built from the vault URI, not the Secret's outputs: those are secret because its
        # `properties` input is, and would seal every app setting next to this one.
        # Versionless URI: App Service picks up a rotated secret without a settings change.
        return self.vault.properties.vault_uri.apply(
            lambda uri: f"@Microsoft.KeyVault(SecretUri={uri}secrets/{SECRET_KEY_NAME})"
        )
