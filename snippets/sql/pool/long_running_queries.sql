-- Connections held by statements that run long: the other way a pool fills up
-- page: runbooks/connection-pool-exhaustion.md
-- mode: read-only
-- user: erpgo_monitor
-- Active client sessions whose current statement started more than 5 seconds ago,
-- oldest first, with what they wait on (a lock, I/O, the client) if anything.
SELECT pid,
       coalesce(nullif(application_name, ''), '-') AS application,
       date_trunc('second', now() - query_start) AS running_for,
       coalesce(wait_event_type || ':' || wait_event, '-') AS waiting_on,
       cardinality(pg_blocking_pids(pid)) AS blocked_by,
       left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS query
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
   AND state = 'active'
   AND pid <> pg_backend_pid()
   AND query_start < now() - interval '5 seconds'
 ORDER BY query_start
 LIMIT 20;
