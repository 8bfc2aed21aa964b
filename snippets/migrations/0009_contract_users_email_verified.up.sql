-- Contract: drop users.email_verified and its sync trigger, once no release reads the flag.
-- page: procedures/deployment.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

DROP TRIGGER users_sync_email_verified ON users;
DROP FUNCTION users_sync_email_verified();
ALTER TABLE users DROP COLUMN email_verified;

COMMIT;
