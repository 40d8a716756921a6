"""Least-privilege role assignments for the web app's (and slot's) managed identity.

Each assignment is scoped to the one resource it grants (the photo container, the vault), never a
resource group or subscription. Its name is a GUID derived from scope, principal and role, so
reruns name it the same and the diff stays stable. A recreated app or slot has a new principal
id, which replaces the assignment under the same name: it is deleted first, since Azure refuses
a second assignment with that name.
"""

from __future__ import annotations

import uuid

import pulumi
from pulumi_azure_native import authorization

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
