-- Drop users.email_verified (what 0006_add_users_email_verified.up.sql added).
-- page: procedures/deployment.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

ALTER TABLE users DROP COLUMN email_verified;

COMMIT;
