-- Expand: add users.email_verified_at beside email_verified, backfill it, keep both in step.
-- page: procedures/deployment.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

COMMENT ON COLUMN users.email_verified_at IS
    'When the address was confirmed (NULL: not confirmed); replaces email_verified.';

-- Backfill: the best known time of confirmation is the first login, else sign-up.
UPDATE users SET email_verified_at = coalesce(last_login_at, created_at)
    WHERE email_verified;

-- Until the contract migration, release 1.4 writes email_verified and release 1.5
-- writes email_verified_at: whichever a statement sets, the trigger sets the other to
-- match.
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
