-- Reload the configuration (and the TLS certificate and key) without a restart, then show problems
-- page: architecture/security.md
-- mode: writes
-- changes: the running server: it rereads its configuration files and its TLS certificate
-- user: postgres
SELECT pg_reload_conf();
-- Lines of the configuration files the server could not apply: expect no rows.
SELECT sourcefile, sourceline, name, error
FROM pg_file_settings
WHERE error IS NOT NULL;
