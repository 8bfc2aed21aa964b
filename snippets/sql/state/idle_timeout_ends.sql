-- Leaks the server already ends: the timeout in force, and the sessions each database lost to an error (the timeout's among them)
-- page: runbooks/connection-pool-exhaustion.md
-- mode: read-only
-- user: erpgo_monitor
SELECT current_setting('idle_in_transaction_session_timeout')
       AS idle_in_transaction_timeout;

-- sessions_fatal counts sessions ended by a FATAL error: the idle-in-transaction
-- timeout is one; sessions_killed those ended by pg_terminate_backend (the resolution
-- below).
SELECT datname AS database,
       sessions_fatal,
       sessions_killed,
       sessions_abandoned,
       stats_reset
  FROM pg_stat_database
 WHERE datname IS NOT NULL
 ORDER BY sessions_fatal DESC, datname;
