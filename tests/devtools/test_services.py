"""The local services are real: PostgreSQL enforces passwords, Azurite stores blobs."""

from __future__ import annotations

import contextlib
import time

import psycopg2
import pytest
from azure.storage.blob import BlobServiceClient

from devtools.services import (
    AZURITE_STOP_TIMEOUT,
    AzuriteServer,
    PostgresCluster,
    ServiceError,
)


def test_postgres_accepts_the_right_password_and_rejects_a_wrong_one(postgres: PostgresCluster):
    postgres.create_role("services_probe", password="right-password")
    try:
        with contextlib.closing(psycopg2.connect(
                host="127.0.0.1", port=postgres.port, user="services_probe",
                password="right-password", dbname="postgres")) as conn, conn.cursor() as cursor:
            cursor.execute("select current_user")
            assert cursor.fetchone() == ("services_probe",)
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host="127.0.0.1", port=postgres.port, user="services_probe",
                             password="wrong-password", dbname="postgres")
    finally:
        postgres.execute('DROP ROLE "services_probe"')


def test_postgres_database_lifecycle(postgres: PostgresCluster):
    postgres.create_database("services_probe_db")
    names = {row[0] for row in postgres.execute("select datname from pg_database")}
    assert "services_probe_db" in names
    postgres.drop_database("services_probe_db")
    names = {row[0] for row in postgres.execute("select datname from pg_database")}
    assert "services_probe_db" not in names


def test_second_cluster_on_a_taken_port_fails_clearly(postgres: PostgresCluster, services_dir):
    clash = PostgresCluster(services_dir / "clash", port=postgres.port)
    with pytest.raises(ServiceError, match=f"port {postgres.port} is already in use"):
        clash.start()


def test_azurite_round_trips_a_blob(azurite: AzuriteServer):
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = client.create_container("services-probe")
    try:
        container.upload_blob("hello.txt", b"hello")
        assert container.download_blob("hello.txt").readall() == b"hello"
    finally:
        container.delete_container()


def test_azurite_oauth_without_https_is_refused():
    with pytest.raises(ServiceError, match="OAuth mode needs HTTPS"):
        AzuriteServer(data_dir=None, oauth=True)


def test_azurite_stops_promptly(services_dir):
    """Offline, Azurite's telemetry used to hold its shutdown for ~10 s per stop."""
    server = AzuriteServer(data_dir=services_dir / "azurite-stop").start()
    BlobServiceClient.from_connection_string(server.connection_string).create_container("probe")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < AZURITE_STOP_TIMEOUT / 2
    assert server.pid is None


def test_azurite_that_cannot_start_says_why(services_dir):
    missing = services_dir / "no-such-cert.pem"
    server = AzuriteServer(data_dir=None, cert=missing, key=missing)
    with pytest.raises(ServiceError, match="Azurite exited at start-up: .*no-such-cert"):
        server.start()
    server.stop()
