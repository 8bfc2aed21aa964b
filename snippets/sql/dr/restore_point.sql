-- Mark a named restore point before a risky change (a release, a data migration)
-- page: architecture/disaster-recovery.md
-- mode: writes
-- changes: the WAL: one named restore point is written (needs a superuser)
-- user: postgres
SELECT pg_create_restore_point('erpgo-before-release') AS restore_point_lsn,
       pg_walfile_name(pg_current_wal_lsn()) AS in_wal_file;
