-- Least-privilege PostgreSQL role for one App Service identity (the app or a slot).
-- Run by infra/db_role.py as the Entra administrator, connected to the "postgres" database, with
-- psql variables: role, object_id, owner_role, database. Idempotent: safe to rerun.
\set ON_ERROR_STOP on

-- The login role, mapped to the managed identity's object id (a "service" principal).
SELECT format('SELECT * FROM pgaadauth_create_principal_with_oid(%L, %L, %L, false, false)',
              :'role', :'object_id', 'service')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec

-- One NOLOGIN role owns the schema objects, so the app and its staging slot (two identities)
-- can both run migrations on the same tables.
SELECT format('CREATE ROLE %I NOLOGIN', :'owner_role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner_role') \gexec

GRANT :"owner_role" TO :"role";
-- Sessions of the login role act as the owner role in the app database only: tables the
-- migrations create belong to owner_role, whichever slot ran them.
ALTER ROLE :"role" IN DATABASE :"database" SET role TO :'owner_role';

REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"database" TO :"owner_role";

\connect :"database"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner_role";
