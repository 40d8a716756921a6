"""The database-role SQL step, run for real: psql + infra/sql/app_role.sql on local PostgreSQL.

Azure's pieces are stood in for: `az` prints a fixed token, pgaadauth_create_principal_with_oid
creates a login role whose password is "token-for-<object id>" (what an Entra token is to the
server), and the admin is a CREATEROLE member of azure_pg_admin, which owns the app database.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import psycopg
import pytest

from devtools.services import postgres_bin_dir
from infra.db_role import SQL_SCRIPT, psql_command

ADMIN = "rr-sqlstep-db-admins"
ADMIN_TOKEN = "token-for-admin"  # noqa: S105 - a stand-in, not a credential
DATABASE = "rr_sqlstep"
OWNER = "rr_sqlstep_owner"

# Like Azure's pgaadauth: a login role whose password is what an Entra token for the object id
# is to the server ("token-for-<object id>"), with the mapping kept on the role itself. It runs as
# the calling administrator (no SECURITY DEFINER), so the administrator creates the role: on
# PostgreSQL 16 that is what gives it ADMIN OPTION on the role.
STAND_IN = """
CREATE FUNCTION pgaadauth_create_principal_with_oid(
    role_name text, object_id text, object_type text, is_admin boolean, is_mfa boolean)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', role_name, 'token-for-' || object_id);
    EXECUTE format('COMMENT ON ROLE %I IS %L', role_name,
                   'aadauth,oid=' || object_id || ',type=' || object_type);
    RETURN 'Created role for ' || role_name;
END $$;

CREATE FUNCTION pgaadauth_list_principals(is_admin boolean)
RETURNS TABLE (rolename name, principaltype text, objectid text, tenantid text, ismfa int,
               isadmin int)
LANGUAGE sql STABLE AS $$
    SELECT role.rolname, 'service', substring(note.description FROM 'oid=([^,]+)'), NULL, 0, 0
    FROM pg_roles AS role
    JOIN pg_shdescription AS note
      ON note.objoid = role.oid AND note.classoid = 'pg_authid'::regclass
    WHERE note.description LIKE 'aadauth,%'
$$;
"""


@pytest.fixture(scope="module")
def azure_like_server(postgres, tmp_path_factory):
    postgres.execute("CREATE ROLE azure_pg_admin NOLOGIN")
    postgres.execute(f"CREATE ROLE \"{ADMIN}\" LOGIN CREATEROLE PASSWORD '{ADMIN_TOKEN}' "
                     "IN ROLE azure_pg_admin")
    postgres.execute(STAND_IN)
    postgres.execute(f'CREATE DATABASE {DATABASE} OWNER azure_pg_admin')
    fake_bin = tmp_path_factory.mktemp("fake-az")
    az = fake_bin / "az"
    az.write_text("#!/bin/sh\n"
                  '[ "$*" = "account get-access-token --resource-type oss-rdbms --query '
                  f'accessToken --output tsv" ] && echo {ADMIN_TOKEN} && exit 0\n'
                  'echo "unexpected az call: $*" >&2; exit 2\n')
    az.chmod(0o755)
    return postgres, fake_bin


def run_step(cluster, fake_bin, role: str, object_id: str,
             database: str = DATABASE) -> subprocess.CompletedProcess:
    env = {**os.environ,
           "PATH": f"{fake_bin}:{postgres_bin_dir()}:{os.environ['PATH']}",
           "PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": ADMIN,
           "PGDATABASE": "postgres", "PGSSLMODE": "disable"}  # the local cluster has no TLS
    env.pop("PGPASSWORD", None)
    return subprocess.run(["/bin/sh", "-c", psql_command(role, object_id, OWNER, database)],
                          input=SQL_SCRIPT.read_text(), env=env, capture_output=True, text=True,
                          check=False, timeout=60)


def connect_as(cluster, role: str, object_id: str) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=cluster.port, user=role, dbname=DATABASE,
                           password=f"token-for-{object_id}", autocommit=True)


def test_app_and_slot_roles_share_the_schema_with_least_privilege(azure_like_server):
    cluster, fake_bin = azure_like_server
    app, slot = ("app-rr-test", str(uuid.uuid4())), ("app-rr-test-staging", str(uuid.uuid4()))
    for role, object_id in (app, slot, app):  # the rerun proves the step is idempotent
        result = run_step(cluster, fake_bin, role, object_id)
        assert result.returncode == 0, result.stderr

    with connect_as(cluster, *app) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (OWNER,)
        conn.execute("CREATE TABLE reviews (id serial PRIMARY KEY, body text)")
        conn.execute("INSERT INTO reviews (body) VALUES ('great')")
    with connect_as(cluster, *slot) as conn:  # the other slot can migrate what the first made
        conn.execute("ALTER TABLE reviews ADD COLUMN rating int")
        assert conn.execute("SELECT body FROM reviews").fetchall() == [("great",)]

    owner = cluster.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'reviews'",
                            database=DATABASE)
    assert owner == [(OWNER,)]
    flags = cluster.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                            "WHERE rolname = ANY(%s)", params=([app[0], slot[0], OWNER],))
    assert flags == [(False, False, False)] * 3


def test_the_role_follows_a_recreated_identity(azure_like_server):
    cluster, fake_bin = azure_like_server
    role, old_identity, new_identity = "app-rr-moved", str(uuid.uuid4()), str(uuid.uuid4())
    assert run_step(cluster, fake_bin, role, old_identity).returncode == 0
    with connect_as(cluster, role, old_identity) as conn:
        conn.execute("CREATE TABLE visits (id serial PRIMARY KEY)")
        conn.execute("INSERT INTO visits DEFAULT VALUES")

    result = run_step(cluster, fake_bin, role, new_identity)  # the app was recreated
    assert result.returncode == 0, result.stderr

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect_as(cluster, role, old_identity)
    with connect_as(cluster, role, new_identity) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (OWNER,)
        conn.execute("ALTER TABLE visits ADD COLUMN seen_at timestamptz")
        assert conn.execute("SELECT count(*) FROM visits").fetchone() == (1,)
    again = run_step(cluster, fake_bin, role, new_identity)  # unchanged identity: nothing to do
    assert again.returncode == 0, again.stderr
    assert "DROP ROLE" not in again.stdout


def test_other_roles_cannot_connect_to_the_app_database(azure_like_server):
    cluster, fake_bin = azure_like_server
    assert run_step(cluster, fake_bin, "app-rr-other", str(uuid.uuid4())).returncode == 0
    cluster.execute("CREATE ROLE stranger LOGIN PASSWORD 'token-for-stranger'")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(host="127.0.0.1", port=cluster.port, user="stranger", dbname=DATABASE,
                        password="token-for-stranger")  # noqa: S106 - local stand-in


def test_a_failing_statement_fails_the_step(azure_like_server):
    cluster, fake_bin = azure_like_server
    result = run_step(cluster, fake_bin, "app-rr-lost", str(uuid.uuid4()), database="missing")
    assert result.returncode != 0
    assert 'database "missing" does not exist' in result.stderr
    # ON_ERROR_STOP: psql stops at the first error, so `pulumi up` fails instead of going on
    # to deploy an app whose database role is half made.
    assert result.stderr.count("ERROR:") == 1
