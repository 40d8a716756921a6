"""The local managed identity endpoint speaks App Service's protocol and plays Entra for PG."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import jwt
import psycopg2
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential

from devtools.identity_endpoint import (
    API_VERSION,
    POSTGRES_RESOURCE,
    STORAGE_RESOURCE,
    UNKNOWN_IDENTITY_MESSAGE,
    ManagedIdentity,
    ManagedIdentityEndpoint,
    PostgresRolePassword,
    TokenIssueError,
    managed_identity_for,
)
from devtools.services import PostgresCluster

ROLE = "identity_probe"


@pytest.fixture
def endpoint() -> Iterator[ManagedIdentityEndpoint]:
    with ManagedIdentityEndpoint(token_lifetime=3600) as started:
        yield started


@pytest.fixture
def credential(endpoint: ManagedIdentityEndpoint, monkeypatch) -> ManagedIdentityCredential:
    for name, value in endpoint.environment().items():
        monkeypatch.setenv(name, value)
    return ManagedIdentityCredential()


@pytest.fixture
def passwordless_role(postgres: PostgresCluster) -> Iterator[str]:
    postgres.create_role(ROLE)  # no password: only tokens will let it in
    yield ROLE
    postgres.execute(f'DROP ROLE "{ROLE}"')


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def connect_as(postgres: PostgresCluster, role: str, password: str
               ) -> contextlib.closing[psycopg2.extensions.connection]:
    return contextlib.closing(psycopg2.connect(host="127.0.0.1", port=postgres.port, user=role,
                                               password=password, dbname="postgres"))


@pytest.mark.parametrize(
    ("headers", "params", "status", "message"),
    [
        ({}, {"api-version": API_VERSION, "resource": STORAGE_RESOURCE}, 400, "missing"),
        ({"X-IDENTITY-HEADER": "guess"}, {"api-version": API_VERSION,
                                           "resource": STORAGE_RESOURCE}, 401, "does not match"),
        (None, {"api-version": "2017-09-01", "resource": STORAGE_RESOURCE}, 400, API_VERSION),
        (None, {"api-version": API_VERSION}, 400, "resource"),
    ],
    ids=["no-header", "wrong-header", "old-api-version", "no-resource"],
)
def test_bad_requests_get_no_token(endpoint, headers, params, status, message):
    headers = {"X-IDENTITY-HEADER": endpoint.secret} if headers is None else headers
    response = requests.get(endpoint.url, params=params, headers=headers, timeout=5)
    assert response.status_code == status
    assert "access_token" not in response.json()
    assert message in response.json()["message"]
    assert endpoint.issued(STORAGE_RESOURCE) == 0


def test_credential_gets_a_token_for_the_requested_audience(endpoint, credential):
    before = time.time()
    token = credential.get_token(f"{STORAGE_RESOURCE}/.default")

    claims = claims_of(token.token)
    assert claims["aud"] == STORAGE_RESOURCE
    assert claims["iss"] == f"https://sts.windows.net/{endpoint.tenant_id}/"
    assert claims["tid"] == endpoint.tenant_id
    assert claims["oid"] == endpoint.object_id
    assert before + 3590 <= claims["exp"] <= time.time() + 3600
    assert abs(token.expires_on - claims["exp"]) <= 1
    assert endpoint.issued(STORAGE_RESOURCE) == 1
    assert endpoint.issued(POSTGRES_RESOURCE) == 0


def test_credential_caches_tokens_per_resource(endpoint, credential):
    first = credential.get_token(f"{STORAGE_RESOURCE}/.default")
    again = credential.get_token(f"{STORAGE_RESOURCE}/.default")
    other = credential.get_token(f"{POSTGRES_RESOURCE}/.default")

    assert again.token == first.token
    assert claims_of(other.token)["aud"] == POSTGRES_RESOURCE
    assert (endpoint.issued(STORAGE_RESOURCE), endpoint.issued(POSTGRES_RESOURCE)) == (1, 1)


def test_every_token_is_distinct_even_within_one_second(endpoint):
    tokens = {endpoint.issue(STORAGE_RESOURCE).access_token for _ in range(5)}
    assert len(tokens) == 5
    assert endpoint.issued(STORAGE_RESOURCE) == 5


def test_postgres_accepts_exactly_the_current_token(postgres, passwordless_role):
    with managed_identity_for(postgres, passwordless_role) as endpoint:
        older = endpoint.issue(POSTGRES_RESOURCE).access_token
        current = endpoint.issue(POSTGRES_RESOURCE).access_token

    assert len(current) > 800  # a realistic JWT length is no problem for PostgreSQL
    with connect_as(postgres, passwordless_role, current) as conn, conn.cursor() as cursor:
        cursor.execute("select current_user")
        assert cursor.fetchone() == (passwordless_role,)
    for rejected in (older, "not-a-token"):
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            connect_as(postgres, passwordless_role, rejected)


def test_postgres_refuses_an_expired_token(postgres, passwordless_role):
    with managed_identity_for(postgres, passwordless_role, token_lifetime=1) as endpoint:
        token = endpoint.issue(POSTGRES_RESOURCE)
    while time.time() <= token.expires_on + 0.2:
        time.sleep(0.2)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect_as(postgres, passwordless_role, token.access_token)


def test_a_failed_password_change_issues_no_token(postgres, endpoint):
    endpoint.on_issue(POSTGRES_RESOURCE, PostgresRolePassword(postgres, "no_such_role"))
    response = requests.get(
        endpoint.url, params={"api-version": API_VERSION, "resource": POSTGRES_RESOURCE},
        headers={"X-IDENTITY-HEADER": endpoint.secret}, timeout=5,
    )
    assert response.status_code == 500
    assert "no_such_role" in response.json()["message"]
    assert endpoint.issued(POSTGRES_RESOURCE) == 0
    with pytest.raises(TokenIssueError, match="does not exist"):
        endpoint.issue(POSTGRES_RESOURCE)


# --- a site holding several identities ---------------------------------------------------------

@pytest.fixture
def two_identities() -> Iterator[ManagedIdentityEndpoint]:
    held = (ManagedIdentity.random(), ManagedIdentity.random())
    with ManagedIdentityEndpoint(identities=held) as started:
        yield started


def test_a_held_client_id_gets_that_identitys_token(two_identities, monkeypatch):
    second = two_identities.identities[1]
    for name, value in two_identities.environment().items():
        monkeypatch.setenv(name, value)
    token = ManagedIdentityCredential(client_id=second.client_id).get_token(
        f"{STORAGE_RESOURCE}/.default")
    claims = claims_of(token.token)
    assert (claims["oid"], claims["appid"]) == (second.object_id, second.client_id)


def test_a_client_id_the_site_does_not_hold_is_refused(two_identities, monkeypatch):
    for name, value in two_identities.environment().items():
        monkeypatch.setenv(name, value)
    response = requests.get(
        two_identities.url, params={"api-version": API_VERSION, "resource": STORAGE_RESOURCE,
                                    "client_id": str(uuid.uuid4())},
        headers={"X-IDENTITY-HEADER": two_identities.secret}, timeout=5)
    assert response.status_code == 400
    assert response.json()["message"] == UNKNOWN_IDENTITY_MESSAGE
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential(client_id=str(uuid.uuid4())).get_token(
            f"{STORAGE_RESOURCE}/.default")
    assert two_identities.issued(STORAGE_RESOURCE) == 0


def test_a_role_bound_to_one_identity_refuses_another_identitys_token(postgres, passwordless_role):
    bound, other = ManagedIdentity.random(), ManagedIdentity.random()
    with ManagedIdentityEndpoint(identities=(bound, other)) as endpoint:
        endpoint.on_issue(POSTGRES_RESOURCE,
                          PostgresRolePassword(postgres, passwordless_role, bound.object_id))
        foreign = endpoint.issue(POSTGRES_RESOURCE, other.client_id).access_token
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            connect_as(postgres, passwordless_role, foreign)
        own = endpoint.issue(POSTGRES_RESOURCE, bound.client_id).access_token
    with connect_as(postgres, passwordless_role, own) as conn, conn.cursor() as cursor:
        cursor.execute("select current_user")
        assert cursor.fetchone() == (passwordless_role,)
