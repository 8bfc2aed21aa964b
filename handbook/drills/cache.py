"""The low-cache-hit-rate drill's workload: ERPGo's product cache, as Redis sees it.

ERPGo caches each product as ``erpgo:product:<id>`` (JSON, with a TTL) and reads it
cache-aside: GET, and on a miss load the product and SET it. Product pages are asked for
in proportion to their popularity: a Zipf law over the products ranked by units sold in
the last 30 days (the ranking the cache-warming script uses). The sequence of lookups
comes from a seeded ``random.Random``, so every run asks for the same keys in the same
order; only Redis's own eviction sampling differs between runs.

The incident: a nightly export job writes ``erpgo:export:<n>`` keys without a TTL into
the same Redis, whose ``maxmemory-policy`` is ``volatile-lru``. Only keys with a TTL can
be evicted, so once the exports fill ``maxmemory`` every product SET evicts another
product (or fails), and the product cache shrinks to almost nothing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

from redis.exceptions import OutOfMemoryError

from handbook.drills.common import DrillError, psql, redis_client
from handbook.servers.base import Server

PRODUCT_KEY = "erpgo:product:{}"
EXPORT_KEY = "erpgo:export:{}"
SEED = 20260105
# Popularity as the warming script ranks it (snippets/shell/cache/warm_cache.sh): active
# products by units sold in the last 30 days, then the unsold ones by id.
RANKING_SQL = """
SELECT p.id
  FROM products AS p
  LEFT JOIN (SELECT oi.product_id, sum(oi.quantity) AS units
               FROM orders AS o JOIN order_items AS oi ON oi.order_id = o.id
              WHERE o.created_at >= now() - interval '30 days'
              GROUP BY oi.product_id) AS sold ON sold.product_id = p.id
 WHERE p.is_active
 ORDER BY sold.units DESC NULLS LAST, p.id
"""


@dataclass(frozen=True)
class Result:
    lookups: int
    hits: int
    misses: int
    failed_writes: int  # SETs Redis refused (OOM under maxmemory)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0


@dataclass(frozen=True)
class Workload:
    products: tuple[int, ...]  # product ids, most popular first
    lookups: int = 12_000
    skew: float = 1.0  # Zipf exponent: the n-th product is asked for 1/n**skew as often
    ttl: int = 600  # ERPGO_CACHE_DEFAULT_TTL (10m)
    batch: int = 50  # lookups per round trip (pipelined), like concurrent requests
    seed: int = SEED

    def sequence(self) -> list[int]:
        """The product ids looked up, in order: the same list on every call."""
        weights = [1 / rank**self.skew for rank in range(1, len(self.products) + 1)]
        return random.Random(self.seed).choices(self.products, weights=weights, k=self.lookups)


def popularity(pg_env: dict[str, str]) -> tuple[int, ...]:
    """Active product ids of the database in ``pg_env``, most popular first."""
    return tuple(int(line) for line in psql(pg_env, RANKING_SQL).split())


def product_value(product_id: int) -> str:
    """What ERPGo caches for a product: its JSON, about 200 bytes."""
    return json.dumps(
        {
            "id": product_id,
            "sku": f"SKU-{product_id:06d}",
            "name": f"Product {product_id}",
            "price": round((product_id * 7919) % 49900 / 100 + 1, 2),
            "stock": {"WH01": 120, "WH02": 35, "WH03": 0},
            "tags": ["catalogue", "erpgo"],
        }
    )


def _batches(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run(server: Server, workload: Workload) -> Result:
    """Play the workload against ``server``, cache-aside; count what the client saw.

    A SET that Redis refuses for lack of memory (OOM) is a failed cache write, as ERPGo
    sees it; any other error reply is a broken drill (DrillError).
    """
    hits = misses = failed = 0
    with redis_client(server) as client:
        for batch in _batches(workload.sequence(), workload.batch):
            gets = client.pipeline(transaction=False)
            for product in batch:
                gets.get(PRODUCT_KEY.format(product))
            replies = gets.execute()
            missed = [p for p, reply in zip(batch, replies, strict=True) if reply is None]
            hits += len(batch) - len(missed)
            misses += len(missed)
            if not missed:
                continue
            sets = client.pipeline(transaction=False)
            for product in dict.fromkeys(missed):
                sets.set(PRODUCT_KEY.format(product), product_value(product), ex=workload.ttl)
            for reply in sets.execute(raise_on_error=False):
                if isinstance(reply, OutOfMemoryError):
                    failed += 1
                elif isinstance(reply, Exception):
                    raise DrillError(f"SET failed on {server.describe()}: {reply}")
    return Result(workload.lookups, hits, misses, failed)


def run_export_job(server: Server, size: int = 8192, limit: int = 100_000) -> int:
    """Write ``erpgo:export:<n>`` keys without a TTL until Redis refuses (OOM); how many."""
    value = "x" * size
    written = 0
    with redis_client(server) as client:
        while written < limit:
            sets = client.pipeline(transaction=False)
            for number in range(written, written + 20):
                sets.set(EXPORT_KEY.format(number), value)
            for reply in sets.execute(raise_on_error=False):
                if isinstance(reply, OutOfMemoryError):
                    return written
                if isinstance(reply, Exception):
                    raise DrillError(f"export SET failed on {server.describe()}: {reply}")
                written += 1
    raise DrillError(
        f"{server.describe()} accepted {limit} export keys without reaching maxmemory: "
        "start the drill's Redis with a small maxmemory"
    )


def keys(server: Server, pattern: str) -> set[str]:
    """Every key matching ``pattern`` (SCAN, never KEYS)."""
    with redis_client(server) as client:
        return set(client.scan_iter(match=pattern, count=1000))


def ttls(server: Server, names: list[str]) -> list[int]:
    """The TTL of each key in ``names``, in order (-1: none, -2: no such key)."""
    with redis_client(server) as client:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.ttl(name)
        return pipe.execute()
