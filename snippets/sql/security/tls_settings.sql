-- The server's TLS settings as it runs them (what postgresql.conf and a reload made effective)
-- page: architecture/security.md
-- mode: read-only
-- user: erpgo_monitor
SELECT name, setting
FROM pg_settings
WHERE name IN ('ssl', 'ssl_min_protocol_version', 'ssl_max_protocol_version',
               'ssl_ciphers', 'ssl_prefer_server_ciphers', 'ssl_cert_file',
               'ssl_key_file', 'ssl_ca_file', 'password_encryption')
ORDER BY name;
