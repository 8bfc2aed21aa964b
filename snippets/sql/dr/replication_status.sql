-- On the primary: each standby, whether it is synchronous, and how far behind it is
-- page: architecture/disaster-recovery.md
-- mode: read-only
-- user: erpgo_monitor
SELECT application_name,
       client_addr,
       state,
       sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS replay_lag_bytes,
       write_lag,
       flush_lag,
       replay_lag
FROM pg_stat_replication
ORDER BY application_name;
