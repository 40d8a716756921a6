"""Outages: PostgreSQL or storage down gives a clear 503, and the site recovers by itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devtools.services import AzuriteServer, PostgresCluster, free_port
from webapp import create_app
from webapp.db import get_engine, upgrade_database

OUTAGE_ROLE = "outage_app"
OUTAGE_PASSWORD = "outage-app-password"  # noqa: S105 - throwaway local cluster


@pytest.fixture
def own_postgres(services_dir) -> Iterator[PostgresCluster]:
    """A cluster this test may stop and start without disturbing the shared one."""
    data_dir = services_dir / f"outage-{uuid.uuid4().hex[:8]}"
    cluster = PostgresCluster(data_dir, durable=False).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def outage_app(own_postgres, azurite, container_name, build_config):
    own_postgres.create_role(OUTAGE_ROLE, password=OUTAGE_PASSWORD)
    own_postgres.create_database("reviews", owner=OUTAGE_ROLE)
    url = own_postgres.url("reviews", user=OUTAGE_ROLE, password=OUTAGE_PASSWORD)
    app = create_app(build_config(url, azurite.connection_string, container_name))
    upgrade_database(app)
    yield app
    get_engine(app).dispose()
    app.extensions["photo_store"].close()


def test_database_outage_is_a_503_and_the_site_recovers_without_restart(
    outage_app, own_postgres, make_image
):
    client = outage_app.test_client()
    created = client.post("/restaurants/new", data={"name": "Survivor", "street_address": "1 A"})
    assert created.status_code == 303
    assert get_engine(outage_app).pool.checkedin() >= 1  # a pooled connection to go stale

    own_postgres.stop()

    down = client.get("/")
    assert down.status_code == 503
    assert "The restaurant database is unavailable right now" in down.text
    assert down.headers["Retry-After"] == "30"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["failed"] == ["database"]
    assert ready.json["checks"]["storage"] == "ok"
    assert client.get("/healthz").status_code == 200  # the process itself is fine

    own_postgres.start()

    # Same app object, same pool: pre-ping throws away the dead connections.
    assert "Survivor" in client.get("/").text
    assert client.get("/readyz").json == {
        "status": "ready",
        "checks": {"database": "ok", "storage": "ok"},
        "failed": [],
    }


@pytest.fixture
def storage_down(config) -> None:
    """Point the app's storage at a port where nothing listens (request before `client`)."""
    nowhere = AzuriteServer(None, port=free_port())  # never started
    config["AZURE_STORAGE_CONNECTION_STRING"] = nowhere.connection_string


def test_storage_outage_is_a_503_and_saves_no_review(
    storage_down, client, add_restaurant, add_review, make_image, run_sql
):
    restaurant_id = add_restaurant("Pix")

    response = add_review(restaurant_id, photo=(make_image("PNG"), "a.png"))

    assert response.status_code == 503
    assert "Photo storage is unavailable right now. Nothing was saved" in response.text
    assert run_sql("SELECT count(*) FROM reviews") == [(0,)]
    assert client.get("/photos/" + "b" * 64 + ".png").status_code == 503
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["failed"] == ["storage"]
    assert ready.json["checks"] == {
        "database": "ok",
        "storage": "unavailable: ServiceRequestError",
    }
    # Pages that need no photo keep working.
    assert "Pix" in client.get("/").text
