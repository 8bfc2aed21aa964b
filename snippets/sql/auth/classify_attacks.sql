-- Attacks in the last 15 minutes of login attempts, one row each: brute force, credential stuffing, distributed
-- page: runbooks/authentication-failures.md
-- mode: read-only
-- user: erpgo_monitor
-- The thresholds are in params: one address failing 20 times is brute force, one
-- address trying 10 or more login names is credential stuffing, 10 or more addresses
-- failing on the same account is a distributed attack. Accounts are named by their
-- username whichever form (username or email) was typed; login names that match no
-- account stay as typed.
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
by_address AS (
    SELECT ip,
           count(*) FILTER (WHERE NOT success) AS failures,
           count(DISTINCT account) FILTER (WHERE NOT success) AS accounts,
           min(user_id) FILTER (WHERE NOT success) AS a_user_id,
           min(username) FILTER (WHERE NOT success) AS a_login,
           count(*) FILTER (WHERE success) AS successes,
           min(attempted_at) AS first_seen,
           max(attempted_at) AS last_seen
      FROM recent
     GROUP BY ip
),
by_account AS (
    SELECT account,
           max(user_id) AS user_id,
           min(username) AS login,
           count(*) FILTER (WHERE NOT success) AS failures,
           count(DISTINCT ip) FILTER (WHERE NOT success) AS addresses,
           count(*) FILTER (WHERE success) AS successes,
           min(attempted_at) AS first_seen,
           max(attempted_at) AS last_seen
      FROM recent
     GROUP BY account
)
SELECT CASE WHEN a.accounts >= p.stuffing_accounts THEN 'credential stuffing'
            ELSE 'brute force' END AS attack,
       host(a.ip) AS source,
       CASE WHEN a.accounts = 1
            THEN coalesce((SELECT username FROM users WHERE id = a.a_user_id),
                          a.a_login)
            ELSE a.accounts || ' accounts' END AS target,
       a.failures,
       a.successes,
       date_trunc('second', a.first_seen) AS first_seen,
       date_trunc('second', a.last_seen) AS last_seen
  FROM by_address AS a
 CROSS JOIN params AS p
 WHERE a.failures >= p.brute_force_failures OR a.accounts >= p.stuffing_accounts
UNION ALL
SELECT 'distributed',
       b.addresses || ' addresses',
       coalesce((SELECT username FROM users WHERE id = b.user_id), b.login),
       b.failures,
       b.successes,
       date_trunc('second', b.first_seen),
       date_trunc('second', b.last_seen)
  FROM by_account AS b
 CROSS JOIN params AS p
 WHERE b.addresses >= p.distributed_addresses
 ORDER BY attack, failures DESC, source;
