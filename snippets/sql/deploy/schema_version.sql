-- The schema version the release expects, applied and clean (compare with the expected output)
-- page: procedures/deployment.md
SELECT version, dirty FROM schema_migrations;
