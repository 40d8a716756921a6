"""The stack's own deployer: an identity, and a place inside Azure, for the data-plane steps.

`pulumi up` runs from outside every network (a laptop, a GitHub-hosted runner) with a login that
may expire mid-run. So nothing in this program calls the az CLI or psql on the deployer: the two
steps that need a data plane (the PostgreSQL role SQL and the package deploy) run as Azure
deployment scripts (`Microsoft.Resources/deploymentScripts`, kind AzureCLI), which ARM starts in a
container instance:

* as a user-assigned "deployer" identity that this stack creates first, made an additional
  Microsoft Entra administrator of PostgreSQL through ARM, Website Contributor on the web app
  (`az webapp deploy`, its slots included) and Storage Blob Data Reader on the package container;
* inside a subnet of the stack's VNet delegated to Microsoft.ContainerInstance/containerGroups
  (standard, isolated), where the private DNS zones resolve PostgreSQL's private endpoint and the
  ASE's internal SCM site; in basic (no VNet) the container runs on Azure's public network, which
  the dev server's firewall admits as an Azure address.

The package reaches the container without the deployer touching a private data plane: Pulumi
uploads it to a blob in a small storage account of its own (reachable from anywhere, holding only
the release zip and the scripts' working files), and the script downloads it with its identity.

Deployment scripts mount an Azure Files share from that account with its key, and Pulumi's Blob
resource writes with the key too: this account alone keeps shared-key access on (see
infra/README.md, "First deploy from empty", for the trade-off). The photos account stays
Entra-only.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import dbforpostgresql, managedidentity, resources, storage, web

from infra.config import DeveloperAccess
from infra.context import Context
from infra.db_role import SQL_SCRIPT, owner_role, psql_command
from infra.identity import grant
from infra.site_package import PackageRef, deploy_command

# Built-in role definition ids (the same in every Azure tenant).
WEBSITE_CONTRIBUTOR = "de139f84-1756-47ae-9be6-808fbbe84772"
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
# What a deployment script's identity needs on its storage account when the script runs in a
# subnet ("Access a private virtual network from a Bicep deployment script", Microsoft Learn).
STORAGE_FILE_DATA_PRIVILEGED_CONTRIBUTOR = "69566ab7-960f-475b-8e7c-b3118f30c6bd"

PACKAGE_CONTAINER = "packages"
# The Azure CLI release the script container runs; pinned so a rerun runs the same tools.
AZ_CLI_VERSION = "2.67.0"
# ARM deletes the script resource (and its container) this long after it finished.
SCRIPT_RETENTION = "PT1H"
# How long the platform lets one script run, and how long Pulumi waits for it (a bit longer).
SCRIPT_TIMEOUTS = {"database-roles": "PT20M", "deploy": "PT40M", "custom-domain-sni": "PT10M"}
PULUMI_SCRIPT_TIMEOUT = pulumi.CustomTimeouts(create="60m", update="60m", delete="15m")
# A role assignment made minutes ago may not apply yet: the script retries its first data-plane
# call for up to this long before it gives up.
GRANT_WAIT_SECONDS = 900


@dataclass(frozen=True)
class DeployerArgs:
    ctx: Context
    package: PackageRef
    # The scripts run in a subnet of the stack's VNet (standard, isolated), not on Azure's
    # public network (basic).
    in_vnet: bool
    # Config scriptAttempt: a new number runs every script again (DeploymentScript).
    script_attempt: int


class Deployer(pulumi.ComponentResource):
    """The deployer identity, its storage (package + script working files) and its grants."""

    identity: managedidentity.UserAssignedIdentity
    storage_account: storage.StorageAccount
    package_container: storage.BlobContainer
    package_blob: storage.Blob
    grants: tuple[pulumi.Resource, ...]
    script_attempt: int

    def __init__(self, name: str, args: DeployerArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("restaurant-review:deployer:Deployer", name, None, opts)
        ctx = args.ctx
        self.script_attempt = args.script_attempt
        child = pulumi.ResourceOptions(parent=self)
        self.identity = managedidentity.UserAssignedIdentity(
            "deployer-identity",
            resource_name_=ctx.names.deployer_identity,
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            tags=ctx.tags,
            opts=child,
        )
        self.storage_account = storage.StorageAccount(
            "deployer-storage",
            account_name=ctx.names.deployer_storage_account,
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            kind="StorageV2",
            sku=storage.SkuArgs(name="Standard_LRS"),  # release artefacts: rebuilt, not kept
            minimum_tls_version="TLS1_2",
            enable_https_traffic_only=True,
            allow_blob_public_access=False,
            # Required: a deployment script's own storage account must allow shared keys (its
            # container mounts the file share with the key, Microsoft Learn, "Use an existing
            # storage account"), and Pulumi's Blob resource uploads with it too.
            allow_shared_key_access=True,
            allow_cross_tenant_replication=False,
            # All networks: the deployer uploads from wherever `pulumi up` runs. The
            # private-network page also limits the account to the script subnet ("selected
            # networks"); that step shuts others out rather than letting the script in, and here
            # it would shut out the upload. What does let it in stays: the trusted-services
            # bypass, the file-data role (_grants) and the subnet's Microsoft.Storage service
            # endpoint (infra/network.py).
            public_network_access="Enabled",
            network_rule_set=storage.NetworkRuleSetArgs(default_action="Allow",
                                                        bypass="AzureServices"),
            # policy/rules.py exempts this account, by this tag, from the shared-key and
            # protection rules: it holds only release artefacts (infra/README.md).
            tags={**ctx.tags, "purpose": "deployment-artefacts"},
            opts=child,
        )
        self.package_container = storage.BlobContainer(
            "deployer-package-container",
            container_name=PACKAGE_CONTAINER,
            account_name=self.storage_account.name,
            resource_group_name=ctx.rg_name,
            public_access="None",
            opts=child,
        )
        self.package_blob = storage.Blob(
            "deployer-package",
            # A new package is a new blob name: the deploy never reads a half-replaced file.
            blob_name=package_blob_name(args.package),
            container_name=self.package_container.name,
            account_name=self.storage_account.name,
            resource_group_name=ctx.rg_name,
            type="Block",
            content_type="application/zip",
            source=pulumi.FileAsset(args.package.path),
            opts=child,
        )
        self.grants = self._grants(ctx, args.in_vnet)
        self.register_outputs({
            "identityPrincipalId": self.identity.principal_id,
            "storageAccountName": self.storage_account.name,
            "packageBlob": self.package_blob.name,
        })

    def _grants(self, ctx: Context, in_vnet: bool) -> tuple[pulumi.Resource, ...]:
        """Made right after the identity, so RBAC has applied long before a script runs."""
        reader = grant("deployer-package-reader", role_id=STORAGE_BLOB_DATA_READER,
                       scope=self.package_container.id,
                       scope_key=f"{ctx.names.deployer_storage_account}/{PACKAGE_CONTAINER}",
                       principal_id=self.identity.principal_id,
                       principal_key=_principal_key(ctx), subscription_id=ctx.subscription_id,
                       parent=self)
        if not in_vnet:  # basic: the scripts run on Azure's public network
            return (reader,)
        # Scripts in a subnet: Microsoft Learn's private-network page gives the script's identity
        # this role on the account whose file share the script mounts.
        file_share = grant(
            "deployer-script-files", role_id=STORAGE_FILE_DATA_PRIVILEGED_CONTRIBUTOR,
            scope=self.storage_account.id, scope_key=ctx.names.deployer_storage_account,
            principal_id=self.identity.principal_id, principal_key=_principal_key(ctx),
            subscription_id=ctx.subscription_id, parent=self)
        return (reader, file_share)

    def allow_deploy_to(self, ctx: Context, app: web.WebApp) -> pulumi.Resource:
        """Website Contributor on the web app (its slots included), made as soon as it exists.

        The SQL script runs before the deploy and the deploy retries while the grant applies.
        """
        return grant("deployer-website-contributor", role_id=WEBSITE_CONTRIBUTOR,
                     scope=app.id, scope_key=ctx.names.web_app,
                     principal_id=self.identity.principal_id, principal_key=_principal_key(ctx),
                     subscription_id=ctx.subscription_id, parent=self)

    def postgres_admin(self, ctx: Context, server: dbforpostgresql.Server,
                       after: Sequence[pulumi.Resource]) -> pulumi.CustomResource:
        """The deployer as an additional Entra administrator of the server (ARM, no SQL).

        `after`: the server's other changes; a flexible server takes one change at a time.
        """
        return dbforpostgresql.AdministratorsMicrosoftEntra(
            "postgres-deployer-admin",
            object_id=self.identity.principal_id,
            principal_name=self.identity.name,
            principal_type="servicePrincipal",
            tenant_id=ctx.tenant_id,
            server_name=server.name,
            resource_group_name=ctx.rg_name,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[server, *after]),
        )


@dataclass(frozen=True)
class SiteTarget:
    """What the scripts need to know about one site (the app or a slot)."""

    key: str  # "app" or the slot's name
    slot: str | None
    database_role: str
    principal_id: pulumi.Output[str]  # the identity its database role is bound to
    resource: pulumi.CustomResource  # the WebApp or WebAppSlot


@dataclass(frozen=True)
class DatabaseLogin:
    """One login role the SQL step makes: its name, its Entra principal and that one's type."""

    role: str
    object_id: pulumi.Input[str]
    principal_type: str  # "service" (an identity) or "group"


def database_logins(sites: Sequence[SiteTarget],
                    developers: DeveloperAccess | None) -> list[DatabaseLogin]:
    """Every site's identity, then (dev, when configured) the developers' group."""
    logins = [DatabaseLogin(site.database_role, site.principal_id, "service") for site in sites]
    if developers is not None:
        logins.append(DatabaseLogin(developers.group_name, developers.group_object_id, "group"))
    return logins


def run_database_roles(ctx: Context, deployer: Deployer, postgres_host: pulumi.Output[str],
                       sites: Sequence[SiteTarget], developers: DeveloperAccess | None,
                       subnet_id: pulumi.Input[str] | None,
                       after: Sequence[pulumi.Resource]) -> DeploymentScript:
    """infra/sql/app_role.sql for every login (database_logins), as the deployer (a PostgreSQL
    admin); the script checks each role's privileges after granting them."""
    sql = SQL_SCRIPT.read_text(encoding="utf-8")
    logins = database_logins(sites, developers)
    object_ids = pulumi.Output.all(*(login.object_id for login in logins))
    script = object_ids.apply(lambda ids: database_roles_script(sql, [
        psql_command(login.role, object_id, owner_role(ctx), ctx.names.database,
                     login.principal_type)
        for login, object_id in zip(logins, ids, strict=True)]))
    return DeploymentScript("database-roles", DeploymentScriptArgs(
        ctx, deployer, "database-roles", script,
        environment={"PGHOST": postgres_host, "PGUSER": deployer.identity.name,
                     "PGDATABASE": "postgres", "PGSSLMODE": "require"},
        subnet_id=subnet_id,
        # A new principal (app or slot recreated, another developer group) or a changed SQL
        # script runs it again.
        triggers=[hashlib.sha256(sql.encode()).hexdigest(),
                  *(login.object_id for login in logins),
                  *(login.role for login in logins)],
        depends_on=[*(site.resource for site in sites), *after],
    ), pulumi.ResourceOptions(parent=deployer))


def deploy_package(ctx: Context, deployer: Deployer, target: SiteTarget,
                   app_name: pulumi.Output[str], package: PackageRef,
                   subnet_id: pulumi.Input[str] | None,
                   after: Sequence[pulumi.Resource]) -> DeploymentScript:
    """The package from the deployer's blob to `target` (`az webapp deploy --type zip`)."""
    script = pulumi.Output.all(ctx.rg_name, app_name, ctx.subscription_id).apply(
        lambda values: deploy_script(values[0], values[1], target.slot, values[2]))
    return DeploymentScript("deploy", DeploymentScriptArgs(
        ctx, deployer, "deploy", script,
        environment={"PACKAGE_ACCOUNT": deployer.storage_account.name,
                     "PACKAGE_BLOB": deployer.package_blob.name,
                     "PACKAGE_SHA256": package.sha256},
        subnet_id=subnet_id,
        # The package hash is what makes a new deploy; the site id redeploys into a replaced app.
        triggers=[package.sha256, target.resource.id],
        depends_on=[target.resource, deployer.package_blob, *after],
    ), pulumi.ResourceOptions(parent=deployer))


def _principal_key(ctx: Context) -> str:
    return f"{ctx.names.deployer_identity}/deployer"


def package_blob_name(package: PackageRef) -> str:
    return f"webapp-{package.sha256[:16]}.zip"


@dataclass(frozen=True)
class DeploymentScriptArgs:
    """One script run by the deployer identity inside the stack's network."""

    ctx: Context
    deployer: Deployer
    key: str  # "database-roles" or "deploy"
    script: pulumi.Input[str]
    environment: Mapping[str, pulumi.Input[str]]
    subnet_id: pulumi.Input[str] | None  # None: Azure's public network (basic tier)
    # What makes the script run again (with config scriptAttempt: DeploymentScript).
    triggers: Sequence[pulumi.Input[str]]
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class DeploymentScript(pulumi.ComponentResource):
    """An AzureCLI deployment script: ARM runs it, so no login or network is needed here."""

    run: resources.AzureCliScript

    def __init__(self, name: str, args: DeploymentScriptArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("restaurant-review:deployer:DeploymentScript", name, None, opts)
        ctx, deployer = args.ctx, args.deployer
        keys = storage.list_storage_account_keys_output(
            account_name=deployer.storage_account.name, resource_group_name=ctx.rg_name)
        tag = pulumi.Output.all(*args.triggers).apply(
            lambda values: trigger_tag([*values, f"attempt {deployer.script_attempt}"]))
        self.run = resources.AzureCliScript(
            f"script-{args.key}",
            # A new tag is a new script resource: Pulumi creates it (it runs) and then deletes
            # the old one. Never a create under the name of a failed run that ARM still keeps.
            script_name=tag.apply(lambda digest: script_name(ctx, args.key, digest)),
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            kind="AzureCLI",
            az_cli_version=AZ_CLI_VERSION,
            identity=resources.ManagedServiceIdentityArgs(
                type="UserAssigned",
                user_assigned_identities=[deployer.identity.id],
            ),
            script_content=args.script,
            environment_variables=[
                resources.EnvironmentVariableArgs(name=env_name, value=value)
                for env_name, value in sorted(args.environment.items())
            ],
            force_update_tag=tag,
            # No container group name: ARM derives it from the script's resource id, so a new
            # run never meets the container of a failed one kept for its logs.
            container_settings=resources.ContainerConfigurationArgs(
                subnet_ids=[resources.ContainerGroupSubnetIdArgs(id=args.subnet_id)]
                if args.subnet_id is not None else None,
            ),
            storage_account_settings=resources.StorageAccountConfigurationArgs(
                storage_account_name=deployer.storage_account.name,
                storage_account_key=pulumi.Output.secret(keys.keys[0].value),
            ),
            timeout=SCRIPT_TIMEOUTS[args.key],
            retention_interval=SCRIPT_RETENTION,
            # A failed run's container stays for its logs; ARM deletes the failed script resource
            # SCRIPT_RETENTION after it ended.
            cleanup_preference="OnSuccess",
            tags=ctx.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[deployer.identity, deployer.storage_account, *deployer.grants,
                            *args.depends_on],
                custom_timeouts=PULUMI_SCRIPT_TIMEOUT,
            ),
        )
        self.register_outputs({"scriptName": self.run.name})


def trigger_tag(values: Sequence[str]) -> str:
    """A short, stable digest of everything that should make the script run again."""
    return hashlib.sha256("|".join(values).encode()).hexdigest()[:32]


def script_name(ctx: Context, key: str, tag: str) -> str:
    """One name per run: ARM never reruns a script whose properties did not change, and
    azure-native refuses to create a resource that already exists."""
    return f"script-{ctx.names.base}-{key}-{tag[:8]}"


def retry_until_granted(command: str, what: str) -> str:
    """Shell that retries `command` while a fresh role assignment may still be applying."""
    return "\n".join([
        f"deadline=$(( $(date +%s) + {GRANT_WAIT_SECONDS} ))",
        f"until {command}; do",
        *_give_up_at_deadline(what),
        "  sleep 30",
        "done",
    ])


def _give_up_at_deadline(what: str) -> list[str]:
    return ['  if [ "$(date +%s)" -ge "$deadline" ]; then',
            f'    echo "{what} still failing after {GRANT_WAIT_SECONDS}s: check the deployer '
            "identity's role assignments\" >&2",
            "    exit 1",
            "  fi"]


# psql's exit status when it could not connect (or lost the connection); 3 is a failed statement.
PSQL_CONNECTION_FAILED = 2


def _retry_connection(command: str, what: str) -> str:
    """Like `retry_until_granted`, but only while psql cannot sign in (the new Entra
    administrator is being applied): a failing statement fails the script at once, not after
    GRANT_WAIT_SECONDS."""
    return "\n".join([
        f"deadline=$(( $(date +%s) + {GRANT_WAIT_SECONDS} ))",
        "while :; do",
        f"  status=0; {command} || status=$?",
        f'  [ "$status" -eq {PSQL_CONNECTION_FAILED} ] || break',
        *_give_up_at_deadline(what),
        "  sleep 30",
        "done",
        '[ "$status" -eq 0 ] || exit "$status"',
    ])


def deploy_script(resource_group: str, app_name: str, slot: str | None,
                  subscription: str) -> str:
    """Downloads the package with the script's identity, checks its hash, deploys it."""
    download = ("az storage blob download --auth-mode login --only-show-errors --output none "
                '--account-name "$PACKAGE_ACCOUNT" --container-name ' + PACKAGE_CONTAINER +
                ' --name "$PACKAGE_BLOB" --file package.zip')
    return "\n".join([
        "set -eu",
        'cd "$(mktemp -d)"',  # private scratch space, not the shared script folder
        retry_until_granted(download, "downloading the package"),
        'echo "$PACKAGE_SHA256  package.zip" | sha256sum -c -',
        # Website Contributor on the app was granted minutes ago: wait until it applies.
        retry_until_granted(shlex.join(["az", "webapp", "show", "--resource-group",
                                        resource_group, "--name", app_name, "--output", "none",
                                        "--only-show-errors"]),
                            "reading the web app"),
        deploy_command(resource_group, app_name, slot, subscription, "package.zip"),
        *([] if slot is None else _first_release_to_production(resource_group, app_name,
                                                                subscription)),
    ]) + "\n"


def _first_release_to_production(resource_group: str, app_name: str,
                                 subscription: str) -> list[str]:
    """On the very first release, production gets the package too.

    Until then production has never had a deployment and serves an empty site, so its health
    check and the alerts on it would report it down until someone swaps. Later releases only
    reach production through the health-gated swap (release/swap_slots.py).
    """
    count = shlex.join(["az", "webapp", "log", "deployment", "list", "--resource-group",
                        resource_group, "--name", app_name, "--query", "length(@)",
                        "--output", "tsv", "--only-show-errors"])
    # On a line of its own: a failing `az` inside `[ "$(...)" = 0 ]` would not stop `set -e`.
    return [f"deployments=$({count})",
            'if [ "$deployments" = "0" ]; then',
            "  " + deploy_command(resource_group, app_name, None, subscription, "package.zip"),
            "fi"]


# The azure-cli image (AZ_CLI_VERSION) is Azure Linux, which has no psql. Its `postgresql`
# package is the server, whose install scripts run groupadd and initdb (absent from the image);
# psql and libpq are in `postgresql-libs`, a client-only package with no install scripts.
PSQL_PACKAGE = "postgresql-libs"
_INSTALL_PSQL = f"""\
if ! command -v psql >/dev/null 2>&1; then
  tdnf install -y {PSQL_PACKAGE} >/dev/null
fi
psql --version"""


def database_roles_script(sql: str, psql_commands: Sequence[str]) -> str:
    """Runs infra/sql/app_role.sql once per identity, one after the other (never concurrently)."""
    if "\nSQL\n" in f"\n{sql}\n":
        raise ValueError("the SQL script must not contain a line reading SQL (heredoc marker)")
    lines = ["set -eu", 'cd "$(mktemp -d)"', _INSTALL_PSQL, "cat > app_role.sql <<'SQL'",
             sql.rstrip("\n"), "SQL"]
    # The first connection retries while the new Entra administrator is being applied.
    first, *rest = psql_commands
    lines.append(_retry_connection(f"{first} < app_role.sql", "signing in to PostgreSQL"))
    lines += [f"{command} < app_role.sql" for command in rest]
    return "\n".join(lines) + "\n"
