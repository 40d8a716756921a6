"""App Service's slot swap, applied to a stack as the Pulumi program declares it (review/mocks.py).

A swap moves a slot's code with its ordinary app settings; the sticky ones (slotConfigNames) stay
with their slot, and so do its managed identities and its keyVaultReferenceIdentity. Each
restart a swap causes therefore runs one slot's code and ordinary settings, the sticky settings
of another slot, and the identities of the slot its instances are in; if a restart in the swap's
first phase fails, the swap reverts (learn.microsoft.com/azure/app-service/deploy-staging-slots).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from devtools.identity_endpoint import ManagedIdentity
from review.mocks import StackRun, mock_identity_ids

PRODUCTION = "production"
STAGING = "staging"
# The deployer's SQL step binds each login role to an object id (infra/db_role.py).
_PSQL_LOGIN = re.compile(r"--set '?role=([^' ]+)'? --set '?object_id=([^' ]+)'?")


@dataclass(frozen=True)
class Slot:
    name: str
    settings: dict[str, str]
    identities: dict[str, ManagedIdentity]  # resource id -> the identity the slot holds
    key_vault_reference_identity: str  # a resource id


@dataclass(frozen=True)
class SlotLayout:
    slots: dict[str, Slot]
    sticky: tuple[str, ...]  # slot-specific app setting names
    logins: dict[str, str]  # PostgreSQL login role -> the object id it is bound to


@dataclass(frozen=True)
class Restart:
    """The instances of `runs_in` restarted with `code_from`'s code and ordinary settings and
    `sticky_from`'s sticky settings."""

    runs_in: str
    code_from: str
    sticky_from: str


SWAP_RESTARTS = {
    # Phase 1: staging's instances take production's sticky settings; a failure reverts.
    "swap": Restart(runs_in=STAGING, code_from=STAGING, sticky_from=PRODUCTION),
    # The swap's end: the previous release, now in staging, takes staging's sticky settings.
    "previous-release-in-staging": Restart(STAGING, code_from=PRODUCTION, sticky_from=STAGING),
    # Swapping back (release/swap_slots.py on an unhealthy production): phase 1 again, with
    # the previous release in staging.
    "swap-back": Restart(STAGING, code_from=PRODUCTION, sticky_from=PRODUCTION),
}


def declared_layout(run: StackRun) -> SlotLayout:
    """The slots, sticky names and database logins a stack declares (it must have a slot)."""
    slots = {}
    for site in run.resources:
        if site.type in ("azure-native:web:WebApp", "azure-native:web:WebAppSlot"):
            name = site.inputs.get("slot", PRODUCTION)
            settings = {pair["name"]: pair["value"]
                        for pair in site.inputs["siteConfig"]["appSettings"]}
            held = {resource_id: _identity(resource_id)
                    for resource_id in site.inputs["identity"]["userAssignedIdentities"]}
            slots[name] = Slot(name, settings, held, site.inputs["keyVaultReferenceIdentity"])
    (sticky,) = [r.inputs.get("appSettingNames", []) for r in run.resources
                 if r.type == "azure-native:web:WebAppSlotConfigurationNames"]
    (roles_script,) = [r.inputs["scriptContent"] for r in run.resources
                       if r.name == "script-database-roles"]
    return SlotLayout(slots, tuple(sticky), dict(_PSQL_LOGIN.findall(roles_script)))


def _identity(resource_id: str) -> ManagedIdentity:
    ids = mock_identity_ids(resource_id)
    return ManagedIdentity(client_id=ids["clientId"], object_id=ids["principalId"])


def per_slot_identity_layout(layout: SlotLayout) -> SlotLayout:
    """The same stack with the layout this program once had: staging runs as an identity and a
    database role of its own, both named by sticky settings."""
    staging, production = layout.slots[STAGING], layout.slots[PRODUCTION]
    own_id = "/subscriptions/example/resourceGroups/example/providers/" \
             "Microsoft.ManagedIdentity/userAssignedIdentities/id-staging"
    own = _identity(own_id)
    role = f"{production.settings['AZURE_POSTGRESQL_USER']}-{STAGING}"
    settings = {**staging.settings, "AZURE_CLIENT_ID": own.client_id,
                "AZURE_POSTGRESQL_USER": role}
    return SlotLayout(
        {**layout.slots, STAGING: replace(staging, settings=settings, identities={own_id: own},
                                          key_vault_reference_identity=own_id)},
        sticky=("AZURE_CLIENT_ID", "AZURE_POSTGRESQL_USER"),
        logins={**layout.logins, role: own.object_id})


def restart_settings(layout: SlotLayout, restart: Restart) -> dict[str, str]:
    """The app settings the restarted instances run with."""
    code, sticky = layout.slots[restart.code_from], layout.slots[restart.sticky_from]
    ordinary = {k: v for k, v in code.settings.items() if k not in layout.sticky}
    return {**ordinary, **{k: v for k, v in sticky.settings.items() if k in layout.sticky}}


def held_identities(layout: SlotLayout, restart: Restart) -> tuple[ManagedIdentity, ...]:
    return tuple(layout.slots[restart.runs_in].identities.values())


def restart_problems(layout: SlotLayout, restart: Restart) -> list[str]:
    """Why the restarted instances could not sign in (empty: they can)."""
    slot, settings = layout.slots[restart.runs_in], restart_settings(layout, restart)
    problems = []
    if slot.key_vault_reference_identity not in slot.identities:
        problems.append("keyVaultReferenceIdentity is not an identity the slot holds")
    by_client_id = {i.client_id: i for i in slot.identities.values()}
    signed_in = by_client_id.get(settings["AZURE_CLIENT_ID"])
    if signed_in is None:
        problems.append(f"AZURE_CLIENT_ID names an identity {restart.runs_in} does not hold")
    role = settings["AZURE_POSTGRESQL_USER"]
    if signed_in is not None and layout.logins.get(role) != signed_in.object_id:
        problems.append(f"PostgreSQL role {role} is not bound to the identity signed in")
    return problems
