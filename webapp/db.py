"""Database lifecycle: the pooled engine, per-request sessions, Entra tokens and migrations.

Two ways to sign in to PostgreSQL, chosen by settings (see config.py):
- DATABASE_URL carries a password (local development, tests);
- AZURE_POSTGRESQL_* names host, database and user, and the password of every NEW pooled
  connection is a Microsoft Entra token from the app's managed identity. A token baked into
  the URL at start-up would expire after about an hour and break every later connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from flask import Flask, current_app, g
from flask.cli import with_appcontext
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from .config import DatabaseSettings

POSTGRES_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
# Refresh a cached token this long before it expires, so a connection opened just before
# expiry still gets a token that is valid while PostgreSQL checks it.
TOKEN_REFRESH_MARGIN_SECONDS = 5 * 60
# Any constant works as long as every instance uses the same one: it names the lock that
# serialises migrations when several instances start at once.
MIGRATION_LOCK_KEY = 0x52657669657773  # "Reviews"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

ENGINE_DEFAULTS = {
    "DB_POOL_SIZE": 5,
    "DB_MAX_OVERFLOW": 5,
    "DB_POOL_TIMEOUT_SECONDS": 10,
    # Azure closes idle connections; recycling early avoids handing out dead ones.
    "DB_POOL_RECYCLE_SECONDS": 30 * 60,
    # Fail fast when the server is unreachable so the user gets the 503 page quickly.
    "DB_CONNECT_TIMEOUT_SECONDS": 5,
}


class DatabaseTokenError(RuntimeError):
    """No Entra token could be obtained for PostgreSQL (treated as 'database unavailable')."""


class EntraTokenCache:
    """Hands out a PostgreSQL access token, asking the credential again only near expiry."""

    def __init__(
        self,
        credential: TokenCredential,
        scope: str = POSTGRES_SCOPE,
        refresh_margin_seconds: float = TOKEN_REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._margin = refresh_margin_seconds
        self._clock = clock
        self._token: AccessToken | None = None
        # Pool threads may open connections at the same time; one token request is enough.
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._needs_refresh():
                self._token = self._fetch()
            return self._token.token

    def _needs_refresh(self) -> bool:
        return self._token is None or self._token.expires_on - self._margin <= self._clock()

    def _fetch(self) -> AccessToken:
        try:
            return self._credential.get_token(self._scope)
        except ClientAuthenticationError as error:
            # The credential's message explains which sources it tried; it holds no secret.
            raise DatabaseTokenError(f"No Entra token for PostgreSQL: {error.message}") from error


def init_app(
    app: Flask, settings: DatabaseSettings, credential: Callable[[], TokenCredential]
) -> None:
    """Create the app's engine (one pool per process) and register session cleanup and the CLI.

    ``credential`` is only called when the Entra path is configured.
    """
    engine = _create_engine(settings, app.config)
    if settings.use_entra_token:
        tokens = EntraTokenCache(credential())
        _use_token_as_password(engine, tokens)
        app.extensions["db_token_cache"] = tokens
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)
    app.cli.add_command(migrate_command)


def _create_engine(settings: DatabaseSettings, config) -> Engine:
    options = {key: config.get(key, default) for key, default in ENGINE_DEFAULTS.items()}
    return create_engine(
        settings.url,
        # Checks each connection on checkout, so the site recovers by itself after PostgreSQL
        # restarts or a network blip, without restarting the app.
        pool_pre_ping=True,
        pool_size=options["DB_POOL_SIZE"],
        max_overflow=options["DB_MAX_OVERFLOW"],
        pool_timeout=options["DB_POOL_TIMEOUT_SECONDS"],
        pool_recycle=options["DB_POOL_RECYCLE_SECONDS"],
        connect_args={
            "connect_timeout": options["DB_CONNECT_TIMEOUT_SECONDS"],
            "application_name": "restaurant-reviews",
        },
    )


def _use_token_as_password(engine: Engine, tokens: EntraTokenCache) -> None:
    @event.listens_for(engine, "do_connect")
    def provide_token(dialect, connection_record, cargs, cparams):
        # Runs only when the pool opens a NEW connection; reused connections need no token.
        cparams["password"] = tokens.token()


def get_engine(app: Flask | None = None) -> Engine:
    return (app or current_app).extensions["db_engine"]


def get_session() -> Session:
    """The session of the current request (or app context), created on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def _close_session(_exception: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def check_database(app: Flask | None = None) -> None:
    """Raise unless PostgreSQL answers a trivial query (used by the readiness view)."""
    with get_engine(app).connect() as connection:
        connection.execute(text("SELECT 1"))


def upgrade_database(app: Flask, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision``; safe when several instances start at once.

    All of it runs in one transaction holding a transaction-scoped advisory lock: the other
    instances wait, then find the schema current and do nothing. PostgreSQL's DDL is
    transactional, so a failed migration leaves the schema as it was, and the lock is released
    by commit, rollback or a dropped connection, never left behind by a crashed instance.
    """
    config = _alembic_config()
    with get_engine(app).begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


@click.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Apply database migrations (run once per deployment, before serving)."""
    upgrade_database(current_app)
    click.echo("Database schema is up to date.")
