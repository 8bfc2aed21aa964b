-- Drop the users table (and with it the indexes 0001_create_users.up.sql created).
-- page: reference/schema.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

DROP TABLE users;

COMMIT;
