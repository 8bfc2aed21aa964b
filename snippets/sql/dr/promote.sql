-- Promote this server if, and only if, it is a standby; waits up to 60 s for the promotion
-- page: architecture/disaster-recovery.md
-- mode: writes
-- user: postgres
SELECT CASE WHEN pg_is_in_recovery() THEN pg_promote(wait => true, wait_seconds => 60) END
         AS promoted,
       pg_is_in_recovery() AS still_in_recovery;
