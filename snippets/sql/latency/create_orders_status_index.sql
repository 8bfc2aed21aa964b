-- Add the index the pending-orders query needs, without blocking writes to orders
-- page: runbooks/high-latency.md
-- mode: writes
-- changes: the orders table: a new index, built without blocking writes
-- user: postgres
-- CONCURRENTLY cannot run inside a transaction block: run this file with psql -f,
-- not with -1. A build that failed or was cancelled leaves an INVALID index behind,
-- which IF NOT EXISTS would keep: drop that first, so the file can simply be rerun.
SET lock_timeout = '5s';
SELECT coalesce((SELECT NOT indisvalid
                   FROM pg_index
                  WHERE indexrelid = to_regclass('orders_status_created_at_idx')),
                false) AS invalid_index_left \gset
\if :invalid_index_left
DROP INDEX CONCURRENTLY orders_status_created_at_idx;
\endif
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_status_created_at_idx
    ON orders (status, created_at);
SELECT i.indexrelid::regclass AS index_name,
       i.indisvalid AS valid,
       pg_size_pretty(pg_relation_size(i.indexrelid)) AS size
  FROM pg_index AS i
 WHERE i.indexrelid = 'orders_status_created_at_idx'::regclass;
