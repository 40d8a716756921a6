"""The sites' user-assigned identities and least-privilege role assignments.

Each assignment is scoped to the one resource it grants (the photo container, the vault), never a
resource group or subscription. Its name is a GUID derived from scope, principal and role, so
reruns name it the same and the diff stays stable. A recreated app or slot has a new principal
id, which replaces the assignment under the same name: it is deleted first, since Azure refuses
a second assignment with that name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, managedidentity

from infra.context import Context
from infra.data import PHOTO_CONTAINER, DataServices

# Built-in role definition ids (the same in every Azure tenant).
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"

# Fixed namespace: changing it would rename (and so recreate) every assignment.
ROLE_ASSIGNMENT_NAMESPACE = uuid.UUID("5c0f7a4e-8f0b-4d43-9a61-2f1d6c1d9a10")


def role_assignment_name(scope_key: str, principal_key: str, role_id: str) -> str:
    """Deterministic GUID for (scope, principal, role); inputs are stable names, not outputs."""
    return str(uuid.uuid5(ROLE_ASSIGNMENT_NAMESPACE, f"{scope_key}|{principal_key}|{role_id}"))


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
) -> authorization.RoleAssignment:
    return authorization.RoleAssignment(
        logical_name,
        role_assignment_name=role_assignment_name(scope_key, principal_key, role_id),
        scope=scope,
        principal_id=principal_id,
        # Without this ARM assumes User and has to look the principal up, which fails for a
        # managed identity created seconds earlier (replication delay).
        principal_type="ServicePrincipal",
        role_definition_id=subscription_id.apply(
            lambda sub: f"/subscriptions/{sub}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{role_id}"
        ),
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
    )


@dataclass(frozen=True)
class SiteIdentitiesArgs:
    ctx: Context
    data: DataServices
    site_keys: tuple[str, ...]  # "app", and the slot's name where the tier has one


class SiteIdentities(pulumi.ComponentResource):
    """One user-assigned identity per site (the app, its slot), granted before any site exists.

    A system-assigned identity is born with its site, so its Key Vault grant would land after
    the site's first start, and RBAC takes minutes more to apply: App Service would then hand the
    app the literal `@Microsoft.KeyVault(...)` text. These identities and their grants exist
    from the start of the run; each site runs as its own (keyVaultReferenceIdentity,
    AZURE_CLIENT_ID), so the first start resolves the secret and reaches the photo container.
    """

    identities: dict[str, managedidentity.UserAssignedIdentity]
    grants: dict[str, tuple[authorization.RoleAssignment, ...]]

    def __init__(self, name: str, args: SiteIdentitiesArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("restaurant-review:identity:SiteIdentities", name, None, opts)
        ctx, data = args.ctx, args.data
        self.identities, self.grants = {}, {}
        for key in args.site_keys:
            identity = managedidentity.UserAssignedIdentity(
                f"{key}-identity",
                resource_name_=ctx.names.site_identity(key),
                resource_group_name=ctx.rg_name,
                location=ctx.location,
                tags=ctx.tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.identities[key] = identity
            self.grants[key] = self._grant(ctx, data, key, identity)
        self.register_outputs({f"{key}PrincipalId": identity.principal_id
                               for key, identity in self.identities.items()})

    def _grant(self, ctx: Context, data: DataServices, key: str,
               identity: managedidentity.UserAssignedIdentity
               ) -> tuple[authorization.RoleAssignment, ...]:
        """Least privilege: the photo container and the vault only."""
        principal_key = f"{ctx.names.web_app}/{key}"
        return (
            grant(f"{key}-blob-data-contributor", role_id=STORAGE_BLOB_DATA_CONTRIBUTOR,
                  scope=data.photo_container.id,
                  scope_key=f"{ctx.names.storage_account}/{PHOTO_CONTAINER}",
                  principal_id=identity.principal_id, principal_key=principal_key,
                  subscription_id=ctx.subscription_id, parent=self),
            grant(f"{key}-key-vault-secrets-user", role_id=KEY_VAULT_SECRETS_USER,
                  scope=data.vault.id, scope_key=ctx.names.key_vault,
                  principal_id=identity.principal_id, principal_key=principal_key,
                  subscription_id=ctx.subscription_id, parent=self),
        )
