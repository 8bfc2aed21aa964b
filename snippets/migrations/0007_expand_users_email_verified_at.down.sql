-- Drop users.email_verified_at and its sync trigger (what 0007's up added).
-- page: procedures/deployment.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

DROP TRIGGER users_sync_email_verified ON users;
DROP FUNCTION users_sync_email_verified();
ALTER TABLE users DROP COLUMN email_verified_at;

COMMIT;
