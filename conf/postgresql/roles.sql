-- ERPGo's PostgreSQL roles and what each may do: the one definition that production and the
-- test servers share (no test suite keeps roles of its own).
--
-- Run it as the superuser, connected to the ERPGo database, when the cluster is built and
-- after every change to this file. It is idempotent: it creates the roles that are missing,
-- then states every attribute, setting and grant again.
--     psql -X -v ON_ERROR_STOP=1 -d erpgo -f roles.sql
-- It sets no password: give each LOGIN role its password from the secret store with psql's
-- \password ROLE, which sends only a SCRAM verifier (the password reaches no log). pg_hba.conf
-- says from where each login role is admitted.
-- The tests run this file on every PostgreSQL they start (in the postgres database, for the
-- roles) and in each ERPGo database they build before migrating it, then give each LOGIN
-- role a password made up for that server.

-- [start:create]
DO $create$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[
        'erpgo_app', 'erpgo_app_blue', 'erpgo_app_green', 'erpgo_migrate', 'erpgo_readonly',
        'erpgo_monitor', 'postgres_exporter', 'replicator', 'pgbouncer_auth'
    ] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
        END IF;
    END LOOP;
END
$create$;
-- [end:create]

-- [start:application]
-- ERPGo itself. erpgo_app holds the privileges and cannot log in; the API logs in (through
-- PgBouncer) as erpgo_app_blue or erpgo_app_green, the two logins the password rotation
-- alternates (architecture/security.md). Reads and writes rows; changes no schema.
ALTER ROLE erpgo_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE erpgo_app_blue LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE erpgo_app_green LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT erpgo_app TO erpgo_app_blue, erpgo_app_green;

-- The migration owner: the deployment's migration job logs in as erpgo_migrate and owns every
-- table, index and sequence the migrations create. Only it creates objects in the schema.
ALTER ROLE erpgo_migrate LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
DO $database$
BEGIN
    -- Schemas of its own (ops) in the database this file runs in.
    EXECUTE format('GRANT CREATE ON DATABASE %I TO erpgo_migrate', current_database());
END
$database$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO erpgo_migrate;
GRANT USAGE ON SCHEMA public TO erpgo_app, erpgo_readonly;
-- What the migrations create from now on...
ALTER DEFAULT PRIVILEGES FOR ROLE erpgo_migrate IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO erpgo_app;
ALTER DEFAULT PRIVILEGES FOR ROLE erpgo_migrate IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO erpgo_app;
ALTER DEFAULT PRIVILEGES FOR ROLE erpgo_migrate IN SCHEMA public
    GRANT SELECT ON TABLES TO erpgo_readonly;
-- ...and what they created before this file last ran.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO erpgo_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO erpgo_app;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO erpgo_readonly;
-- [end:application]

-- [start:accounts]
-- Reports and ad-hoc questions: reads ERPGo's tables, in read-only transactions only.
ALTER ROLE erpgo_readonly LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE erpgo_readonly SET default_transaction_read_only = on;
ALTER ROLE erpgo_readonly SET statement_timeout = '30s';

-- On-call diagnostics: every runbook query runs as erpgo_monitor. pg_monitor reads the
-- statistics views (pg_stat_activity with every session's query, pg_stat_statements, locks,
-- replication); pg_read_all_data reads every table, because the authentication and latency
-- runbooks query ERPGo's own tables (login_attempts, orders). It can change nothing: no write
-- privilege anywhere, every transaction read-only, and a statement ends after 5 seconds.
ALTER ROLE erpgo_monitor LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT pg_monitor, pg_read_all_data TO erpgo_monitor;
ALTER ROLE erpgo_monitor SET default_transaction_read_only = on;
ALTER ROLE erpgo_monitor SET statement_timeout = '5s';

-- postgres_exporter, beside each database server: the statistics views, nothing else.
ALTER ROLE postgres_exporter LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT pg_monitor TO postgres_exporter;
ALTER ROLE postgres_exporter SET default_transaction_read_only = on;
ALTER ROLE postgres_exporter SET statement_timeout = '10s';

-- The streaming replica and base backups (pg_basebackup): the replication protocol only.
ALTER ROLE replicator LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
-- [end:accounts]

-- [start:pgbouncer]
-- PgBouncer (conf/pgbouncer/pgbouncer.ini) checks a client's password against the SCRAM
-- verifier PostgreSQL stores, which it reads as pgbouncer_auth through this function: it
-- answers for ERPGo's login roles (members of erpgo_app) only, so the pooler can neither
-- read other verifiers nor log in as anyone else.
ALTER ROLE pgbouncer_auth LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE SCHEMA IF NOT EXISTS pgbouncer;
CREATE OR REPLACE FUNCTION pgbouncer.get_auth(p_usename text)
    RETURNS TABLE (usename name, passwd text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $get_auth$
    SELECT s.usename, s.passwd
      FROM pg_shadow AS s
     WHERE s.usename = p_usename
       AND pg_has_role(s.usesysid, 'erpgo_app', 'MEMBER')
       AND s.usename <> 'erpgo_app'
$get_auth$;
REVOKE ALL ON SCHEMA pgbouncer FROM PUBLIC;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO pgbouncer_auth;
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO pgbouncer_auth;
-- [end:pgbouncer]
