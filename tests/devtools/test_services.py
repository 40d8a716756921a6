"""The local services are real: PostgreSQL enforces passwords, Azurite stores blobs."""

from __future__ import annotations

import contextlib
import json
import os
import time

import psycopg2
import pytest
from azure.storage.blob import BlobServiceClient

from devtools.services import (
    AZURITE_STOP_TIMEOUT,
    EMBEDDED_POSTGRES,
    STATE_ROOT,
    AzuriteServer,
    PostgresCluster,
    ServiceError,
    persistent_cluster_dir,
    postgres_bin_dir,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="root's layout needs root (CI is root)")


def test_postgres_is_the_major_version_the_stacks_deploy(postgres: PostgresCluster):
    # infra/data.py deploys PostgreSQL 16: the site's tests and the role SQL run against it too.
    [(version,)] = postgres.execute("SHOW server_version_num")
    assert int(version) >= 160000


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
    """Offline, Azurite with telemetry on holds its shutdown for seconds (--disableTelemetry)."""
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


def test_npm_postgres_without_its_library_links_says_how_to_repair(tmp_path):
    install = tmp_path / EMBEDDED_POSTGRES
    (install / "bin").mkdir(parents=True)
    (install / "bin" / "initdb").touch()
    (install / "pg-symlinks.json").write_text(json.dumps(
        [{"source": "native/lib/libicuuc.so.60.2", "target": "native/lib/libicuuc.so.60"}]))
    with pytest.raises(ServiceError, match=r"native/lib/libicuuc.so.60 is missing.*make deps"):
        postgres_bin_dir(tmp_path)


@needs_root
def test_roots_cluster_lives_where_the_postgres_account_can_reach_it(tmp_path):
    link = persistent_cluster_dir(tmp_path / ".local")
    try:
        assert link == tmp_path / ".local" / "postgres"
        assert link.is_symlink()
        target = link.resolve()
        assert target.parent == STATE_ROOT / "clusters"
        assert all(folder.stat().st_mode & 0o005 == 0o005
                   for folder in (STATE_ROOT, STATE_ROOT / "clusters"))
        # Short enough for the server's Unix socket (107 bytes) in the data folder.
        assert len(str(target / ".s.PGSQL.65535")) <= 107
        assert persistent_cluster_dir(tmp_path / ".local") == link  # stable between runs
    finally:
        link.unlink()


@needs_root
def test_roots_moved_checkout_keeps_its_cluster(tmp_path):
    kept = tmp_path / "elsewhere" / "cluster"
    kept.mkdir(parents=True)
    (kept / "PG_VERSION").write_text("16\n")
    moved = tmp_path / "moved" / ".local"
    moved.mkdir(parents=True)
    (moved / "postgres").symlink_to(kept)
    assert persistent_cluster_dir(moved).resolve() == kept


@needs_root
def test_roots_cluster_already_in_a_folder_there_is_used_where_it_is(tmp_path):
    in_place = tmp_path / ".local" / "postgres"
    in_place.mkdir(parents=True)
    (in_place / "PG_VERSION").write_text("16\n")
    assert persistent_cluster_dir(tmp_path / ".local") == in_place
    assert not in_place.is_symlink()


@needs_root
def test_roots_unknown_files_where_the_cluster_link_goes_are_not_touched(tmp_path):
    stray = tmp_path / ".local" / "postgres"
    stray.mkdir(parents=True)
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(ServiceError, match="holds files but no PostgreSQL cluster"):
        persistent_cluster_dir(tmp_path / ".local")
    assert (stray / "notes.txt").read_text() == "mine"
