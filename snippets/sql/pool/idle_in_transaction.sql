-- Sessions idle inside an open transaction, oldest first: the usual pool leak
-- page: runbooks/connection-pool-exhaustion.md
-- mode: read-only
-- user: erpgo_monitor
SELECT pid,
       usename AS role,
       coalesce(nullif(application_name, ''), '-') AS application,
       client_addr,
       date_trunc('second', now() - xact_start) AS transaction_age,
       date_trunc('second', now() - state_change) AS idle_for,
       left(regexp_replace(query, '\s+', ' ', 'g'), 80) AS last_query
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
   AND state IN ('idle in transaction', 'idle in transaction (aborted)')
 ORDER BY xact_start;
