"""Swap rehearsal: the deploy package restarted the way each step of a slot swap restarts it.

A swap's first phase restarts the staging slot's instances with production's sticky settings
while the slot keeps its own managed identities; if they fail to start, the swap reverts
(tests/slot_swap.py). Here the package starts on a bare interpreter with exactly those
settings and an App Service identity endpoint serving only the identities that slot holds, all
derived from the prod stack as the Pulumi program declares it (review/mocks.py). PostgreSQL
holds the login roles the deployer's SQL step makes, each taking only its own identity's
tokens; the settings that only resolve inside Azure (the hosts, the Key Vault reference, the
telemetry endpoint) become their local equivalents. The site must answer /readyz with 200
after startup.py's migrations, and the layout that gave staging an identity of its own must
fail the same rehearsal.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from psycopg2 import sql

from devtools.identity_endpoint import (
    POSTGRES_RESOURCE,
    UNKNOWN_IDENTITY_MESSAGE,
    ManagedIdentityEndpoint,
    PostgresRolePassword,
)
from devtools.readiness import NotReadyError, wait_for_http_ok
from devtools.services import AzuriteServer, PostgresCluster, free_port
from devtools.site_setup import child_environment, ensure_container
from review.synth import cached_run
from tests.release.app_service import (
    BOOT_TIMEOUT_SECONDS,
    RunningSite,
    app_service_environment,
    extract,
    start_site,
    stop,
)
from tests.slot_swap import (
    SWAP_RESTARTS,
    Restart,
    SlotLayout,
    declared_layout,
    held_identities,
    per_slot_identity_layout,
    restart_settings,
)

# What only resolves inside Azure; the rehearsal points these at the local services.
AZURE_ONLY_SETTINGS = ("AZURE_POSTGRESQL_HOST", "AZURE_POSTGRESQL_PORT",
                       "AZURE_POSTGRESQL_DATABASE", "AZURE_POSTGRESQL_SSLMODE",
                       "AZURE_STORAGE_ACCOUNT_URL", "APPLICATIONINSIGHTS_CONNECTION_STRING",
                       "SECRET_KEY")


@pytest.fixture(scope="module")
def prod_layout() -> SlotLayout:
    return declared_layout(cached_run("prod"))


@dataclass(frozen=True)
class Rehearsal:
    site: RunningSite
    identity: ManagedIdentityEndpoint
    ready: bool


@pytest.fixture
def rehearse(package, python_on_path, postgres, azurite, tmp_path
             ) -> Iterator[Callable[[SlotLayout, Restart], Rehearsal]]:
    """Start the package as `restart` starts it in `layout`; stop it when the test ends."""
    started: list[tuple[RunningSite, ManagedIdentityEndpoint]] = []
    databases: list[str] = []

    def run(layout: SlotLayout, restart: Restart) -> Rehearsal:
        database = f"swap_{uuid.uuid4().hex[:8]}"
        databases.append(database)
        make_logins(postgres, layout.logins, database)
        identity = ManagedIdentityEndpoint(identities=held_identities(layout, restart))
        for role, object_id in layout.logins.items():
            identity.on_issue(POSTGRES_RESOURCE, PostgresRolePassword(postgres, role, object_id))
        identity.start()
        folder = tmp_path / database
        folder.mkdir()
        declared = restart_settings(layout, restart)
        settings = {**local_settings(declared, postgres, azurite, database),
                    **identity.environment()}
        site_name = f"app-{restart.runs_in}"
        base = app_service_environment(free_port(), folder / "home", python_on_path,
                                       site_name=site_name, sku="PremiumV3")
        site = start_site(extract(package, folder / "wwwroot"), "python startup.py",
                          child_environment(settings, base=base))
        started.append((site, identity))
        try:
            wait_for_http_ok(site.process, f"{site.base_url}/readyz", BOOT_TIMEOUT_SECONDS)
        except NotReadyError:
            return Rehearsal(site, identity, ready=False)
        return Rehearsal(site, identity, ready=True)

    yield run
    for site, identity in started:
        stop(site)
        identity.stop()
    for database in databases:
        postgres.drop_database(database)
        postgres.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(f"{database}_owner")))


def make_logins(postgres: PostgresCluster, logins: dict[str, str], database: str) -> None:
    """What infra/sql/app_role.sql leaves behind: login roles without a password (only their
    identity's token lets them in) acting as one owner role, which owns the database."""
    owner = f"{database}_owner"
    postgres.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner)))
    postgres.create_database(database, owner=owner)
    for role in logins:
        if not postgres.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", params=(role,)):
            postgres.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        postgres.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner),
                                                          sql.Identifier(role)))
        postgres.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET role TO {}").format(
            sql.Identifier(role), sql.Identifier(database), sql.Literal(owner)))


def local_settings(declared: dict[str, str], postgres: PostgresCluster, azurite: AzuriteServer,
                   database: str) -> dict[str, str]:
    """The declared settings, with AZURE_CLIENT_ID and AZURE_POSTGRESQL_USER as they are."""
    kept = {name: value for name, value in declared.items() if name not in AZURE_ONLY_SETTINGS}
    ensure_container(azurite, kept["AZURE_STORAGE_CONTAINER"])
    return {
        **kept,
        "AZURE_POSTGRESQL_HOST": "127.0.0.1",
        "AZURE_POSTGRESQL_PORT": str(postgres.port),
        "AZURE_POSTGRESQL_DATABASE": database,
        "AZURE_POSTGRESQL_SSLMODE": "disable",  # the local cluster has no TLS
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "SECRET_KEY": secrets.token_urlsafe(48),  # what the Key Vault reference resolves to
    }


@pytest.mark.parametrize("step", sorted(SWAP_RESTARTS))
def test_every_restart_of_a_swap_becomes_ready(prod_layout, rehearse, step):
    restart = SWAP_RESTARTS[step]
    slot = prod_layout.slots[restart.runs_in]
    # App Service resolves SECRET_KEY's reference as the slot's keyVaultReferenceIdentity.
    assert slot.key_vault_reference_identity in slot.identities

    rehearsal = rehearse(prod_layout, restart)

    assert rehearsal.ready, rehearsal.site.output()
    assert "database migrations applied" in rehearsal.site.output()
    assert rehearsal.identity.issued(POSTGRES_RESOURCE) >= 1


def test_a_staging_identity_of_its_own_makes_the_swap_revert(prod_layout, rehearse):
    """Production's sticky AZURE_CLIENT_ID names an identity the staging slot does not hold:
    no token, no migrations, no start, so App Service reverts the swap."""
    rehearsal = rehearse(per_slot_identity_layout(prod_layout), SWAP_RESTARTS["swap"])

    output = rehearsal.site.output()
    assert not rehearsal.ready
    assert rehearsal.site.process.poll() not in (None, 0), output
    assert "database migrations failed" in output
    assert UNKNOWN_IDENTITY_MESSAGE in output
    assert rehearsal.identity.issued(POSTGRES_RESOURCE) == 0


def test_the_per_slot_layout_still_starts_in_its_own_slot(prod_layout, rehearse):
    """The rehearsal itself is sound: the same layout starts where its settings are its own."""
    layout = per_slot_identity_layout(prod_layout)
    rehearsal = rehearse(layout, SWAP_RESTARTS["previous-release-in-staging"])
    assert rehearsal.ready, rehearsal.site.output()
