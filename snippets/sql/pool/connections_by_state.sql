-- Connections by database, application and state, against max_connections
-- page: runbooks/connection-pool-exhaustion.md
-- mode: read-only
-- user: erpgo_monitor
-- Client backends only: background workers (and PostgreSQL 18's io workers) are
-- not connections an application holds.
SELECT coalesce(datname, '-') AS database,
       coalesce(nullif(application_name, ''), '-') AS application,
       coalesce(state, '-') AS state,
       count(*) AS connections,
       round(100.0 * count(*) / current_setting('max_connections')::int, 1)
           AS pct_of_max
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
 GROUP BY 1, 2, 3
 ORDER BY connections DESC, database, application, state;

SELECT count(*) AS client_connections,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int
           AS reserved_for_superusers,
       round(100.0 * count(*) / current_setting('max_connections')::int, 1) AS pct_used
  FROM pg_stat_activity
 WHERE backend_type = 'client backend';
