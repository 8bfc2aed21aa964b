-- Promote this server if, and only if, it is a standby; waits up to 60 s for the promotion
-- page: architecture/disaster-recovery.md
-- mode: writes
-- changes: the standby: it becomes a primary that accepts writes, for good
-- user: postgres
SELECT CASE WHEN pg_is_in_recovery()
            THEN pg_promote(wait => true, wait_seconds => 60) END
         AS promoted,
       pg_is_in_recovery() AS still_in_recovery;
