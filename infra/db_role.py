"""The app identity's own PostgreSQL role, created by a SQL step during `pulumi up`.

ARM can make a principal the server's Entra *administrator*, but not an ordinary role. Making the
app an administrator would hand it azure_pg_admin on every database, so instead the configured
admin group runs infra/sql/app_role.sql: a login role bound to the identity's object id
(pgaadauth_create_principal_with_oid) with rights on the app's database only.

Like the deploy, this needs the az CLI and psql on the deployer and network line of sight to the
server: from anywhere allowed by the firewall in basic (config deployerIpAddress), from inside the
VNet (or a peered network) in standard and isolated, where the server has no public endpoint.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi
from pulumi_command import local

from infra.context import Context
from infra.data import DataServices

if TYPE_CHECKING:  # infra.app builds this step inside each Site
    from infra.app import Site

SQL_SCRIPT = Path(__file__).resolve().parent / "sql" / "app_role.sql"
# Shell substitution run on the deployer, so no token is ever stored in the command.
ACCESS_TOKEN_ARGS = ("az", "account", "get-access-token", "--resource-type", "oss-rdbms",
                     "--query", "accessToken", "--output", "tsv")


def owner_role(ctx: Context) -> str:
    return f"{ctx.names.database}_owner"


def psql_command(role: str, object_id: str, owner: str, database: str) -> str:
    variables = {"role": role, "object_id": object_id, "owner_role": owner, "database": database}
    args = ["psql", "--no-psqlrc", "--set", "ON_ERROR_STOP=1"]
    for name, value in variables.items():
        args += ["--set", f"{name}={value}"]
    # The password is a short-lived Entra token for the admin group member running `pulumi up`.
    return f'PGPASSWORD="$({shlex.join(ACCESS_TOKEN_ARGS)})" {shlex.join(args)}'


def create_database_role(ctx: Context, data: DataServices, site: Site,
                         depends_on: list[pulumi.Resource]) -> local.Command:
    """The SQL step for `site`'s identity, created as a child of the site."""
    script = SQL_SCRIPT.read_text(encoding="utf-8")
    command = site.principal_id.apply(
        lambda object_id: psql_command(site.database_role, object_id, owner_role(ctx),
                                       ctx.names.database)
    )
    return local.Command(
        f"db-role-{site.key}",
        create=command,
        stdin=script,
        environment={
            "PGHOST": data.postgres.fully_qualified_domain_name,
            "PGUSER": ctx.cfg.postgres_admin.principal_name,
            "PGDATABASE": "postgres",
            "PGSSLMODE": "require",
        },
        # A new identity (app or slot recreated) or a changed script reruns the step.
        triggers=[site.principal_id, site.database_role,
                  hashlib.sha256(script.encode()).hexdigest()],
        opts=pulumi.ResourceOptions(parent=site, depends_on=[*data.postgres_ready, *depends_on]),
    )
