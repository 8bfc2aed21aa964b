-- PostgreSQL's own cache hit rate per database, and the tables read most from disk
-- page: runbooks/high-latency.md
-- mode: read-only
-- user: erpgo_monitor
-- blks_read counts pages PostgreSQL had to ask the kernel for (page cache or disk).
-- A busy OLTP database normally stays above 99 %.
SELECT datname AS database,
       blks_hit,
       blks_read,
       round(100.0 * blks_hit / nullif(blks_hit + blks_read, 0), 2) AS hit_pct,
       date_trunc('second', stats_reset) AS since
  FROM pg_stat_database
 WHERE datname IS NOT NULL
 ORDER BY blks_read DESC;

SELECT schemaname || '.' || relname AS table_name,
       heap_blks_read,
       heap_blks_hit,
       round(100.0 * heap_blks_hit / nullif(heap_blks_hit + heap_blks_read, 0), 2)
           AS heap_hit_pct,
       coalesce(idx_blks_read, 0) AS idx_blks_read
  FROM pg_statio_user_tables
 ORDER BY heap_blks_read + coalesce(idx_blks_read, 0) DESC
 LIMIT 10;
