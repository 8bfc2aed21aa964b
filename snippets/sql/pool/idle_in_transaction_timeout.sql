-- Let PostgreSQL end any session of the ERPGo database left idle in a transaction too long
-- page: runbooks/connection-pool-exhaustion.md
-- mode: writes
-- changes: the ERPGo database's idle_in_transaction_session_timeout, for every new session
-- user: postgres
-- Run it connected to the ERPGo database. The limit is :limit (default 60s;
-- psql -v limit=30s to change it). New sessions get it; sessions already open keep
-- theirs until they reconnect (ERPGO_DB_CONN_MAX_LIFETIME replaces them).
-- Other databases are untouched. Running it again sets the same value.
\if :{?limit}
\else
  \set limit 60s
\endif
ALTER DATABASE :"DBNAME" SET idle_in_transaction_session_timeout = :'limit';

SELECT d.datname AS database,
       s.setconfig AS settings_for_new_sessions
  FROM pg_db_role_setting AS s
  JOIN pg_database AS d ON d.oid = s.setdatabase
 WHERE s.setrole = 0
   AND d.datname = current_database();
