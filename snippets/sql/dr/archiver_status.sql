-- Is WAL archiving working? Settings, last archived and last failed segment
-- page: architecture/disaster-recovery.md
-- mode: read-only
-- user: erpgo_monitor
SELECT current_setting('archive_mode') AS archive_mode,
       current_setting('archive_timeout') AS archive_timeout,
       archived_count,
       last_archived_wal,
       now() - last_archived_time AS since_last_archived,
       failed_count,
       last_failed_wal,
       last_failed_time
FROM pg_stat_archiver;
