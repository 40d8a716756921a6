"""Fixtures for the site's functional tests: the real app on real PostgreSQL and Azurite.

Every test gets its own database (a copy of a template migrated once per run, which is much
faster than migrating each time) and its own blob container, so tests cannot see each other.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from psycopg2 import sql
from psycopg2.extras import LoggingConnection
from sqlalchemy import event

from devtools.services import AzuriteServer, PostgresCluster, free_port
from webapp import create_app
from webapp.db import get_engine, upgrade_database
from webapp.storage import current_photo_store

# The site signs in as an ordinary role with a password (scram-sha-256), like in Azure, not as
# the trusted superuser.
APP_ROLE = "webapp_tests"
APP_PASSWORD = "webapp-tests-password"  # noqa: S105 - throwaway local cluster
TEMPLATE_DATABASE = "webapp_tests_template"
SECRET_KEY = "tests-only-secret-key-0123456789"  # noqa: S105


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def app_role(postgres: PostgresCluster) -> str:
    postgres.execute(
        sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(APP_ROLE))
    )
    postgres.create_role(APP_ROLE, password=APP_PASSWORD)
    return APP_ROLE


def create_empty_database(postgres: PostgresCluster, role: str, template: str | None = None) -> str:
    name = unique_name("webapp_")
    statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(
        sql.Identifier(name), sql.Identifier(role)
    )
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    postgres.execute(statement)
    return name


def dispose(app: Flask) -> None:
    """Close the app's pooled connections; Azurite's shutdown waits for idle keep-alives."""
    get_engine(app).dispose()
    app.extensions["photo_store"].close()


def app_config(database_url: str, storage_connection_string: str, container: str, **extra):
    return {
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": database_url,
        "AZURE_STORAGE_CONNECTION_STRING": storage_connection_string,
        "AZURE_STORAGE_CONTAINER": container,
        "TESTING": True,
        # Outages should turn into a 503 quickly in tests.
        "STORAGE_RETRY_TOTAL": 0,
        "DB_CONNECT_TIMEOUT_SECONDS": 2,
        # Most tests read the home or details page to reach PostgreSQL; test_page_cache.py
        # covers the page caches.
        "HOME_PAGE_CACHE_SECONDS": 0,
        "DETAILS_PAGE_CACHE_SECONDS": 0,
        **extra,
    }


@pytest.fixture(scope="session")
def build_config() -> Callable[..., dict]:
    """build_config(database_url, storage_connection_string, container, **extra) -> settings."""
    return app_config


@pytest.fixture(scope="session")
def migrated_template(postgres: PostgresCluster, azurite: AzuriteServer, app_role: str) -> str:
    postgres.drop_database(TEMPLATE_DATABASE)
    postgres.create_database(TEMPLATE_DATABASE, owner=app_role)
    url = postgres.url(TEMPLATE_DATABASE, user=app_role, password=APP_PASSWORD)
    app = create_app(app_config(url, azurite.connection_string, "unused"))
    upgrade_database(app)
    # A database with open connections cannot serve as a template.
    dispose(app)
    yield TEMPLATE_DATABASE
    postgres.drop_database(TEMPLATE_DATABASE)


@pytest.fixture
def database(postgres: PostgresCluster, migrated_template: str, app_role: str) -> Iterator[str]:
    """Name of a fresh, migrated database owned by the app's role."""
    name = create_empty_database(postgres, app_role, template=migrated_template)
    yield name
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def app_database_url(postgres: PostgresCluster, app_role: str) -> Callable[[str], str]:
    """app_database_url(database) -> URL signing in as the app's role."""

    def url(database: str) -> str:
        return postgres.url(database, user=app_role, password=APP_PASSWORD)

    return url


@pytest.fixture
def database_url(app_database_url: Callable[[str], str], database: str) -> str:
    return app_database_url(database)


@pytest.fixture
def blob_service(azurite: AzuriteServer) -> Iterator[BlobServiceClient]:
    """A client of our own, to look at storage from outside the app."""
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        yield service


@pytest.fixture
def container_name(blob_service: BlobServiceClient) -> Iterator[str]:
    name = unique_name("photos-")
    yield name
    if blob_service.get_container_client(name).exists():
        blob_service.delete_container(name)


@pytest.fixture
def container(blob_service: BlobServiceClient, container_name: str) -> ContainerClient:
    """The test's blob container, seen from outside the app (for assertions)."""
    return blob_service.get_container_client(container_name)


@pytest.fixture
def store(app: Flask):
    """The app's photo store, inside an app context."""
    with app.app_context():
        yield current_photo_store()


@pytest.fixture
def blob_names(container: ContainerClient) -> Callable[[], set[str]]:
    """blob_names() -> the names of the blobs in the test's container right now."""
    return lambda: {blob.name for blob in container.list_blobs()}


@pytest.fixture
def config(database_url: str, azurite: AzuriteServer, container_name: str, tmp_path) -> dict:
    """The app's settings for this test; tests may change it before asking for `app`."""
    # The page caches' change log (webapp/page_cache.py) in the test's folder, not in /tmp.
    return app_config(database_url, azurite.connection_string, container_name,
                      PAGE_CACHE_LOG_PATH=str(tmp_path / "pages.changes"))


@pytest.fixture
def two_per_page(config: dict) -> None:
    """Two restaurants per home page, so a few make several pages (request before `app`)."""
    config["RESTAURANTS_PER_PAGE"] = 2


@pytest.fixture
def database_down(config) -> None:
    """Point the app at a port where no PostgreSQL listens (request before `app`/`client`)."""
    config["DATABASE_URL"] = f"postgresql://nobody:none@127.0.0.1:{free_port()}/reviews"


@pytest.fixture
def app(config: dict) -> Iterator[Flask]:
    application = create_app(config)
    yield application
    dispose(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class StatementLog(list):
    """The statements psycopg2 sent, in order: LoggingConnection writes each one here.

    A PREPARE goes to ``prepared`` instead, as (name, SQL) (it reads nothing), and each EXECUTE
    of a prepared statement is followed by that statement's SQL, so a test can tell what it
    read.
    """

    def __init__(self) -> None:
        super().__init__()
        self.prepared: list[tuple[str, str]] = []

    def write(self, line: str) -> None:
        statement = line.removesuffix(os.linesep)
        verb, name, rest = (statement.split(maxsplit=2) + ["", ""])[:3]
        if verb == "PREPARE":
            self.prepared.append((name, rest.removeprefix("AS ")))
        elif verb == "EXECUTE":
            sql = dict(self.prepared).get(name, "(prepared before the log began)")
            self.append(f"{statement} -- {sql}")
        else:
            self.append(statement)


def pool_events(engine, name: str) -> list[int]:
    """One item per pool event `name` ("connect", "checkout"...) of `engine` from now on."""
    seen: list[int] = []
    event.listen(engine, name, lambda *_args: seen.append(1))
    return seen


def record_statements(app: Flask) -> StatementLog:
    """Every SQL statement the app's connections send from now on, as the driver sends it:
    SQLAlchemy's, the checkout pings and db.read_rows' plain cursors alike."""
    seen = StatementLog()

    def logging_connection(dsn: str, **kwargs) -> LoggingConnection:
        connection = LoggingConnection(dsn, **kwargs)
        connection.initialize(seen)
        return connection

    engine = get_engine(app)

    @event.listens_for(engine, "do_connect")
    def log_every_statement(_dialect, _record, _cargs, cparams) -> None:
        cparams["connection_factory"] = logging_connection

    engine.dispose()  # connections opened before now would send unseen
    return seen


@pytest.fixture(scope="session")
def statements_of() -> Callable[[Flask], list[str]]:
    """statements_of(app) -> every SQL statement that app sends from then on (record_statements)."""
    return record_statements


@pytest.fixture
def statements(app: Flask) -> list[str]:
    """Every SQL statement the app sends from now on, in order (record_statements)."""
    return record_statements(app)


@pytest.fixture
def run_sql(postgres: PostgresCluster, database: str) -> Callable[..., list[tuple]]:
    """Run SQL as superuser in the test's database, bypassing the app."""

    def run(statement: str, params: tuple | None = None) -> list[tuple]:
        return postgres.execute(statement, database=database, params=params)

    return run


def _image_bytes(image_format: str, size: tuple[int, int] = (12, 8), color: str = "teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, image_format)
    return buffer.getvalue()


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """make_image("PNG") -> the bytes of a small, valid image in that format."""
    return _image_bytes


@pytest.fixture
def add_restaurant(client: FlaskClient) -> Callable[..., int]:
    """Create a restaurant through the form; returns its id."""

    def add(name: str = "Chez Test", **fields) -> int:
        data = {"name": name, "street_address": "1 Main Street", "description": "", **fields}
        response = client.post("/restaurants/new", data=data)
        assert response.status_code == 303, response.text
        return int(response.headers["Location"].rsplit("/", 1)[-1])

    return add


@pytest.fixture
def add_review(client: FlaskClient):
    """Post the review form; photo is (bytes, filename). Returns the response."""

    def add(restaurant_id: int, photo: tuple[bytes, str] | None = None, **fields):
        data = {"reviewer_name": "Ada", "rating": "4", "review_text": "Lovely soup.", **fields}
        if photo is not None:
            content, filename = photo
            data["photo"] = (io.BytesIO(content), filename)
        return client.post(
            f"/restaurants/{restaurant_id}/reviews", data=data, content_type="multipart/form-data"
        )

    return add
