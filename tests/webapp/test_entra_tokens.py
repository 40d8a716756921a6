"""The Entra path: each NEW pooled connection signs in with a cached token as its password.

A counting credential stands in for DefaultAzureCredential (the real managed-identity endpoint
is exercised by test_managed_identity.py); PostgreSQL is real and checks the password.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from psycopg2 import sql
from sqlalchemy import event, text

from webapp import create_app
from webapp.budget import DependencyTimeout
from webapp.db import (
    POSTGRES_SCOPE,
    TOKEN_REFRESH_MARGIN_SECONDS,
    DatabaseTokenError,
    EntraTokenCache,
    get_engine,
)

HOUR = 3600
NOW = 1_800_000_000.0


@dataclass
class CountingCredential:
    """A TokenCredential that hands out the tokens it is told to and counts requests."""

    tokens: list[str]
    expires_on: float = NOW + HOUR
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    def get_token(self, *scopes: str, **_kwargs) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.tokens[min(len(self.scopes), len(self.tokens)) - 1],
                           int(self.expires_on))

    @property
    def calls(self) -> int:
        return len(self.scopes)


class FailingCredential:
    def get_token(self, *scopes: str, **_kwargs) -> AccessToken:
        raise ClientAuthenticationError("ManagedIdentityCredential: no identity endpoint")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


# -- the cache on its own -----------------------------------------------------------------------


def test_token_is_requested_once_for_the_postgres_scope_and_reused():
    credential = CountingCredential(tokens=["t1"])
    cache = EntraTokenCache(credential, clock=Clock())

    assert [cache.token() for _ in range(5)] == ["t1"] * 5
    assert credential.scopes == [("https://ossrdbms-aad.database.windows.net/.default",)]
    assert POSTGRES_SCOPE == "https://ossrdbms-aad.database.windows.net/.default"


def test_token_is_refreshed_five_minutes_before_expiry():
    credential = CountingCredential(tokens=["t1", "t2"])
    clock = Clock()
    cache = EntraTokenCache(credential, clock=clock)
    assert cache.token() == "t1"

    clock.now = credential.expires_on - TOKEN_REFRESH_MARGIN_SECONDS - 1
    assert cache.token() == "t1"
    assert credential.calls == 1

    clock.now = credential.expires_on - TOKEN_REFRESH_MARGIN_SECONDS + 1
    credential.expires_on += HOUR
    assert cache.token() == "t2"
    assert credential.calls == 2
    assert TOKEN_REFRESH_MARGIN_SECONDS == 300


def test_concurrent_connections_share_one_token_request():
    credential = CountingCredential(tokens=["t1"])
    cache = EntraTokenCache(credential, clock=Clock())
    start = threading.Barrier(8)

    def connect() -> None:
        start.wait()
        cache.token()

    threads = [threading.Thread(target=connect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert credential.calls == 1


def test_credential_failure_becomes_a_database_token_error_naming_the_cause():
    # The cause stays in the exception (for the log); the 503 page never shows it (below).
    cache = EntraTokenCache(FailingCredential(), clock=Clock())
    with pytest.raises(DatabaseTokenError, match="no identity endpoint"):
        cache.token()


# -- against real PostgreSQL ----------------------------------------------------------------------


@pytest.fixture
def entra_role(postgres, app_role, database) -> Iterator[str]:
    """A role whose password is the current 'token', like an Entra principal in Azure."""
    name = f"entra_{uuid.uuid4().hex[:8]}"
    postgres.create_role(name, password="token-1")
    # Same privileges as the role owning the test database's tables.
    grant = sql.SQL("GRANT {} TO {}").format(sql.Identifier(app_role), sql.Identifier(name))
    postgres.execute(grant)
    yield name
    postgres.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def entra_config(postgres, database, entra_role, azurite, container_name, build_config):
    config = build_config("unused", azurite.connection_string, container_name)
    del config["DATABASE_URL"]
    config.update(
        AZURE_POSTGRESQL_HOST="127.0.0.1",
        AZURE_POSTGRESQL_PORT=str(postgres.port),
        AZURE_POSTGRESQL_DATABASE=database,
        AZURE_POSTGRESQL_USER=entra_role,
        AZURE_POSTGRESQL_SSLMODE="disable",  # the local cluster has no TLS; Azure requires it
    )
    return config


@pytest.fixture
def entra_app(entra_config):
    apps = []

    def build(credential):
        app = create_app(entra_config, credential=credential)
        apps.append(app)
        return app

    yield build
    for app in apps:
        get_engine(app).dispose()
        app.extensions["photo_store"].close()


def count_new_connections(engine) -> list[int]:
    opened: list[int] = []

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, connection_record):
        opened.append(1)

    return opened


def test_each_new_connection_uses_the_cached_token(entra_app):
    credential = CountingCredential(tokens=["token-1"])
    app = entra_app(credential)
    engine = get_engine(app)
    opened = count_new_connections(engine)

    # Three connections at once: the pool must open three.
    connections = [engine.connect() for _ in range(3)]
    for connection in connections:
        assert connection.execute(text("SELECT current_user")).scalar_one().startswith("entra_")
    for connection in connections:
        connection.close()
    # Reusing pooled connections opens none.
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))

    assert len(opened) == 3
    assert credential.calls == 1
    assert engine.dialect.driver == "psycopg2"
    assert app.test_client().get("/").status_code == 200


def test_connections_opened_near_expiry_get_a_fresh_token(entra_app, postgres, entra_role):
    # Tokens that expire inside the refresh margin: every new connection must ask again.
    credential = CountingCredential(
        tokens=["token-1", "token-2"], expires_on=time.time() + TOKEN_REFRESH_MARGIN_SECONDS / 2
    )
    app = entra_app(credential)
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert credential.calls == 1

    # The old token is no longer accepted; the identity now hands out a new one.
    postgres.execute(sql.SQL("ALTER ROLE {} PASSWORD 'token-2'").format(sql.Identifier(entra_role)))
    get_engine(app).dispose()  # force the next request to open a NEW connection

    assert client.get("/").status_code == 200
    assert credential.calls == 2


def test_a_rejected_token_is_a_503_not_a_crash(entra_app):
    app = entra_app(CountingCredential(tokens=["not-the-password"]))
    response = app.test_client().get("/")
    assert response.status_code == 503
    assert "database is unavailable" in response.text
    assert "not-the-password" not in response.text


def test_no_token_at_all_is_a_503(entra_app):
    app = entra_app(FailingCredential())
    response = app.test_client().get("/")
    assert response.status_code == 503
    assert "database is unavailable" in response.text
    assert "identity endpoint" not in response.text


class HungIdentityEndpoint:
    """A credential whose endpoint answers only when its own timeouts end (2 s, the
    connection and read timeouts of webapp/budget.py's CREDENTIAL_OPTIONS without retry)."""

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds
        self.calls = 0

    def get_token(self, *scopes: str, **_kwargs) -> AccessToken:
        self.calls += 1
        time.sleep(self.seconds)
        return AccessToken("token-1", int(time.time() + HOUR))


def test_a_hung_identity_endpoint_is_a_503_within_the_budget_for_every_waiting_request(
    entra_app,
):
    app = entra_app(HungIdentityEndpoint())
    answers: list[tuple[int, float]] = []

    def request() -> None:
        started = time.monotonic()
        status = app.test_client().get("/").status_code
        answers.append((status, time.monotonic() - started))

    # The first fetches the token; the second queues behind it for the cache's lock.
    first = threading.Thread(target=request)
    first.start()
    time.sleep(0.2)
    request()
    first.join()

    budget_seconds = app.extensions["settings"].request_budget_seconds
    assert [status for status, _ in answers] == [503, 503]
    assert all(seconds <= budget_seconds for _, seconds in answers), answers


def test_a_token_that_arrives_too_late_to_connect_in_budget_is_a_503(entra_app):
    credential = HungIdentityEndpoint()
    app = entra_app(credential)

    started = time.monotonic()
    response = app.test_client().get("/")
    seconds = time.monotonic() - started

    assert response.status_code == 503
    assert seconds <= app.extensions["settings"].request_budget_seconds
    assert "database is unavailable" in response.text
    # The token is kept: the next request connects without asking again.
    assert app.test_client().get("/").status_code == 200
    assert credential.calls == 1


def test_waiting_for_another_threads_token_fetch_is_bounded():
    release = threading.Event()

    class Blocking:
        def get_token(self, *scopes: str, **_kwargs) -> AccessToken:
            release.wait(10)
            return AccessToken("token-1", int(time.time() + HOUR))

    tokens = EntraTokenCache(Blocking())
    fetcher = threading.Thread(target=tokens.token)
    fetcher.start()
    time.sleep(0.1)
    try:
        started = time.monotonic()
        with pytest.raises(DependencyTimeout, match="Entra"):
            tokens.token(timeout=0.3)
        assert time.monotonic() - started < 1
    finally:
        release.set()
        fetcher.join()
    assert tokens.token(timeout=0.3) == "token-1"
