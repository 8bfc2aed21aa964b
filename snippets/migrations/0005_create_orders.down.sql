-- Drop order_items and orders (what 0005_create_orders.up.sql created).
-- page: reference/schema.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

DROP TABLE order_items;
DROP TABLE orders;

COMMIT;
