-- Undo the contract: bring back email_verified from email_verified_at, and the sync trigger.
-- page: procedures/deployment.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

-- email_verified comes back as the last column; rebuilding email_verified_at after it
-- puts the columns back in the order 0007 left them (ADD COLUMN always appends).
ALTER TABLE users RENAME COLUMN email_verified_at TO email_verified_at_contracted;
ALTER TABLE users
    ADD COLUMN email_verified boolean NOT NULL DEFAULT false,
    ADD COLUMN email_verified_at timestamptz;
UPDATE users
   SET email_verified = email_verified_at_contracted IS NOT NULL,
       email_verified_at = email_verified_at_contracted
 WHERE email_verified_at_contracted IS NOT NULL;
ALTER TABLE users DROP COLUMN email_verified_at_contracted;

COMMENT ON COLUMN users.email_verified_at IS
    'When the address was confirmed (NULL: not confirmed); replaces email_verified.';

CREATE FUNCTION users_sync_email_verified() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.email_verified_at IS NOT NULL THEN
            NEW.email_verified := true;
        ELSIF NEW.email_verified THEN
            NEW.email_verified_at := now();
        END IF;
    ELSIF NEW.email_verified_at IS DISTINCT FROM OLD.email_verified_at THEN
        NEW.email_verified := NEW.email_verified_at IS NOT NULL;
    ELSIF NEW.email_verified IS DISTINCT FROM OLD.email_verified THEN
        NEW.email_verified_at := CASE WHEN NEW.email_verified THEN now() END;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_sync_email_verified
    BEFORE INSERT OR UPDATE OF email_verified, email_verified_at ON users
    FOR EACH ROW EXECUTE FUNCTION users_sync_email_verified();

COMMIT;
