-- Drop login_attempts (and with it the indexes 0003_create_login_attempts.up.sql created).
-- page: reference/schema.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

DROP TABLE login_attempts;

COMMIT;
