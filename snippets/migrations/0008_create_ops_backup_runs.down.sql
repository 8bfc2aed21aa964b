-- Drop ops.backup_runs and the ops schema (what 0008_create_ops_backup_runs.up.sql created).
-- page: procedures/deployment.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

DROP TABLE ops.backup_runs;
DROP SCHEMA ops;

COMMIT;
