-- Replication lag of each streaming replica, in bytes and time; says so when none is connected
-- page: procedures/deployment.md
-- user: erpgo_monitor
SELECT application_name AS replica,
       state,
       sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS bytes_behind,
       replay_lag
  FROM pg_stat_replication
UNION ALL
SELECT 'none: no streaming replica is connected to this server', NULL, NULL, NULL, NULL
 WHERE NOT EXISTS (SELECT FROM pg_stat_replication)
 ORDER BY 1;
