-- Add users.email_verified, the confirmed-address flag release 1.4 reads and writes.
-- page: procedures/deployment.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

-- Accounts that have logged in confirmed their address when they signed up.
UPDATE users SET email_verified = true WHERE last_login_at IS NOT NULL;

COMMIT;
