# Cache warming: load the best-selling products of the last 30 days into Redis, with ERPGo's TTL
# page: runbooks/low-cache-hit-rate.md
# mode: writes
# changes: Redis: the best sellers' cache keys are written, with ERPGo's TTL
# needs: pg,redis
# user: pg=erpgo_monitor, redis=erpgo_admin
set -euo pipefail
# Writes erpgo:product:<id> (the product's JSON, as ERPGo caches it) for the WARM_TOP
# (default 1000) products with the most units sold, each with a TTL of CACHE_TTL_SECONDS
# (default 600: ERPGO_CACHE_DEFAULT_TTL). Touches no other key; safe to run again. psql
# writes the SET commands in the Redis protocol and redis-cli --pipe sends them in bulk.
top="${WARM_TOP:-1000}"
ttl="${CACHE_TTL_SECONDS:-600}"
psql -X -q -At -v ON_ERROR_STOP=1 -v top="${top}" -v ttl="${ttl}" <<'SQL' |
SET client_encoding = 'UTF8';
WITH popular AS (
    SELECT oi.product_id, sum(oi.quantity) AS units
      FROM orders AS o
      JOIN order_items AS oi ON oi.order_id = o.id
     WHERE o.created_at >= now() - interval '30 days'
     GROUP BY oi.product_id
),
entries AS (
    SELECT 'erpgo:product:' || p.id AS key,
           json_build_object(
               'id', p.id, 'sku', p.sku, 'name', p.name, 'price', p.price,
               'stock', (SELECT json_object_agg(w.code, i.quantity - i.reserved
                                                ORDER BY w.code)
                           FROM inventory AS i
                           JOIN warehouses AS w ON w.id = i.warehouse_id
                          WHERE i.product_id = p.id))::text AS value
      FROM popular
      JOIN products AS p ON p.id = popular.product_id
     WHERE p.is_active
     ORDER BY popular.units DESC, p.id
     LIMIT :top
)
-- One SET key value EX ttl each, in the Redis protocol; psql ends each line with \n.
SELECT format(E'*5\r\n$3\r\nSET\r\n$%s\r\n%s\r\n$%s\r\n%s\r\n$2\r\nEX\r\n$%s\r\n%s\r',
              octet_length(key), key, octet_length(value), value,
              octet_length(:'ttl'), :'ttl')
  FROM entries;
SQL
    redis-cli --no-auth-warning -u "${REDIS_URL:?set REDIS_URL}" --pipe
