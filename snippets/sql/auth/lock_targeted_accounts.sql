-- Account protection: lock for an hour the accounts under attack or taken over; revoke the taken-over accounts' sessions
-- page: runbooks/authentication-failures.md
-- mode: writes
-- changes: the users table: locks the attacked and taken-over accounts for an hour, and deletes the taken-over accounts' sessions
-- user: postgres
-- Locked: the target of a brute force (20 or more failures from one address) or of a
-- distributed attack (10 or more addresses), and every account that logged in
-- successfully from an attacking address. NOT locked: the many accounts a
-- credential-stuffing list merely tried; locking them would lock their owners out for
-- the attacker. Safe to run again: an account already locked keeps its lock, a revoked
-- session stays revoked.
BEGIN;

CREATE TEMP TABLE protect ON COMMIT DROP AS
WITH params AS (
    SELECT 20 AS brute_force_failures,
           10 AS stuffing_accounts, 10 AS distributed_addresses,
           interval '1 hour' AS lock_for
),
recent AS (
    SELECT ip, success, user_id,
           coalesce(user_id::text, lower(username)) AS account
      FROM login_attempts
     WHERE attempted_at >= now() - interval '15 minutes'
),
brute_forced AS (
    SELECT DISTINCT r.user_id
      FROM recent AS r, params AS p
     WHERE NOT r.success AND r.user_id IS NOT NULL
     GROUP BY r.ip, r.user_id, p.brute_force_failures
    HAVING count(*) >= p.brute_force_failures
),
distributed AS (
    SELECT r.account, max(r.user_id) AS user_id
      FROM recent AS r, params AS p
     WHERE NOT r.success
     GROUP BY r.account, p.distributed_addresses
    HAVING count(DISTINCT r.ip) >= p.distributed_addresses
),
attackers AS (
    SELECT r.ip
      FROM recent AS r, params AS p
     WHERE NOT r.success
     GROUP BY r.ip, p.brute_force_failures, p.stuffing_accounts
    HAVING count(*) >= p.brute_force_failures
        OR count(DISTINCT r.account) >= p.stuffing_accounts
    UNION
    SELECT r.ip FROM recent AS r JOIN distributed AS d USING (account)
    WHERE NOT r.success
),
compromised AS (
    SELECT DISTINCT r.user_id FROM recent AS r JOIN attackers USING (ip) WHERE r.success
)
SELECT t.user_id, string_agg(t.why, ', ' ORDER BY t.why) AS why,
       max(p.lock_for) AS lock_for
  FROM (SELECT user_id, 'brute force' AS why FROM brute_forced
        UNION ALL
        SELECT user_id, 'distributed attack' FROM distributed WHERE user_id IS NOT NULL
        UNION ALL
        SELECT user_id, 'compromised' FROM compromised) AS t,
       params AS p
 GROUP BY t.user_id;

UPDATE users AS u
   SET locked_until = now() + p.lock_for, updated_at = now()
  FROM protect AS p
 WHERE u.id = p.user_id
   AND (u.locked_until IS NULL OR u.locked_until < now());

UPDATE sessions AS s
   SET revoked_at = now()
  FROM protect AS p
 WHERE s.user_id = p.user_id
   AND p.why LIKE '%compromised%'
   AND s.revoked_at IS NULL
   AND s.expires_at > now();

SELECT u.username, p.why, date_trunc('second', u.locked_until) AS locked_until,
       (SELECT count(*) FROM sessions AS s
         WHERE s.user_id = u.id AND s.revoked_at IS NOT NULL AND s.expires_at > now())
           AS revoked_sessions
  FROM protect AS p
  JOIN users AS u ON u.id = p.user_id
 ORDER BY u.username;

COMMIT;
