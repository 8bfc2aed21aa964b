-- End the sessions that sit idle inside a transaction while other sessions wait on their locks
-- page: runbooks/high-latency.md
-- mode: writes
-- changes: live sessions: the idle blockers end, and their open transactions roll back
-- user: postgres
-- Targets only this database's client sessions that (1) block at least one other
-- session, (2) are idle in a transaction, not running a statement, and (3) have been
-- idle for more than 5 seconds. Their transactions roll back; the waiting sessions
-- continue. Running it again ends nothing new unless a new blocker has appeared.
SELECT pid,
       coalesce(nullif(application_name, ''), '-') AS application,
       client_addr,
       date_trunc('second', now() - xact_start) AS transaction_age,
       left(regexp_replace(query, '\s+', ' ', 'g'), 60) AS last_query,
       pg_terminate_backend(pid) AS terminated
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
   AND datname = current_database()
   AND pid <> pg_backend_pid()
   AND state IN ('idle in transaction', 'idle in transaction (aborted)')
   AND now() - state_change > interval '5 seconds'
   AND pid IN (SELECT unnest(pg_blocking_pids(w.pid))
                 FROM pg_stat_activity AS w
                WHERE w.backend_type = 'client backend'
                  AND w.wait_event_type = 'Lock');
