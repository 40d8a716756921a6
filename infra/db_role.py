"""The app identity's own PostgreSQL role: the SQL, and the psql command that runs it.

ARM can make a principal the server's Entra *administrator*, but not an ordinary role. Making the
app an administrator would hand it azure_pg_admin on every database, so instead the stack's
deployer identity (an administrator, infra/deployer.py) runs infra/sql/app_role.sql in a
deployment script inside the stack's network: a login role bound to the identity's object id
(pgaadauth_create_principal_with_oid) with rights on the app's database only. When the stack
configures developer access, the same script makes the developers' group a role with the same
rights (infra/README.md, "Developer access").
"""

from __future__ import annotations

import shlex
from pathlib import Path

from infra.context import Context

SQL_SCRIPT = Path(__file__).resolve().parent / "sql" / "app_role.sql"
# Shell substitution run in the script's container, so no token is ever stored in the command.
ACCESS_TOKEN_ARGS = ("az", "account", "get-access-token", "--resource-type", "oss-rdbms",
                     "--query", "accessToken", "--output", "tsv")


def owner_role(ctx: Context) -> str:
    return f"{ctx.names.database}_owner"


# pgaadauth_create_principal_with_oid's principal types: an identity (the app) or an Entra group
# (developers, whose members sign in with the group's name as user name and their own token).
PRINCIPAL_TYPES = ("service", "group")


def psql_command(role: str, object_id: str, owner: str, database: str,
                 principal_type: str = "service") -> str:
    if principal_type not in PRINCIPAL_TYPES:
        raise ValueError(f"principal_type {principal_type!r}: expected one of {PRINCIPAL_TYPES}")
    variables = {"role": role, "object_id": object_id, "owner_role": owner, "database": database,
                 "principal_type": principal_type}
    args = ["psql", "--no-psqlrc", "--set", "ON_ERROR_STOP=1"]
    for name, value in variables.items():
        args += ["--set", f"{name}={value}"]
    # The password is a short-lived Entra token of the identity running the script.
    return f'PGPASSWORD="$({shlex.join(ACCESS_TOKEN_ARGS)})" {shlex.join(args)}'
