-- The schema version the release expects, applied and clean (compare with the expected output)
-- page: procedures/deployment.md
-- user: erpgo_monitor
SELECT version, dirty FROM schema_migrations;
