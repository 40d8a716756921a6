"""The sites' user-assigned identity, its least-privilege role assignments and the wait for them.

Each assignment is scoped to the one resource it grants (the photo container, the vault), never a
resource group or subscription. Its name is a GUID derived from scope, principal and role, so
reruns name it the same and the diff stays stable. A recreated identity has a new principal
id, which replaces the assignment under the same name: it is deleted first, since Azure refuses
a second assignment with that name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, managedidentity
from pulumiverse_time import Sleep

from infra.context import Context
from infra.data import PHOTO_CONTAINER, DataServices

# Built-in role definition ids (the same in every Azure tenant).
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"

# Azure RBAC changes take up to 10 minutes to apply (learn.microsoft.com/azure/
# role-based-access-control/troubleshooting). What reads through a fresh grant once, without
# retrying, waits this long after it: a margin over the 10 minutes.
GRANT_PROPAGATION_WAIT = "12m"

# The production app's key: the identity's resource names derive from it.
SITE_IDENTITY_KEY = "app"
# Fixed namespace: changing it would rename (and so recreate) every assignment.
ROLE_ASSIGNMENT_NAMESPACE = uuid.UUID("5c0f7a4e-8f0b-4d43-9a61-2f1d6c1d9a10")


def role_assignment_name(scope_key: str, principal_key: str, role_id: str) -> str:
    """Deterministic GUID for (scope, principal, role); inputs are stable names, not outputs."""
    return str(uuid.uuid5(ROLE_ASSIGNMENT_NAMESPACE, f"{scope_key}|{principal_key}|{role_id}"))


def wait_for_grant(logical_name: str, assignment: authorization.RoleAssignment,
                   parent: pulumi.Resource) -> Sleep:
    """A time Sleep of GRANT_PROPAGATION_WAIT that starts after `assignment` and runs again
    whenever it is made anew (new principal, scope or role), so what follows a new grant waits
    too."""
    return Sleep(
        logical_name, create_duration=GRANT_PROPAGATION_WAIT,
        triggers={"principalId": assignment.principal_id, "scope": assignment.scope,
                  "roleDefinitionId": assignment.role_definition_id},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[assignment]))


def grant(
    logical_name: str,
    *,
    role_id: str,
    scope: pulumi.Output[str],
    scope_key: str,
    principal_id: pulumi.Output[str],
    principal_key: str,
    subscription_id: pulumi.Output[str],
    parent: pulumi.Resource,
    principal_type: str = "ServicePrincipal",
) -> authorization.RoleAssignment:
    return authorization.RoleAssignment(
        logical_name,
        role_assignment_name=role_assignment_name(scope_key, principal_key, role_id),
        scope=scope,
        principal_id=principal_id,
        # Without this ARM assumes User and has to look the principal up, which fails for a
        # managed identity created seconds earlier (replication delay).
        principal_type=principal_type,
        role_definition_id=subscription_id.apply(
            lambda sub: f"/subscriptions/{sub}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role_id}"
        ),
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
    )


@dataclass(frozen=True)
class SiteIdentityArgs:
    ctx: Context
    data: DataServices


class SiteIdentity(pulumi.ComponentResource):
    """The one user-assigned identity every site (the app, its slot) runs as, granted before any
    site exists.

    A system-assigned identity is born with its site, so its Key Vault grant would land after
    the site's first start, and RBAC takes minutes more to apply: App Service would then hand the
    app the literal `@Microsoft.KeyVault(...)` text. This identity and its grants exist from the
    start of the run.

    App Service resolves the `SECRET_KEY` reference when the site starts, and again only on a
    configuration change or after 24 hours, keeping the reference text while it cannot read the
    secret; the site refuses to start on that text (webapp/config.py). So the sites wait
    GRANT_PROPAGATION_WAIT after the Key Vault grant (`key_vault_applied`). On a first deploy
    that costs little: the sites also wait for PostgreSQL (5-15 minutes), and the wait runs
    alongside it. The photo grant needs no wait: the app reaches the photos per request (and
    /readyz per probe), so a request made before it applies fails alone and the next one works.

    One identity for the app and its slot, not one each: a swap restarts the staging slot's
    instances with production's settings while each slot keeps its own identities, and staging
    becomes production a moment later, so it needs production's identity and privileges anyway
    (infra/README.md, "Slot swaps: one identity for both slots").
    """

    identity: managedidentity.UserAssignedIdentity
    grants: tuple[authorization.RoleAssignment, ...]
    key_vault_applied: Sleep  # GRANT_PROPAGATION_WAIT after the Key Vault grant

    def __init__(self, name: str, args: SiteIdentityArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        # The type token and the "app-" names are part of the live identity's URN: they stay
        # as they are, so the production app keeps its identity and client id.
        super().__init__("restaurant-review:identity:SiteIdentities", name, None, opts)
        ctx, data = args.ctx, args.data
        self.identity = managedidentity.UserAssignedIdentity(
            f"{SITE_IDENTITY_KEY}-identity",
            resource_name_=ctx.names.site_identity(SITE_IDENTITY_KEY),
            resource_group_name=ctx.rg_name,
            location=ctx.location,
            tags=ctx.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.grants = self._grant(ctx, data)
        *_, key_vault = self.grants
        self.key_vault_applied = wait_for_grant(
            f"{SITE_IDENTITY_KEY}-key-vault-grant-propagation", key_vault, self)
        self.register_outputs({"principalId": self.identity.principal_id})

    def _grant(self, ctx: Context, data: DataServices) -> tuple[authorization.RoleAssignment, ...]:
        """Least privilege: the photo container and the vault (last) only."""
        key, principal_id = SITE_IDENTITY_KEY, self.identity.principal_id
        principal_key = f"{ctx.names.web_app}/{key}"
        return (
            grant(f"{key}-blob-data-contributor", role_id=STORAGE_BLOB_DATA_CONTRIBUTOR,
                  scope=data.photo_container.id,
                  scope_key=f"{ctx.names.storage_account}/{PHOTO_CONTAINER}",
                  principal_id=principal_id, principal_key=principal_key,
                  subscription_id=ctx.subscription_id, parent=self),
            grant(f"{key}-key-vault-secrets-user", role_id=KEY_VAULT_SECRETS_USER,
                  scope=data.vault.id, scope_key=ctx.names.key_vault,
                  principal_id=principal_id, principal_key=principal_key,
                  subscription_id=ctx.subscription_id, parent=self),
        )


def grant_developers(ctx: Context, data: DataServices) -> authorization.RoleAssignment | None:
    """Dev only, when configured: the developers' Entra group may read and write photos in the
    photo container (nothing else in the account), so `make dev-azure` runs the site as them."""
    developers = ctx.cfg.developer_access
    if developers is None:
        return None
    return grant("developers-blob-data-contributor", role_id=STORAGE_BLOB_DATA_CONTRIBUTOR,
                 scope=data.photo_container.id,
                 scope_key=f"{ctx.names.storage_account}/{PHOTO_CONTAINER}",
                 principal_id=pulumi.Output.from_input(developers.group_object_id),
                 principal_key=f"group/{developers.group_object_id}",
                 subscription_id=ctx.subscription_id, parent=data, principal_type="Group")
