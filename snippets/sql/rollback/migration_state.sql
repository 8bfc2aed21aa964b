-- What schema_migrations says, and what that means for a rollback
-- page: procedures/rollback.md
-- user: erpgo_monitor
SELECT coalesce(m.version::text, 'none') AS version,
       coalesce(m.dirty, false) AS dirty,
       CASE
           WHEN m.dirty THEN
               'failed half-way: check the schema, then force the last good version'
           WHEN m.version IS NULL THEN 'no migration recorded'
           ELSE 'clean: migrate down one version at a time'
       END AS meaning
  FROM (SELECT 1) AS one
  LEFT JOIN schema_migrations AS m ON true;
