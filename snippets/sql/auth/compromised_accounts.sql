-- Accounts that logged in successfully from an attacking address in the last 15 minutes
-- page: runbooks/authentication-failures.md
-- mode: read-only
-- user: erpgo_monitor
-- Attacking addresses are those classify_attacks.sql reports, with the same thresholds;
-- for a distributed attack, every address that failed on the attacked account. Any row
-- here is an account the attacker probably controls.
WITH params AS (
    SELECT 20 AS brute_force_failures,
           10 AS stuffing_accounts, 10 AS distributed_addresses
),
recent AS (
    SELECT ip, success, attempted_at, user_id, username,
           coalesce(user_id::text, lower(username)) AS account
      FROM login_attempts
     WHERE attempted_at >= now() - interval '15 minutes'
),
distributed AS (
    SELECT r.account
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
    SELECT r.ip
      FROM recent AS r
      JOIN distributed AS d USING (account)
     WHERE NOT r.success
)
SELECT coalesce((SELECT username FROM users WHERE id = r.user_id), r.username)
           AS username,
       r.user_id,
       host(r.ip) AS source,
       date_trunc('second', r.attempted_at) AS logged_in_at
  FROM recent AS r
  JOIN attackers AS a USING (ip)
 WHERE r.success
 ORDER BY r.attempted_at, 1;
