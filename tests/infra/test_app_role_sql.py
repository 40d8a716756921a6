"""The database-role SQL step, run for real: psql + infra/sql/app_role.sql on local PostgreSQL.

Azure's pieces are stood in for: `az` prints a fixed token, pgaadauth_create_principal_with_oid
creates a login role whose password is "token-for-<object id>" (what an Entra token is to the
server), and the admin is a CREATEROLE member of azure_pg_admin, which owns the app database.
"""

from __future__ import annotations

import subprocess
import uuid

import psycopg2
import pytest

from infra.db_role import psql_command
from tests.azure_postgres import (
    ADMIN,
    DATABASE,
    DEFINER_SCHEMA,
    DEFINER_STAND_IN,
    OWNER,
    cursor_as,
    run_sql_step,
)


def run_step(cluster, fake_bin, role: str, object_id: str, database: str = DATABASE,
             principal_type: str = "service") -> subprocess.CompletedProcess:
    # The local cluster has no TLS (sslmode disable); Azure's requires it.
    return run_sql_step(cluster, fake_bin, role, object_id, database=database,
                        principal_type=principal_type)


def test_app_and_slot_roles_share_the_schema_with_least_privilege(azure_like_server):
    cluster, fake_bin = azure_like_server
    app, slot = ("app-rr-test", str(uuid.uuid4())), ("app-rr-test-staging", str(uuid.uuid4()))
    for role, object_id in (app, slot, app):  # the rerun proves the step is idempotent
        result = run_step(cluster, fake_bin, role, object_id)
        assert result.returncode == 0, result.stderr

    with cursor_as(cluster, *app) as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == (OWNER,)
        cursor.execute("CREATE TABLE reviews (id serial PRIMARY KEY, body text)")
        cursor.execute("INSERT INTO reviews (body) VALUES ('great')")
    with cursor_as(cluster, *slot) as cursor:  # the other slot can migrate what the first made
        cursor.execute("ALTER TABLE reviews ADD COLUMN rating int")
        cursor.execute("SELECT body FROM reviews")
        assert cursor.fetchall() == [("great",)]

    owner = cluster.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'reviews'",
                            database=DATABASE)
    assert owner == [(OWNER,)]
    flags = cluster.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                            "WHERE rolname = ANY(%s)", params=([app[0], slot[0], OWNER],))
    assert flags == [(False, False, False)] * 3


def test_the_step_creates_the_search_extensions_the_app_role_cannot(azure_like_server):
    cluster, fake_bin = azure_like_server
    app = ("app-rr-search", str(uuid.uuid4()))
    assert run_step(cluster, fake_bin, *app).returncode == 0

    with cursor_as(cluster, *app) as cursor:
        # What migration 0004 runs: a no-op, with no privilege needed, once they exist.
        for extension in ("unaccent", "pg_trgm"):
            cursor.execute(f"CREATE EXTENSION IF NOT EXISTS {extension} SCHEMA public")
        cursor.execute("SELECT public.unaccent('Crème') LIKE 'Creme'")
        assert cursor.fetchone() == (True,)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute("CREATE EXTENSION fuzzystrmatch")  # trusted too, but not created


def test_the_developers_group_gets_a_group_role_with_the_apps_privileges(azure_like_server):
    cluster, fake_bin = azure_like_server
    app = ("app-rr-devs", str(uuid.uuid4()))
    group = ("rr dev developers", str(uuid.uuid4()))  # a display name, spaces and all
    assert run_step(cluster, fake_bin, *app).returncode == 0
    result = run_step(cluster, fake_bin, *group, principal_type="group")
    assert result.returncode == 0, result.stderr

    note = cluster.execute("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles "
                           "WHERE rolname = %s", params=(group[0],))
    assert note == [(f"aadauth,oid={group[1]},type=group",)]
    with cursor_as(cluster, *app) as cursor:
        cursor.execute("CREATE TABLE dishes (id serial PRIMARY KEY, name text)")
    with cursor_as(cluster, *group) as cursor:  # a member works on the app's tables, as owner
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == (OWNER,)
        cursor.execute("INSERT INTO dishes (name) VALUES ('ragu')")
        cursor.execute("ALTER TABLE dishes ADD COLUMN price int")
    flags = cluster.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
                            "FROM pg_roles WHERE rolname = %s", params=(group[0],))
    assert flags == [(False, False, False, False)]


def test_an_unknown_principal_type_is_refused_before_psql_runs():
    with pytest.raises(ValueError, match="principal_type 'user'"):
        psql_command("someone", str(uuid.uuid4()), OWNER, DATABASE, "user")


def test_the_role_follows_a_recreated_identity(azure_like_server):
    cluster, fake_bin = azure_like_server
    role, old_identity, new_identity = "app-rr-moved", str(uuid.uuid4()), str(uuid.uuid4())
    assert run_step(cluster, fake_bin, role, old_identity).returncode == 0
    with cursor_as(cluster, role, old_identity) as cursor:
        cursor.execute("CREATE TABLE visits (id serial PRIMARY KEY)")
        cursor.execute("INSERT INTO visits DEFAULT VALUES")

    result = run_step(cluster, fake_bin, role, new_identity)  # the app was recreated
    assert result.returncode == 0, result.stderr

    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"), \
            cursor_as(cluster, role, old_identity):
        pass
    with cursor_as(cluster, role, new_identity) as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == (OWNER,)
        cursor.execute("ALTER TABLE visits ADD COLUMN seen_at timestamptz")
        cursor.execute("SELECT count(*) FROM visits")
        assert cursor.fetchone() == (1,)
    again = run_step(cluster, fake_bin, role, new_identity)  # unchanged identity: nothing to do
    assert again.returncode == 0, again.stderr
    assert "DROP ROLE" not in again.stdout


def test_other_roles_cannot_connect_to_the_app_database(azure_like_server):
    cluster, fake_bin = azure_like_server
    assert run_step(cluster, fake_bin, "app-rr-other", str(uuid.uuid4())).returncode == 0
    cluster.execute("CREATE ROLE stranger LOGIN PASSWORD 'token-for-stranger'")
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        psycopg2.connect(host="127.0.0.1", port=cluster.port, user="stranger", dbname=DATABASE,
                         password="token-for-stranger")  # noqa: S106 - local stand-in


def test_a_failing_statement_fails_the_step(azure_like_server):
    cluster, fake_bin = azure_like_server
    result = run_step(cluster, fake_bin, "app-rr-lost", str(uuid.uuid4()), database="missing")
    assert result.returncode != 0
    assert 'database "missing" does not exist' in result.stderr
    # ON_ERROR_STOP: psql stops at the first error, so `pulumi up` fails instead of going on
    # to deploy an app whose database role is half made.
    assert result.stderr.count("ERROR:") == 1


def test_known_limit_a_security_definer_pgaadauth_leaves_the_admin_without_admin_option(
        azure_like_server, monkeypatch):
    """If Azure's pgaadauth_create_principal_with_oid runs as the service's superuser, the step
    fails on PostgreSQL 16, loudly (infra/README.md, known limits, says what a fix needs)."""
    cluster, fake_bin = azure_like_server
    cluster.execute(DEFINER_STAND_IN)
    monkeypatch.setenv("PGOPTIONS", f"-c search_path={DEFINER_SCHEMA},public")
    role = "app-rr-definer"

    first = run_step(cluster, fake_bin, role, str(uuid.uuid4()))
    assert first.returncode != 0
    assert "permission denied to alter role" in first.stderr
    assert f'ADMIN option on role "{role}"' in first.stderr
    # The login role exists but does not act as the owner role: no half-working app login.
    assert cluster.execute("SELECT setrole FROM pg_db_role_setting JOIN pg_roles AS r "
                           "ON r.oid = setrole WHERE r.rolname = %s", params=(role,)) == []

    rebind = run_step(cluster, fake_bin, role, str(uuid.uuid4()))  # a recreated identity
    assert rebind.returncode != 0
    assert "permission denied to drop role" in rebind.stderr


def test_grants_that_only_warn_fail_the_step(azure_like_server):
    """A GRANT/REVOKE on a database the administrator cannot act for only prints a WARNING,
    which ON_ERROR_STOP lets pass: the checks at the end of the script fail the step instead."""
    cluster, fake_bin = azure_like_server
    cluster.execute("CREATE ROLE someone_else NOLOGIN")
    cluster.execute("CREATE DATABASE rr_not_ours OWNER someone_else")
    result = run_step(cluster, fake_bin, "app-rr-not-ours", str(uuid.uuid4()),
                      database="rr_not_ours")
    assert result.returncode != 0
    assert "WARNING:  no privileges could be revoked" in result.stderr
    assert "database role step incomplete: PUBLIC can still connect to database rr_not_ours" \
        in result.stderr


def test_a_grant_that_only_warns_fails_the_step(azure_like_server):
    """PUBLIC has no access, and the administrator may connect but not pass that on: the owner
    role's grant only warns."""
    cluster, fake_bin = azure_like_server
    cluster.execute("CREATE ROLE other_owner NOLOGIN")
    cluster.execute("CREATE DATABASE rr_no_grant OWNER other_owner")
    cluster.execute("REVOKE ALL ON DATABASE rr_no_grant FROM PUBLIC")
    cluster.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE rr_no_grant TO "{ADMIN}"')
    result = run_step(cluster, fake_bin, "app-rr-no-grant", str(uuid.uuid4()),
                      database="rr_no_grant")
    assert result.returncode != 0
    assert "WARNING:  no privileges were granted" in result.stderr
    assert f"{OWNER} lacks CONNECT or TEMPORARY on database rr_no_grant" in result.stderr
