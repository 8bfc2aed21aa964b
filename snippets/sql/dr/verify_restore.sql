-- Row count and content checksum of every table in this database: run it on the source and on the restore, then compare
-- page: architecture/disaster-recovery.md
-- mode: read-only
-- user: erpgo_monitor
SELECT string_agg(
         format('SELECT %L AS table_name, count(*) AS row_count, '
                'md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) '
                'AS checksum FROM %I.%I AS t',
                format('%I.%I', n.nspname, c.relname), n.nspname, c.relname),
         E'\nUNION ALL\n' ORDER BY n.nspname, c.relname) || E'\nORDER BY table_name'
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
\gexec
