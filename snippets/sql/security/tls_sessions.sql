-- Client sessions by TLS protocol and cipher: any row with tls = f is a plaintext connection
-- page: architecture/security.md
-- mode: read-only
-- user: erpgo_monitor
SELECT s.ssl AS tls,
       coalesce(s.version, '') AS protocol,
       coalesce(s.cipher, '') AS cipher,
       a.usename AS login_role,
       count(*) AS sessions
FROM pg_stat_ssl AS s
JOIN pg_stat_activity AS a USING (pid)
WHERE a.backend_type = 'client backend'
GROUP BY s.ssl, s.version, s.cipher, a.usename
ORDER BY s.ssl, a.usename;
