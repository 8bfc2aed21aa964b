-- Sessions waiting on a lock, and the session that blocks each of them
-- page: runbooks/high-latency.md
-- mode: read-only
-- user: erpgo_monitor
-- pg_blocking_pids() follows the lock wait graph exactly, including locks held by
-- parallel workers and queued requests; a blocker that is itself blocked shows up
-- as a waiter too.
SELECT waiting.pid AS waiting_pid,
       coalesce(nullif(waiting.application_name, ''), '-') AS waiting_application,
       date_trunc('second', now() - waiting.query_start) AS waiting_for,
       left(regexp_replace(waiting.query, '\s+', ' ', 'g'), 60) AS waiting_query,
       blocker.pid AS blocking_pid,
       coalesce(nullif(blocker.application_name, ''), '-') AS blocking_application,
       blocker.state AS blocking_state,
       date_trunc('second', now() - blocker.xact_start) AS blocking_transaction_age,
       left(regexp_replace(blocker.query, '\s+', ' ', 'g'), 60) AS blocking_query
  FROM pg_stat_activity AS waiting
 CROSS JOIN LATERAL unnest(pg_blocking_pids(waiting.pid)) AS b(pid)
  JOIN pg_stat_activity AS blocker ON blocker.pid = b.pid
 WHERE waiting.backend_type = 'client backend'
 ORDER BY waiting.query_start, blocking_pid;
