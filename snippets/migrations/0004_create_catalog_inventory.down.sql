-- Drop inventory, warehouses and products (what 0004_create_catalog_inventory.up.sql created).
-- page: reference/schema.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

DROP TABLE inventory;
DROP TABLE warehouses;
DROP TABLE products;

COMMIT;
