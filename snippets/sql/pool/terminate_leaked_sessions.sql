-- Terminate the API's sessions that sit idle inside a transaction: the leaked ones, and only those
-- page: runbooks/connection-pool-exhaustion.md
-- mode: writes
-- changes: live sessions: the API's leaked ones end, and their open transactions roll back
-- user: postgres
-- Run it connected to the ERPGo database. It ends only sessions of this database
-- whose application_name is :app (default erpgo-api) and that have been idle inside
-- a transaction for at least :min_idle (default 1 minute); override either with
-- psql -v app=erpgo-worker -v min_idle='5 minutes'. Running it again is harmless:
-- it lists and terminates only what matches at that moment.
\if :{?app}
\else
  \set app erpgo-api
\endif
\if :{?min_idle}
\else
  \set min_idle '1 minute'
\endif
SELECT pid,
       application_name AS application,
       usename AS role,
       client_addr,
       date_trunc('second', now() - xact_start) AS transaction_age,
       date_trunc('second', now() - state_change) AS idle_for,
       left(regexp_replace(query, '\s+', ' ', 'g'), 60) AS last_query,
       pg_terminate_backend(pid) AS terminated
  FROM pg_stat_activity
 WHERE backend_type = 'client backend'
   AND datname = current_database()
   AND application_name = :'app'
   AND state IN ('idle in transaction', 'idle in transaction (aborted)')
   AND state_change < now() - :'min_idle'::interval
   AND pid <> pg_backend_pid()
 ORDER BY state_change;
