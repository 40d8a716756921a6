"""What `pulumi destroy` does to each stack, and that dev comes back right after one.

Derived from the resource options the program declares (infra/README.md, "Destroy and
recreate"): a protected resource makes the destroy an error; a retained one is dropped from the
state and left in Azure, unless Pulumi deletes its resource group, which takes everything inside
with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from review.mocks import CapturedResource, run_stack

RESOURCE_GROUP = "azure-native:resources:ResourceGroup"
_GROUP_IN_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/([^/]+)", re.IGNORECASE)
# Names Azure keeps reserved for days after a delete (soft delete, dropped-server backups).
RESERVED_AFTER_DELETE = {"azure-native:keyvault:Vault": "vaultName",
                         "azure-native:dbforpostgresql:Server": "serverName"}
# Names Azure frees on delete: they stay what the subscription and stack make them.
FREED_ON_DELETE = {"azure-native:web:WebApp": "name",
                   "azure-native:storage:StorageAccount": "accountName"}


@dataclass(frozen=True)
class DestroyOutcome:
    refused_by: tuple[str, ...]  # protected: `pulumi destroy` is an error while they are
    left_in_azure: tuple[str, ...]  # retained, in a group that stays: Pulumi only forgets them
    deleted_by_group: tuple[str, ...]  # retained, but their resource group is deleted


def _group(resource: CapturedResource) -> str | None:
    match = _GROUP_IN_ID.match(resource.arm_id or "")
    return match.group(1).lower() if match else None


def destroy_outcome(resources: Iterable[CapturedResource]) -> DestroyOutcome:
    resources = list(resources)
    kept_groups = {_group(r) for r in resources if r.type == RESOURCE_GROUP and r.retain_on_delete}
    retained = [r for r in resources if r.retain_on_delete and r.type != RESOURCE_GROUP]
    return DestroyOutcome(
        refused_by=tuple(r.name for r in resources if r.protect),
        left_in_azure=tuple(r.name for r in retained if _group(r) in kept_groups),
        deleted_by_group=tuple(r.name for r in retained if _group(r) not in kept_groups))


def test_dev_is_destroyed_whole(basic_view):
    assert destroy_outcome(basic_view.run.resources) == DestroyOutcome((), (), ())


def test_production_stacks_refuse_destroy_and_keep_their_data(protected_view):
    outcome = destroy_outcome(protected_view.run.resources)
    data = {"resource-group", "storage", "photo-container", "key-vault", "flask-secret-key",
            "postgres", "postgres-database"}
    assert data <= set(outcome.refused_by)
    # Even with protection lifted, the group stays, so its retained data stays with it.
    assert data - {"resource-group"} <= set(outcome.left_in_azure)
    assert protected_view.one("resources:ResourceGroup").retain_on_delete


def test_no_retained_resource_sits_in_a_group_pulumi_deletes(stack_view):
    assert destroy_outcome(stack_view.run.resources).deleted_by_group == ()


def _resource(type_: str, name: str, arm_id: str, retain: bool) -> CapturedResource:
    return CapturedResource(type=type_, name=name, urn=f"urn:{name}", parent="urn:stack",
                            inputs={}, protect=retain, retain_on_delete=retain, depends_on=(),
                            custom_timeouts=None, arm_id=arm_id)


def test_a_retained_vault_in_a_deleted_group_is_caught():
    group_id = "/subscriptions/s/resourceGroups/rg-prod"
    vault = _resource("azure-native:keyvault:Vault", "key-vault",
                      f"{group_id}/providers/Microsoft.KeyVault/vaults/kv", retain=True)
    for group_retained, expected in ((False, ("key-vault",)), (True, ())):
        group = _resource(RESOURCE_GROUP, "resource-group", group_id, retain=group_retained)
        assert destroy_outcome([group, vault]).deleted_by_group == expected


# --- recreating dev -----------------------------------------------------------------------------

def _names(run, table: dict[str, str]) -> dict[str, str]:
    return {r.type: r.inputs[table[r.type]] for r in run.resources if r.type in table}


def test_dev_recreated_after_destroy_gets_new_reserved_names(basic_view):
    """A destroy deletes the random generation with the rest; the next `up` draws a new one."""
    before, after = basic_view.run, run_stack(basic_view.stack, random_state="recreated")
    reserved_before, reserved_after = (_names(before, RESERVED_AFTER_DELETE),
                                       _names(after, RESERVED_AFTER_DELETE))
    assert reserved_before.keys() == reserved_after.keys() == RESERVED_AFTER_DELETE.keys()
    for type_ in RESERVED_AFTER_DELETE:
        assert reserved_before[type_] != reserved_after[type_], type_
    assert _names(before, FREED_ON_DELETE) == _names(after, FREED_ON_DELETE)
    assert run_stack(basic_view.stack).resources == before.resources  # same state, same names


def test_dev_names_fit_azure_after_the_generation_is_added(basic_view):
    names = _names(basic_view.run, RESERVED_AFTER_DELETE)
    vault, server = (names["azure-native:keyvault:Vault"],
                     names["azure-native:dbforpostgresql:Server"])
    assert re.fullmatch(r"[a-z][a-z0-9-]{1,22}[a-z0-9]", vault) and "--" not in vault
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", server)


def test_the_generation_never_changes_by_itself(basic_view):
    (generation,) = basic_view.all("random:index/randomString:RandomString")
    assert set(generation.inputs) <= {"length", "upper", "special", "lower", "numeric"}


def test_production_names_do_not_depend_on_random_state(protected_view):
    again = run_stack(protected_view.stack, random_state="recreated")
    assert _names(again, RESERVED_AFTER_DELETE) == _names(protected_view.run,
                                                          RESERVED_AFTER_DELETE)
    assert protected_view.all("random:index/randomString:RandomString") == []
