-- Enable the query statistics the runbooks read, in the database you are connected to
-- page: onboarding/troubleshooting.md
-- mode: writes
-- changes: the database you are connected to: it creates the pg_stat_statements extension
-- extension: pg_stat_statements
-- user: postgres
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SELECT count(*) >= 0 AS pg_stat_statements_ready FROM pg_stat_statements;
