"""The one site setup that `make dev`, `make bench`, `make chaos` and the package boot test share.

A site needs a PostgreSQL role and a database it owns, a blob container, a secret key and its
schema; it is then started as a child process whose environment holds the local shortcuts of
the env-var contract (webapp/README.md) and nothing from the shell that would send it to real
Azure resources or a real identity.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from psycopg2 import sql

from devtools.services import REPO_ROOT, AzuriteServer, PostgresCluster

PHOTO_CONTAINER = "photos"
# Settings that would steer a local site to Azure (the AZURE_POSTGRESQL_* path and the account
# URL use tokens) or make it sign in with whatever identity the shell has: a developer's
# `az login` variables, a CI runner's federated token, App Service's identity endpoint. A
# locally started site uses the local shortcuts only, and exports no telemetry.
SHELL_SETTINGS_NOT_PASSED_ON = (
    "AZURE_POSTGRESQL_HOST", "AZURE_POSTGRESQL_PORT", "AZURE_POSTGRESQL_DATABASE",
    "AZURE_POSTGRESQL_USER", "AZURE_POSTGRESQL_SSLMODE", "AZURE_STORAGE_ACCOUNT_URL",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT",
    "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
    "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
)  # fmt: skip


class SiteSetupError(RuntimeError):
    """The site could not be prepared (its migrations failed); the message says why."""


def prepare_site(postgres: PostgresCluster, azurite: AzuriteServer, name: str, *,
                 password: str | None = None, secret_key: str | None = None,
                 container: str = PHOTO_CONTAINER, migrate: bool = True) -> dict[str, str]:
    """Role and database `name` (the role owns it), the container and the schema.

    Returns the site's settings. Safe to repeat: an existing role gets `password` again, an
    existing database and its data are kept. A password or secret key not given is random.
    ``migrate=False`` leaves the schema to the site itself (the package's startup.py does it).
    """
    password = password or secrets.token_urlsafe(24)
    ensure_role(postgres, name, password)
    ensure_database(postgres, name, owner=name)
    ensure_container(azurite, container)
    settings = {
        "DATABASE_URL": postgres.url(name, user=name, password=password),
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "AZURE_STORAGE_CONTAINER": container,
        "SECRET_KEY": secret_key or secrets.token_urlsafe(48),
    }
    if migrate:
        migrate_site(settings)
    return settings


def ensure_role(postgres: PostgresCluster, role: str, password: str) -> None:
    """A login role with this password, whether it existed or not."""
    if postgres.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", params=(role,)):
        postgres.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    else:
        postgres.create_role(role, password=password)


def ensure_database(postgres: PostgresCluster, database: str, owner: str) -> None:
    if not postgres.execute("SELECT 1 FROM pg_database WHERE datname = %s", params=(database,)):
        postgres.create_database(database, owner=owner)


def ensure_container(azurite: AzuriteServer, container: str) -> None:
    # In Azure the infrastructure creates the container; locally we play that part.
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service, \
            contextlib.suppress(ResourceExistsError):
        service.create_container(container)


def child_environment(settings: Mapping[str, str],
                      base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) without the Azure and identity settings
    above, with the site's `settings` on top (those are kept whatever their names)."""
    inherited = os.environ if base is None else base
    child = {name: value for name, value in inherited.items()
             if name not in SHELL_SETTINGS_NOT_PASSED_ON}
    return {**child, **settings}


def flask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "webapp", *args]


def migrate_site(settings: Mapping[str, str]) -> None:
    """Apply the site's migrations the way a deployment does, in a child process."""
    result = subprocess.run(flask_command("migrate"), cwd=REPO_ROOT,
                            env=child_environment(settings), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SiteSetupError(
            f"migrations failed:\n{(result.stderr or result.stdout).strip()}")
