-- Drop the sessions table (and with it the indexes 0002_create_sessions.up.sql created).
-- page: reference/schema.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

DROP TABLE sessions;

COMMIT;
