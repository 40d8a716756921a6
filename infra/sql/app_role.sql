-- Least-privilege PostgreSQL role for one Entra principal: the sites' identity, or (dev only) the
-- developers' group, whose members sign in with the group's name and their own tokens.
-- Run as a Microsoft Entra administrator of the server, connected to the "postgres" database, with
-- psql variables: role, object_id, principal_type ('service' or 'group'), owner_role, database.
-- Idempotent: safe to rerun, and a rerun after the principal changed (app or slot recreated)
-- binds the role to the new object id.
\set ON_ERROR_STOP on

-- Serialise concurrent runs (one per identity) on the shared owner role and database grants.
SELECT pg_advisory_lock(hashtext('restaurant-review/app_role.sql'));

-- A role bound to another identity (the app or slot was recreated) is dropped and made again:
-- it owns nothing (its sessions act as owner_role, below), and everything it was granted is
-- granted again further down. Renaming it would leave a stale login behind; relabelling it
-- in place would need ADMIN OPTION on a role the server's own function created.
SELECT format('DROP ROLE %I', :'role')
WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
  AND NOT EXISTS (SELECT 1 FROM pgaadauth_list_principals(false) AS principal
                  WHERE principal.objectid = :'object_id') \gexec

-- The login role, mapped to the principal's object id (principal_type). Made by
-- this administrator, which on PostgreSQL 16 is what gives it ADMIN OPTION on the role (needed
-- by ALTER ROLE below and by the DROP above on a later run).
SELECT format('SELECT * FROM pgaadauth_create_principal_with_oid(%L, %L, %L, false, false)',
              :'role', :'object_id', :'principal_type')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec

-- One NOLOGIN role owns the schema objects, so every login role granted it can run migrations
-- on the same tables, whichever identity it is bound to.
SELECT format('CREATE ROLE %I NOLOGIN', :'owner_role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner_role') \gexec

GRANT :"owner_role" TO :"role";
-- Sessions of the login role act as the owner role in the app database only: tables the
-- migrations create belong to owner_role, whichever slot ran them.
ALTER ROLE :"role" IN DATABASE :"database" SET role TO :'owner_role';

REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"database" TO :"owner_role";

SELECT pg_advisory_unlock(hashtext('restaurant-review/app_role.sql'));

\connect :"database"
SELECT pg_advisory_lock(hashtext('restaurant-review/app_role.sql'));
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner_role";
SELECT pg_advisory_unlock(hashtext('restaurant-review/app_role.sql'));

-- A GRANT or REVOKE by a role without the right to make it only prints a WARNING ("no
-- privileges were granted"), which ON_ERROR_STOP lets pass. So the outcome is checked here, and
-- any privilege that must (not) hold fails the step with the list of what is wrong.
-- psql does not expand its variables inside a DO block's body: settings carry them there.
SET app_role.role TO :'role';
SET app_role.owner_role TO :'owner_role';
SET app_role.database TO :'database';
DO $checks$
DECLARE
    login text := current_setting('app_role.role');
    owner text := current_setting('app_role.owner_role');
    db text := current_setting('app_role.database');
    wrong text[] := ARRAY[]::text[];
BEGIN
    IF NOT pg_has_role(login, owner, 'MEMBER') THEN
        wrong := wrong || format('%s is not a member of %s', login, owner);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_db_role_setting AS s
                   JOIN pg_roles AS r ON r.oid = s.setrole
                   JOIN pg_database AS d ON d.oid = s.setdatabase
                   WHERE r.rolname = login AND d.datname = db
                     AND format('role=%s', owner) = ANY (s.setconfig)) THEN
        wrong := wrong || format('%s does not act as %s in database %s', login, owner, db);
    END IF;
    IF NOT has_database_privilege(owner, db, 'CONNECT, TEMPORARY') THEN
        wrong := wrong || format('%s lacks CONNECT or TEMPORARY on database %s', owner, db);
    END IF;
    IF has_database_privilege('public', db, 'CONNECT') THEN
        wrong := wrong || format('PUBLIC can still connect to database %s', db);
    END IF;
    IF NOT has_schema_privilege(owner, 'public', 'USAGE, CREATE') THEN
        wrong := wrong || format('%s lacks USAGE or CREATE on schema public', owner);
    END IF;
    IF has_schema_privilege('public', 'public', 'CREATE') THEN
        wrong := wrong || 'PUBLIC can still create in schema public'::text;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN (login, owner)
               AND (rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls)) THEN
        wrong := wrong || format('%s or %s has a cluster-wide privilege', login, owner);
    END IF;
    IF cardinality(wrong) > 0 THEN
        RAISE EXCEPTION 'database role step incomplete: %', array_to_string(wrong, '; ');
    END IF;
END
$checks$;

-- The name search's extensions (webapp migration 0004), allow-listed in azure.extensions
-- (infra/data.py). Creating one takes CREATE on the database, which the app's roles lack; the
-- migration's CREATE EXTENSION IF NOT EXISTS then finds them and needs no privilege. Last, so
-- that the checks above explain a database this admin cannot change.
CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
