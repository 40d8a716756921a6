"""The code path that runs in Azure, run locally: no password, no key, only the managed identity.

The site gets exactly App Service's settings (AZURE_POSTGRESQL_*, AZURE_STORAGE_ACCOUNT_URL,
IDENTITY_ENDPOINT/IDENTITY_HEADER) and no DATABASE_URL or connection string. Its
DefaultAzureCredential finds the local identity endpoint; PostgreSQL's app role has no password
except the token the endpoint issued last (as Azure Database for PostgreSQL checks Entra
tokens); Azurite serves HTTPS with a throwaway CA and checks bearer tokens (OAuth mode).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator

import psycopg2
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.storage.blob import BlobServiceClient
from flask import Flask
from sqlalchemy import event

import webapp
from devtools.identity_endpoint import (
    POSTGRES_RESOURCE,
    STORAGE_RESOURCE,
    ManagedIdentityEndpoint,
    managed_identity_for,
)
from devtools.services import AzuriteServer, PostgresCluster
from devtools.tls import LocalCertificates, create_local_certificates
from tests.site_pages import png_photo
from webapp.db import TOKEN_REFRESH_MARGIN_SECONDS, get_engine, upgrade_database

APP_ROLE = "site_identity"
APP_DATABASE = "site_identity"
# MSAL treats a managed identity token as expired 5 minutes before its real expiry
# (msal.managed_identity.ManagedIdentityClient.acquire_token_for_client).
MSAL_EXPIRY_MARGIN_SECONDS = 5 * 60
# A token the site may reuse for this many seconds only: short enough to wait out in a test.
SHORT_REUSE_SECONDS = 4
# Settings that would steer the site (or DefaultAzureCredential) away from the identity path.
FOREIGN_SETTINGS = (
    "DATABASE_URL", "AZURE_STORAGE_CONNECTION_STRING", "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME",
    "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> LocalCertificates:
    return create_local_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def oauth_azurite(certificates: LocalCertificates) -> Iterator[AzuriteServer]:
    server = AzuriteServer(data_dir=None, cert=certificates.cert, key=certificates.key,
                           oauth=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def passwordless_database(postgres: PostgresCluster) -> Iterator[str]:
    postgres.create_role(APP_ROLE)  # no password: only a current token lets the site in
    postgres.create_database(APP_DATABASE, owner=APP_ROLE)
    yield APP_DATABASE
    postgres.drop_database(APP_DATABASE)
    postgres.execute(f'DROP ROLE "{APP_ROLE}"')


@pytest.fixture(scope="module")
def identity(postgres: PostgresCluster, passwordless_database) -> Iterator[ManagedIdentityEndpoint]:
    with managed_identity_for(postgres, APP_ROLE) as endpoint:
        yield endpoint


def set_azure_environment(monkeypatch, identity: ManagedIdentityEndpoint,
                          azurite: AzuriteServer, postgres: PostgresCluster,
                          certificates: LocalCertificates) -> None:
    """What App Service sets for the site, pointed at the local stand-ins."""
    for name in FOREIGN_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    settings = {
        **identity.environment(),
        **certificates.client_environment(),
        "AZURE_POSTGRESQL_HOST": "127.0.0.1",
        "AZURE_POSTGRESQL_PORT": str(postgres.port),
        "AZURE_POSTGRESQL_DATABASE": APP_DATABASE,
        "AZURE_POSTGRESQL_USER": APP_ROLE,
        "AZURE_POSTGRESQL_SSLMODE": "disable",  # the local cluster has no TLS; Azure's requires it
        "AZURE_STORAGE_ACCOUNT_URL": azurite.blob_endpoint,
        "AZURE_STORAGE_CONTAINER": "photos",
        "SECRET_KEY": "managed-identity-test-secret-key",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def migrated(identity, oauth_azurite, postgres, certificates) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        set_azure_environment(monkeypatch, identity, oauth_azurite, postgres, certificates)
        app = webapp.create_app()
        upgrade_database(app)
        get_engine(app).dispose()


@pytest.fixture
def azure_environment(monkeypatch, identity, oauth_azurite, postgres, certificates,
                      migrated) -> None:
    set_azure_environment(monkeypatch, identity, oauth_azurite, postgres, certificates)


@pytest.fixture
def site(azure_environment) -> Iterator[Flask]:
    """A fresh app (so a fresh credential and token cache) configured only from the environment."""
    app = webapp.create_app()
    assert get_engine(app).url.password is None  # nothing but a token can sign it in
    assert get_engine(app).dialect.driver == "psycopg2"  # the design card's driver
    yield app
    get_engine(app).dispose()


@pytest.fixture
def new_connections(site) -> list[object]:
    """Records every new pooled PostgreSQL connection the site opens."""
    opened: list[object] = []
    event.listen(get_engine(site), "connect", lambda dbapi_connection, _record: opened.append(
        dbapi_connection))
    return opened


def add_restaurant(client) -> str:
    response = client.post("/restaurants/new", data={
        "name": "Token Trattoria", "street_address": "1 Identity Lane",
        "description": "Signed in without a password.",
    })
    assert response.status_code == 303, response.text
    return response.headers["Location"]


def add_review_with_photo(client, detail_url: str, photo: bytes) -> None:
    response = client.post(f"{detail_url}/reviews", content_type="multipart/form-data", data={
        "reviewer_name": "Mia Identity", "rating": "5", "review_text": "Fetched both tokens.",
        "photo": (io.BytesIO(photo), "dish.png"),
    })
    assert response.status_code == 303, response.text


def test_review_with_photo_round_trips_on_tokens_alone(site, identity):
    postgres_tokens = identity.issued(POSTGRES_RESOURCE)
    storage_tokens = identity.issued(STORAGE_RESOURCE)
    client = site.test_client()
    photo = png_photo()

    detail_url = add_restaurant(client)
    add_review_with_photo(client, detail_url, photo)
    page = client.get(detail_url).text
    photo_url = re.search(r'<img class="review__photo" src="([^"]+)"', page).group(1)
    served = client.get(photo_url)

    assert "Mia Identity" in page and "Token Trattoria" in page
    assert served.status_code == 200
    assert served.data == photo
    assert served.mimetype == "image/png"
    # One token per audience for this app: DefaultAzureCredential went to the identity endpoint
    # and the site reused its tokens across all those requests.
    assert identity.issued(POSTGRES_RESOURCE) == postgres_tokens + 1
    assert identity.issued(STORAGE_RESOURCE) == storage_tokens + 1


def test_new_connections_reuse_the_token_until_near_expiry(site, identity, new_connections,
                                                          postgres):
    # MSAL and the site each stop reusing a token some minutes before it expires; this token
    # leaves a few seconds of reuse after both margins.
    identity.token_lifetime = (max(TOKEN_REFRESH_MARGIN_SECONDS, MSAL_EXPIRY_MARGIN_SECONDS)
                               + SHORT_REUSE_SECONDS)
    client = site.test_client()  # /readyz always asks PostgreSQL (the home page may be cached)
    engine = get_engine(site)
    issued_before = identity.issued(POSTGRES_RESOURCE)
    try:
        assert client.get("/readyz").status_code == 200
        first_token = identity.latest(POSTGRES_RESOURCE)
        engine.dispose()  # the next request must open a new pooled connection
        assert client.get("/readyz").status_code == 200
        assert len(new_connections) == 2
        assert identity.issued(POSTGRES_RESOURCE) == issued_before + 1

        reuse_ends = first_token.expires_on - max(TOKEN_REFRESH_MARGIN_SECONDS,
                                                  MSAL_EXPIRY_MARGIN_SECONDS)
        time.sleep(max(0.0, reuse_ends - time.time()) + 0.5)
        engine.dispose()
        assert client.get("/readyz").status_code == 200
    finally:
        identity.token_lifetime = 3600

    assert len(new_connections) == 3
    assert identity.issued(POSTGRES_RESOURCE) == issued_before + 2
    # The token the site stopped using no longer opens PostgreSQL: the refresh was needed.
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host="127.0.0.1", port=postgres.port, user=APP_ROLE,
                         password=first_token.access_token, dbname=APP_DATABASE)


class _StaticToken:
    def __init__(self, token: str, expires_on: int) -> None:
        self._token = AccessToken(token, expires_on)

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        return self._token


def test_azurite_checks_the_token_audience(identity, oauth_azurite, azure_environment):
    def container_with_token_for(resource: str, name: str):
        token = identity.issue(resource)
        service = BlobServiceClient(oauth_azurite.blob_endpoint, retry_total=0,
                                    credential=_StaticToken(token.access_token, token.expires_on))
        return service.get_container_client(name)

    accepted = container_with_token_for(STORAGE_RESOURCE, "audience-probe")
    accepted.create_container()
    assert accepted.exists()
    with pytest.raises(ClientAuthenticationError, match="Invalid token audience"):
        container_with_token_for("https://vault.azure.net", "audience-probe").exists()
