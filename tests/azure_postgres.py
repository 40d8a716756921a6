"""A local PostgreSQL dressed up like Azure's flexible server, for the SQL step's tests.

Azure's pieces are stood in for: `az` prints a fixed token, pgaadauth_create_principal_with_oid
creates a login role whose password is "token-for-<object id>" (what an Entra token is to the
server), and the admin is a CREATEROLE member of azure_pg_admin, which owns the app database.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import psycopg2
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

# The other way Azure's function may run: SECURITY DEFINER, as the service's own superuser. Then
# the superuser creates the role and the administrator gets no ADMIN OPTION on it (PostgreSQL
# 16). Kept in a schema of its own; a session picks it with search_path (PGOPTIONS).
DEFINER_SCHEMA = "pgaadauth_definer"
DEFINER_STAND_IN = f"CREATE SCHEMA IF NOT EXISTS {DEFINER_SCHEMA};\n" + STAND_IN.replace(
    "CREATE FUNCTION pgaadauth", f"CREATE OR REPLACE FUNCTION {DEFINER_SCHEMA}.pgaadauth").replace(
    "RETURNS text LANGUAGE plpgsql AS", "RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS") + (
    f"GRANT USAGE ON SCHEMA {DEFINER_SCHEMA} TO PUBLIC;\n")


def dress_like_azure(cluster, database: str = DATABASE) -> None:
    """The administrator role, the pgaadauth stand-ins and the app database, in `cluster`."""
    cluster.execute("CREATE ROLE azure_pg_admin NOLOGIN")
    cluster.execute(f"CREATE ROLE \"{ADMIN}\" LOGIN CREATEROLE PASSWORD '{ADMIN_TOKEN}' "
                    "IN ROLE azure_pg_admin")
    cluster.execute(STAND_IN)
    cluster.execute(f'CREATE DATABASE "{database}" OWNER azure_pg_admin')


def admin_az(folder: Path) -> Path:
    """`folder` holding an `az` that hands the administrator its token, as the script asks."""
    az = folder / "az"
    az.write_text("#!/bin/sh\n"
                  '[ "$*" = "account get-access-token --resource-type oss-rdbms --query '
                  f'accessToken --output tsv" ] && echo {ADMIN_TOKEN} && exit 0\n'
                  'echo "unexpected az call: $*" >&2; exit 2\n')
    az.chmod(0o755)
    return folder


def run_sql_step(cluster, fake_bin: Path, role: str, object_id: str, *,
                 database: str = DATABASE, owner: str = OWNER, principal_type: str = "service",
                 sslmode: str = "disable") -> subprocess.CompletedProcess:
    """infra/sql/app_role.sql for one principal, run as the deployment script runs it."""
    env = {**os.environ,
           "PATH": f"{fake_bin}:{postgres_bin_dir()}:{os.environ['PATH']}",
           "PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": ADMIN,
           "PGDATABASE": "postgres", "PGSSLMODE": sslmode}
    env.pop("PGPASSWORD", None)
    command = psql_command(role, object_id, owner, database, principal_type)
    return subprocess.run(["/bin/sh", "-c", command], input=SQL_SCRIPT.read_text(), env=env,
                          capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture(scope="session")
def azure_like_server(postgres, tmp_path_factory):
    dress_like_azure(postgres)
    return postgres, admin_az(tmp_path_factory.mktemp("fake-az"))


@contextlib.contextmanager
def cursor_as(cluster, role: str, object_id: str, database: str = DATABASE):
    """An autocommit cursor signed in as `role`; the connection closes with the block."""
    with contextlib.closing(psycopg2.connect(host="127.0.0.1", port=cluster.port, user=role,
                                             dbname=database,
                                             password=f"token-for-{object_id}")) as conn:
        conn.autocommit = True
        with conn.cursor() as cursor:
            yield cursor
