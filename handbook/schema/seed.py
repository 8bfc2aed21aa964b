"""Deterministic seed data for the ERPGo reference schema (``snippets/migrations``).

``seed(env)`` fills a freshly migrated, empty database in one psql session and one
transaction, entirely server-side (``generate_series`` with ``setseed()``-driven
``random()``; no row-by-row inserts). The same scale, anchor and PostgreSQL major
version give the same rows, byte for byte.

Scales (``HANDBOOK_SCALE``, or the ``scale`` argument): ``small`` (the default; quick,
for every test) and ``production`` (1,000,000 login attempts over a week, a few hundred
live sessions, and the rest in proportion; loads in seconds).

What the data looks like, so that diagnostics have a realistic baseline to stand out from:

* every timestamp is relative to an *anchor* (default: the server's ``now()`` truncated
  to the minute, so "the last 15 minutes" queries see traffic; pass ``anchor`` to pin it);
* users are ``user000001`` / ``user000001@example.com`` ..., with a handful locked
  (``locked_until`` in the future, ``failed_login_count`` >= 5);
* login attempts arrive evenly over the window: about 97.5 % successes, each user mostly
  from their own address, and failures with reasons ``bad_password`` (typos),
  ``unknown_user`` (names that match no account) and ``locked``; the failure rate stays
  well under HighFailedLoginRate's 10 per minute;
* client addresses come from 198.18.0.0/15 (RFC 2544 benchmarking space) only, so an
  attack a drill injects from another range (e.g. 203.0.113.0/24) is easy to tell apart;
* sessions were created over the last day and last 12 hours, so about half are expired;
* orders span the order window, with items, totals consistent with their items, and
  statuses that depend on age; inventory never goes negative.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from handbook.paths import rel
from handbook.schema.migrations import MigrationError, client_env, client_program

SEED = 0.20260105  # setseed() argument; any fixed value in [-1, 1]
TABLES = (
    "users",
    "sessions",
    "login_attempts",
    "products",
    "warehouses",
    "inventory",
    "orders",
    "order_items",
)
# The order each table's rows are checksummed in (its primary key).
_ORDER_BY = {"inventory": "product_id, warehouse_id"}


class SeedError(MigrationError):
    """Seeding failed; the message names the line of SEED_SQL (in this file) that failed."""


@dataclass(frozen=True)
class Scale:
    name: str
    users: int
    locked_users: int
    sessions: int
    login_attempts: int
    login_window_hours: int
    products: int
    warehouses: int
    orders: int
    order_window_days: int


SCALES = {
    "small": Scale(
        name="small",
        users=200,
        locked_users=3,
        sessions=50,
        login_attempts=5_000,
        login_window_hours=24,
        products=500,
        warehouses=3,
        orders=3_000,
        order_window_days=90,
    ),
    "production": Scale(
        name="production",
        users=50_000,
        locked_users=40,
        sessions=400,
        login_attempts=1_000_000,
        login_window_hours=7 * 24,
        products=20_000,
        warehouses=8,
        orders=200_000,
        order_window_days=365,
    ),
}


def scale_from_env(env: dict[str, str] | None = None, scale: str | Scale | None = None) -> Scale:
    """The scale to use: ``scale`` if given, else ``HANDBOOK_SCALE`` (env, then os.environ)."""
    if isinstance(scale, Scale):
        return scale
    name = scale or (env or {}).get("HANDBOOK_SCALE") or os.environ.get("HANDBOOK_SCALE")
    name = (name or "small").strip().lower()
    if name not in SCALES:
        raise ValueError(
            f"HANDBOOK_SCALE={name!r} is not a seed scale; use one of: {', '.join(SCALES)}"
        )
    return SCALES[name]


def expected_counts(scale: Scale) -> dict[str, int]:
    """Rows per table after :func:`seed` (order_items follows from the orders: 1-5 each)."""
    items = sum(1 + order % 5 for order in range(1, scale.orders + 1))
    return {
        "users": scale.users,
        "sessions": scale.sessions,
        "login_attempts": scale.login_attempts,
        "products": scale.products,
        "warehouses": scale.warehouses,
        "inventory": scale.products * scale.warehouses,
        "orders": scale.orders,
        "order_items": items,
    }


# One psql script, one transaction. random() is only ever called over generate_series
# (never in a join whose plan could change the call order), each table after its own
# setseed(), so the rows do not depend on plans or on the other tables' generators.
SEED_SQL = r"""
\set ON_ERROR_STOP 1
BEGIN;

DO $check$
BEGIN
    IF to_regclass('order_items') IS NULL THEN
        RAISE EXCEPTION 'the ERPGo schema is missing'
            USING HINT = 'apply snippets/migrations first (handbook.schema.migrations.apply)';
    END IF;
    IF EXISTS (SELECT FROM users) OR EXISTS (SELECT FROM products) THEN
        RAISE EXCEPTION 'the database already holds ERPGo data'
            USING HINT = 'seed a freshly migrated database: the data is deterministic only there';
    END IF;
END
$check$;

SELECT CASE WHEN :'anchor' = '' THEN date_trunc('minute', now())::text
            ELSE :'anchor' END AS anchor \gset
\set anchor_ts '(' :'anchor' '::timestamptz)'

-- A user's own address, spread over 198.18.0.0/15 by a multiplicative hash of the id.
CREATE FUNCTION pg_temp.home_ip(uid bigint) RETURNS inet
    LANGUAGE sql IMMUTABLE AS $$ SELECT '198.18.0.0'::inet + (uid * 40503) % 131072 $$;
-- A product's price, 1.00 to 499.99, a function of its id (order items reuse it).
CREATE FUNCTION pg_temp.price(pid bigint) RETURNS numeric
    LANGUAGE sql IMMUTABLE AS $$ SELECT ((pid * 7919) % 49900 + 100) / 100.0 $$;

-- The client a login came from.
CREATE FUNCTION pg_temp.agent(r double precision) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT (ARRAY['ERPGo-Web/2.4', 'ERPGo-iOS/2.4.1', 'ERPGo-Android/2.4.0'])
               [1 + floor(r * 3)::int]
    $$;

-- Bulk load as the PostgreSQL manual advises ("Populating a Database"): drop the foreign
-- keys and the indexes that no constraint owns, load, then recreate them from their own
-- definitions (same names, same schema dump), each checked or built in one pass.
SET LOCAL maintenance_work_mem = '256MB';
CREATE TEMP TABLE seed_deferred_ddl ON COMMIT DROP AS
SELECT 1 AS phase, c.conname::text AS name,
       format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop_sql,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid)) AS create_sql
FROM pg_constraint AS c
WHERE c.contype = 'f' AND c.conrelid = ANY (:'tables'::regclass[])
UNION ALL
SELECT 0, i.indexrelid::regclass::text,
       format('DROP INDEX %s', i.indexrelid::regclass),
       pg_get_indexdef(i.indexrelid)
FROM pg_index AS i
WHERE i.indrelid = ANY (:'tables'::regclass[])
  AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid
                                                   AND c.conrelid = i.indrelid);
SELECT drop_sql FROM seed_deferred_ddl ORDER BY phase DESC, name \gexec

-- users --------------------------------------------------------------------------------
SELECT setseed(:seed);
INSERT INTO users (id, email, username, password_hash, is_active, failed_login_count,
                   locked_until, last_login_at, created_at, updated_at)
SELECT u,
       format('user%s@example.com', lpad(u::text, 6, '0')),
       format('user%s', lpad(u::text, 6, '0')),
       '$argon2id$v=19$m=65536,t=3,p=2$' || md5('salt' || u) || '$' || md5('hash' || u),
       u <= :locked_users OR r_active > 0.02,
       CASE WHEN u <= :locked_users THEN 5 ELSE floor(r_failed * 3)::int END,
       CASE WHEN u <= :locked_users THEN :anchor_ts + interval '30 minutes' END,
       :anchor_ts - r_login * interval '30 days',
       :anchor_ts - interval '400 days' + r_created * interval '300 days',
       :anchor_ts - r_login * interval '30 days'
FROM (SELECT u, random() AS r_active, random() AS r_failed, random() AS r_login,
             random() AS r_created
      FROM generate_series(1, :users) AS u) AS s;

-- sessions: created over the last day, valid for 12 hours, so about half are expired ----
SELECT setseed(:seed / 2);
INSERT INTO sessions (id, user_id, token_hash, ip, user_agent, created_at, expires_at)
SELECT md5('session' || i)::uuid,
       uid,
       encode(sha256(('token' || i)::bytea), 'hex'),
       pg_temp.home_ip(uid),
       pg_temp.agent(r_agent),
       created,
       created + interval '12 hours'
FROM (SELECT i,
             1 + floor(random() * :users)::int AS uid,
             random() AS r_agent,
             :anchor_ts - random() * interval '24 hours' AS created
      FROM generate_series(1, :sessions) AS i) AS s;

-- login attempts: evenly over the window, ids in time order ------------------------------
SELECT setseed(:seed / 3);
INSERT INTO login_attempts (id, user_id, username, ip, user_agent, success, reason,
                            attempted_at)
SELECT i,
       CASE WHEN kind = 'unknown_user' THEN NULL ELSE uid END,
       CASE WHEN kind = 'unknown_user'
                THEN format('%s%s@example.com',
                            (ARRAY['admin', 'info', 'sales', 'j.doe', 'test'])[1 + i % 5],
                            i % 97)
            WHEN r_email < 0.5 THEN format('user%s@example.com', lpad(uid::text, 6, '0'))
            ELSE format('user%s', lpad(uid::text, 6, '0')) END,
       CASE WHEN r_roam < 0.85 THEN pg_temp.home_ip(uid)
            ELSE '198.18.0.0'::inet + floor(r_roam_ip * 131072)::bigint END,
       pg_temp.agent(r_agent),
       kind = 'success',
       NULLIF(kind, 'success'),
       :anchor_ts - :window_hours * interval '1 hour'
           + (i - 1 + r_time) / :login_attempts * :window_hours * interval '1 hour'
FROM (SELECT i,
             CASE WHEN r_kind < 0.975 THEN 'success'
                  WHEN r_kind < 0.99 THEN 'bad_password'
                  WHEN r_kind < 0.996 THEN 'unknown_user'
                  ELSE 'locked' END AS kind,
             CASE WHEN r_kind >= 0.996 THEN 1 + floor(r_user * :locked_users)::int
                  ELSE 1 + floor(r_user * :users)::int END AS uid,
             r_email, r_roam, r_roam_ip, r_agent, r_time
      FROM (SELECT i, random() AS r_kind, random() AS r_user, random() AS r_email,
                   random() AS r_roam, random() AS r_roam_ip, random() AS r_agent,
                   random() AS r_time
            FROM generate_series(1, :login_attempts) AS i) AS r) AS s;

-- catalogue and inventory ----------------------------------------------------------------
SELECT setseed(:seed / 4);
INSERT INTO products (id, sku, name, description, price, is_active, created_at, updated_at)
SELECT p,
       format('SKU-%s', lpad(p::text, 6, '0')),
       format('%s %s', (ARRAY['Bolt', 'Bracket', 'Cable', 'Panel', 'Sensor', 'Valve'])[1 + p % 6],
              p),
       NULL,
       pg_temp.price(p),
       r_active > 0.03,
       :anchor_ts - interval '500 days' + r_created * interval '400 days',
       :anchor_ts - interval '500 days' + r_created * interval '400 days'
FROM (SELECT p, random() AS r_active, random() AS r_created
      FROM generate_series(1, :products) AS p) AS s;

INSERT INTO warehouses (id, code, name)
SELECT w, format('WH%s', lpad(w::text, 2, '0')), format('Warehouse %s', w)
FROM generate_series(1, :warehouses) AS w;

INSERT INTO inventory (product_id, warehouse_id, quantity, reserved, updated_at)
SELECT p, w, quantity, floor(quantity * r_reserved * 0.2)::int,
       :anchor_ts - r_updated * interval '7 days'
FROM (SELECT 1 + (n - 1) / :warehouses AS p,
             1 + (n - 1) % :warehouses AS w,
             CASE WHEN r_empty < 0.05 THEN 0 ELSE floor(r_quantity * 500)::int END AS quantity,
             r_reserved, r_updated
      FROM (SELECT n, random() AS r_empty, random() AS r_quantity, random() AS r_reserved,
                   random() AS r_updated
            FROM generate_series(1, :products * :warehouses) AS n) AS r) AS s;

-- orders: items first (into a scratch table), so each order is written once with its total
SELECT setseed(:seed / 5);
CREATE TEMP TABLE seed_orders ON COMMIT DROP AS
SELECT o,
       1 + floor(random() * :users)::int AS uid,
       random() AS r_status,
       :order_window_days * interval '1 day' * (1 - (o - 1 + random()) / :orders) AS age,
       random() AS r_updated
FROM generate_series(1, :orders) AS o;

SELECT setseed(:seed / 6);
CREATE TEMP TABLE seed_items ON COMMIT DROP AS
SELECT o, k, 1 + floor(random() * :products)::int AS pid, 1 + floor(random() * 4)::int AS quantity
FROM generate_series(1, :orders) AS o, LATERAL generate_series(1, 1 + o % 5) AS k;

INSERT INTO orders (id, user_id, status, total, currency, created_at, updated_at)
SELECT o, uid,
       CASE WHEN age < interval '1 day' THEN
                CASE WHEN r_status < 0.6 THEN 'pending' ELSE 'paid' END
            WHEN age < interval '7 days' THEN
                CASE WHEN r_status < 0.1 THEN 'cancelled'
                     WHEN r_status < 0.4 THEN 'paid' ELSE 'shipped' END
            ELSE CASE WHEN r_status < 0.05 THEN 'cancelled'
                      WHEN r_status < 0.08 THEN 'refunded' ELSE 'delivered' END END,
       t.total, 'USD', :anchor_ts - age, :anchor_ts - age * r_updated
FROM seed_orders
JOIN (SELECT o, sum(quantity * pg_temp.price(pid)) AS total
      FROM seed_items GROUP BY o) AS t USING (o)
ORDER BY o;

INSERT INTO order_items (id, order_id, product_id, quantity, unit_price)
SELECT row_number() OVER (ORDER BY o, k), o, pid, quantity, pg_temp.price(pid)
FROM seed_items
ORDER BY o, k;

-- identities continue after the seeded ids; keys and indexes come back ----------------------
SELECT setval(pg_get_serial_sequence('users', 'id'), :users);
SELECT setval(pg_get_serial_sequence('login_attempts', 'id'), :login_attempts);
SELECT setval(pg_get_serial_sequence('products', 'id'), :products);
SELECT setval(pg_get_serial_sequence('warehouses', 'id'), :warehouses);
SELECT setval(pg_get_serial_sequence('orders', 'id'), :orders);
SELECT setval(pg_get_serial_sequence('order_items', 'id'), (SELECT count(*) FROM order_items));

SELECT create_sql FROM seed_deferred_ddl ORDER BY phase, name \gexec

COMMIT;

ANALYZE users, sessions, login_attempts, products, warehouses, inventory, orders, order_items;
SELECT :'anchor' AS anchor;
"""


@dataclass(frozen=True)
class SeedResult:
    scale: Scale
    anchor: str  # the timestamptz every seeded time is relative to (given, or the server's)

    def as_dict(self) -> dict[str, object]:
        return {"scale": asdict(self.scale), "anchor": self.anchor}


def seed(
    env: dict[str, str], scale: str | Scale | None = None, *, anchor: datetime | str | None = None
) -> SeedResult:
    """Fill the freshly migrated database in ``env`` with the scale's deterministic data."""
    chosen = scale_from_env(env, scale)
    if isinstance(anchor, datetime):
        if anchor.tzinfo is None:
            raise ValueError("anchor must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
        anchor = anchor.isoformat()
    variables = {
        "seed": repr(SEED),
        "tables": "{" + ",".join(TABLES) + "}",
        "anchor": anchor or "",
        "users": chosen.users,
        "locked_users": chosen.locked_users,
        "sessions": chosen.sessions,
        "login_attempts": chosen.login_attempts,
        "window_hours": chosen.login_window_hours,
        "products": chosen.products,
        "warehouses": chosen.warehouses,
        "orders": chosen.orders,
        "order_window_days": chosen.order_window_days,
    }
    args = [client_program(env, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    for key, value in variables.items():
        args += ["-v", f"{key}={value}"]
    result = subprocess.run(
        [*args, "-f", "-"],
        input=SEED_SQL,
        env=client_env(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SeedError(f"seeding at scale {chosen.name!r} failed:\n{_located(result.stderr)}")
    return SeedResult(chosen, result.stdout.strip().splitlines()[-1])


def _located(stderr: str) -> str:
    """psql names the script line as ``psql:<stdin>:N:``; name the line in this file instead."""
    source = Path(__file__)
    start = source.read_text(encoding="utf-8").split("\nSEED_SQL = ", 1)[0].count("\n") + 2
    return re.sub(
        r"^psql:<stdin>:(\d+):",
        lambda m: f"{rel(source)}:{start + int(m[1]) - 1}:",
        stderr.strip(),
        flags=re.MULTILINE,
    )


def checksums(env: dict[str, str]) -> dict[str, str]:
    """``md5`` over every row of each seeded table in key order: equal data, equal sums."""
    parts = [
        f"SELECT '{table}', count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY "
        f"{_ORDER_BY.get(table, 'id')}), '')) FROM {table} AS t"
        for table in TABLES
    ]
    result = subprocess.run(
        [client_program(env, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c",
         " UNION ALL ".join(parts)],
        env={**client_env(env), "PGTZ": "UTC"},  # timestamps print the same everywhere
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SeedError(f"checksumming the seeded tables failed: {result.stderr.strip()}")
    sums = {}
    for line in result.stdout.splitlines():
        table, count, digest = line.split("|")
        sums[table] = f"{count}:{digest}"
    return sums


def counts(env: dict[str, str]) -> dict[str, int]:
    """Rows per seeded table."""
    return {table: int(value.split(":")[0]) for table, value in checksums(env).items()}
