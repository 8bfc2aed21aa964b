-- Which login role ERPGo's sessions use: the old role must have none left before it is retired
-- page: architecture/security.md
-- mode: read-only
-- user: erpgo_monitor
SELECT usename AS login_role,
       application_name,
       count(*) AS sessions,
       min(backend_start) AS oldest_session
FROM pg_stat_activity
WHERE usename IN ('erpgo_app_blue', 'erpgo_app_green')
GROUP BY usename, application_name
ORDER BY usename, application_name;
