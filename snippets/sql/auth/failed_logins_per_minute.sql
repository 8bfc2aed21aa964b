-- Failed logins per minute over the last 15 minutes, by reason: the alert's rate, from the database
-- page: runbooks/authentication-failures.md
-- mode: read-only
-- user: erpgo_monitor
-- The alert fires above 10 failures a minute. Bounded by time on the indexed
-- attempted_at column, so it stays cheap on a table of millions of attempts.
SELECT date_trunc('minute', attempted_at) AS minute,
       count(*) AS failures,
       count(*) FILTER (WHERE reason = 'bad_password') AS bad_password,
       count(*) FILTER (WHERE reason = 'unknown_user') AS unknown_user,
       count(*) FILTER (WHERE reason IN ('locked', 'disabled')) AS locked_or_disabled,
       count(DISTINCT ip) AS addresses,
       count(DISTINCT username) AS login_names
  FROM login_attempts
 WHERE attempted_at >= now() - interval '15 minutes'
   AND NOT success
 GROUP BY 1
 ORDER BY 1;
