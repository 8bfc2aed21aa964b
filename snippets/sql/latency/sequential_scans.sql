-- Large tables read by sequential scans: the sign of a query without the index it needs
-- page: runbooks/high-latency.md
-- mode: read-only
-- user: erpgo_monitor
-- Counters are cumulative since the last statistics reset (stats_reset in
-- pg_stat_database). Tables under 10,000 rows (as of their last ANALYZE) are left
-- out: reading them whole is often the cheapest plan.
SELECT s.schemaname || '.' || s.relname AS table_name,
       c.reltuples::bigint AS estimated_rows,
       s.seq_scan,
       s.seq_tup_read / s.seq_scan AS rows_per_seq_scan,
       coalesce(s.idx_scan, 0) AS idx_scan,
       s.n_mod_since_analyze AS changed_since_analyze,
       date_trunc('second', greatest(s.last_analyze, s.last_autoanalyze))
           AS last_analyzed
  FROM pg_stat_user_tables AS s
  JOIN pg_class AS c ON c.oid = s.relid
 WHERE s.seq_scan > 0
   AND c.reltuples >= 10000
 ORDER BY s.seq_tup_read DESC
 LIMIT 10;
