-- On a standby: is it in recovery, what has it received and replayed, is replay paused
-- page: architecture/disaster-recovery.md
-- mode: read-only
-- user: erpgo_monitor
SELECT pg_is_in_recovery() AS in_recovery,
       pg_last_wal_receive_lsn() AS received_lsn,
       pg_last_wal_replay_lsn() AS replayed_lsn,
       pg_is_in_recovery() AND pg_is_wal_replay_paused() AS replay_paused,
       now() - pg_last_xact_replay_timestamp() AS since_last_replayed_commit,
       (SELECT status FROM pg_stat_wal_receiver) AS wal_receiver;
