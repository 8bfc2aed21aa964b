-- Transactions open longer than a migration's lock_timeout (5 s), and the tables they lock
-- page: procedures/deployment.md
-- user: erpgo_monitor
SELECT a.pid,
       a.usename AS role,
       a.application_name,
       a.state,
       date_trunc('second', now() - a.xact_start) AS open_for,
       (SELECT string_agg(DISTINCT c.oid::regclass::text, ', ')
          FROM pg_locks AS l
          JOIN pg_class AS c ON c.oid = l.relation AND c.relkind IN ('r', 'p', 'm')
         WHERE l.pid = a.pid AND l.locktype = 'relation' AND l.granted
           AND l.database = (SELECT oid FROM pg_database
                             WHERE datname = current_database())
       ) AS locked_tables,
       left(a.query, 60) AS last_statement
  FROM pg_stat_activity AS a
 WHERE a.datname = current_database()
   AND a.backend_type = 'client backend'
   AND a.pid <> pg_backend_pid()
   AND a.xact_start < now() - interval '5 seconds'
 ORDER BY a.xact_start;
