-- What fills the disk: each database's size, the WAL directory, and WAL held back by replication slots
-- page: runbooks/database-connectivity.md
-- mode: read-only
-- user: erpgo_monitor
SELECT datname AS database,
       pg_size_pretty(pg_database_size(datname)) AS size
  FROM pg_database
 WHERE datallowconn
 ORDER BY pg_database_size(datname) DESC;

SELECT count(*) AS wal_files,
       pg_size_pretty(coalesce(sum(size), 0)) AS wal_size
  FROM pg_ls_waldir();

-- An inactive slot keeps every WAL file its consumer has not read: the classic
-- cause of a full WAL disk. On a standby, measure against the received position.
SELECT slot_name,
       slot_type,
       active,
       pg_size_pretty(pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                ELSE pg_current_wal_lsn() END,
           restart_lsn)) AS wal_held_back
  FROM pg_replication_slots
 ORDER BY pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                ELSE pg_current_wal_lsn() END,
           restart_lsn) DESC NULLS LAST;
