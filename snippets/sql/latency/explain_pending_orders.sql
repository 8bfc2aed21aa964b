-- The plan and buffer use of the pending-orders query: an example of query analysis
-- page: runbooks/high-latency.md
-- mode: read-only
-- user: erpgo_monitor
-- EXPLAIN ANALYZE runs the query; keep it to SELECTs (or wrap writes in a
-- transaction you roll back). "Buffers: shared hit=... read=..." counts 8 kB pages.
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT count(*) AS pending_orders, sum(total) AS pending_value
  FROM orders
 WHERE status = 'pending';
