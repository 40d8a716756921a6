"""The one site setup (devtools/site_setup.py) behind `make dev`, `make bench` and the boot test."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from azure.storage.blob import BlobServiceClient
from sqlalchemy.engine import make_url

from devtools import site_setup
from devtools.services import AzuriteServer, PostgresCluster
from devtools.site_setup import (
    SHELL_SETTINGS_NOT_PASSED_ON,
    SiteSetupError,
    child_environment,
    migrate_site,
    prepare_site,
)


@pytest.fixture
def site_name(postgres: PostgresCluster) -> Iterator[str]:
    name = f"setup_{uuid.uuid4().hex[:8]}"
    yield name
    postgres.drop_database(name)
    postgres.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def container_name(azurite: AzuriteServer) -> Iterator[str]:
    name = f"setup-{uuid.uuid4().hex[:8]}"
    yield name
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        if service.get_container_client(name).exists():
            service.delete_container(name)


def select_as_the_site(settings: dict[str, str], query: str) -> list[tuple]:
    """Run `query` signed in with the site's own DATABASE_URL (role and password)."""
    url = make_url(settings["DATABASE_URL"])
    with contextlib.closing(psycopg2.connect(host=url.host, port=url.port, user=url.username,
                                             password=url.password, dbname=url.database)) as conn, \
            conn.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


def test_prepares_role_database_container_and_schema(postgres, azurite, site_name,
                                                      container_name):
    settings = prepare_site(postgres, azurite, site_name, password="first-password",
                            secret_key="k" * 32, container=container_name)

    url = make_url(settings["DATABASE_URL"])
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.password, url.database) == (site_name, "first-password", site_name)
    assert settings["AZURE_STORAGE_CONNECTION_STRING"] == azurite.connection_string
    assert settings["AZURE_STORAGE_CONTAINER"] == container_name
    assert settings["SECRET_KEY"] == "k" * 32
    owner = postgres.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                             params=(site_name,))
    assert owner == [(site_name,)]
    assert select_as_the_site(settings, "SELECT count(*) FROM restaurants") == [(0,)]
    assert select_as_the_site(settings, "SELECT count(*) FROM alembic_version") == [(1,)]
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        assert service.get_container_client(container_name).exists()


def test_running_it_again_keeps_the_data_and_sets_the_new_password(postgres, azurite, site_name):
    first = prepare_site(postgres, azurite, site_name, password="first-password")
    postgres.execute("INSERT INTO restaurants (name, street_address) VALUES ('Kept', '1 Road')",
                     database=site_name)

    second = prepare_site(postgres, azurite, site_name, password="second-password")

    assert select_as_the_site(second, "SELECT name FROM restaurants") == [("Kept",)]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        select_as_the_site(first, "SELECT 1")


def test_without_migrations_the_database_is_left_empty_and_secrets_are_random(
    postgres, azurite, site_name
):
    settings = prepare_site(postgres, azurite, site_name, migrate=False)
    tables = select_as_the_site(
        settings, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [(0,)]
    assert len(make_url(settings["DATABASE_URL"]).password) >= 24
    assert len(settings["SECRET_KEY"]) >= 32


def test_the_child_environment_drops_azure_and_identity_settings_from_the_shell(monkeypatch):
    for name in SHELL_SETTINGS_NOT_PASSED_ON:
        monkeypatch.setenv(name, f"from-the-shell-{name}")
    monkeypatch.setenv("HOME_PAGE_CACHE_SECONDS", "7")
    monkeypatch.setenv("DATABASE_URL", "postgresql://shell:shell@elsewhere/db")

    child = child_environment({"DATABASE_URL": "postgresql://site:pw@127.0.0.1/site"})

    assert not set(SHELL_SETTINGS_NOT_PASSED_ON) & set(child)
    assert {"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_CLIENT_ID", "AZURE_POSTGRESQL_HOST",
            "AZURE_STORAGE_ACCOUNT_URL"} <= set(SHELL_SETTINGS_NOT_PASSED_ON)
    assert child["DATABASE_URL"] == "postgresql://site:pw@127.0.0.1/site"
    assert child["HOME_PAGE_CACHE_SECONDS"] == "7"  # ordinary settings pass through


def test_the_child_environment_can_start_from_another_base_and_keeps_what_the_site_is_given():
    base = {"PATH": "/usr/bin", "IDENTITY_ENDPOINT": "http://169.254.0.1/msi"}
    sink = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
    child = child_environment({"APPLICATIONINSIGHTS_CONNECTION_STRING": sink}, base=base)
    assert child == {"PATH": "/usr/bin", "APPLICATIONINSIGHTS_CONNECTION_STRING": sink}


def test_failed_migrations_are_a_setup_error_naming_them(monkeypatch):
    settings = {"DATABASE_URL": "postgresql://nobody:hunter2-secret@127.0.0.1:1/none",
                "AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
                "SECRET_KEY": "s" * 32}
    with pytest.raises(SiteSetupError, match="migrations failed") as failure:
        migrate_site(settings)
    assert "hunter2" not in str(failure.value)


def test_make_dev_make_bench_make_chaos_and_the_boot_test_use_it():
    """The callers go through this module, not copies of its steps."""
    from devtools import bench, chaos, dev

    for caller in (dev, bench, chaos):
        assert caller.prepare_site is site_setup.prepare_site
        assert caller.child_environment is site_setup.child_environment
