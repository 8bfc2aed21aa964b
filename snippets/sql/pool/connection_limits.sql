-- Connection budget: max_connections, the reserved slots, and each role's and database's share
-- page: runbooks/connection-pool-exhaustion.md
-- mode: read-only
-- user: erpgo_monitor
-- reserved_connections (slots for pg_use_reserved_connections members) exists from
-- PostgreSQL 16 on; current_setting(..., true) gives NULL before that, counted as 0.
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved_pg16,
       current_setting('max_connections')::int
         - current_setting('superuser_reserved_connections')::int
         - coalesce(current_setting('reserved_connections', true)::int, 0)
         AS slots_for_applications,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')
         AS client_connections_now;

SELECT r.rolname AS role,
       CASE r.rolconnlimit WHEN -1 THEN 'no limit' ELSE r.rolconnlimit::text END
           AS role_limit,
       count(a.pid) AS connections_now
  FROM pg_roles AS r
  LEFT JOIN pg_stat_activity AS a
    ON a.usename = r.rolname AND a.backend_type = 'client backend'
 WHERE r.rolcanlogin
 GROUP BY r.rolname, r.rolconnlimit
 ORDER BY connections_now DESC, role;

SELECT d.datname AS database,
       CASE d.datconnlimit WHEN -1 THEN 'no limit' ELSE d.datconnlimit::text END
           AS database_limit,
       count(a.pid) AS connections_now
  FROM pg_database AS d
  LEFT JOIN pg_stat_activity AS a
    ON a.datid = d.oid AND a.backend_type = 'client backend'
 WHERE d.datallowconn
 GROUP BY d.datname, d.datconnlimit
 ORDER BY connections_now DESC, database;
