-- The statements that took the most database time since statistics were last reset
-- page: runbooks/high-latency.md
-- mode: read-only
-- extension: pg_stat_statements
-- requires: pg>=13
-- user: erpgo_monitor
-- Column names as in pg_stat_statements 1.8 and later (PostgreSQL 13+): before 13
-- total_exec_time and mean_exec_time were total_time and mean_time. The columns used
-- here are the same on every supported major (15 to 18).
SELECT coalesce(d.datname, '-') AS database,
       s.calls,
       round(s.total_exec_time::numeric, 1) AS total_ms,
       round(s.mean_exec_time::numeric, 2) AS mean_ms,
       round((100 * s.total_exec_time
              / nullif(sum(s.total_exec_time) OVER (), 0))::numeric, 1)
           AS pct_of_time,
       (s.shared_blks_hit + s.shared_blks_read) / s.calls AS buffers_per_call,
       s.rows / s.calls AS rows_per_call,
       left(regexp_replace(s.query, '\s+', ' ', 'g'), 100) AS query
  FROM pg_stat_statements AS s
  LEFT JOIN pg_database AS d ON d.oid = s.dbid
 WHERE s.calls > 0
 ORDER BY s.total_exec_time DESC
 LIMIT 10;
