"""The high-latency drill's workloads and incidents, and how to read the runbook's outputs.

The incident is the classic one: the warehouse dashboard asks for the pending orders,
``orders`` has a year of history, and no index starts with ``status``, so every call
reads the whole table. ``grow_orders`` gives the seeded ``orders`` that history;
``pending_orders`` runs the dashboard's query; ``healthy_traffic`` runs the indexed
lookups ERPGo makes all the time, so that the slow query has company to stand out from.

``LockHolder`` is a batch job that updated an order and then sat idle in its
transaction; ``Waiter`` is the API trying to update the same order. On Redis, the
incident is code listing cache keys with KEYS (redis-py, as ERPGo's own client).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg

from handbook.drills.common import DrillError, connect, psql, redis_client, table
from handbook.servers.base import Server

PENDING_ORDERS_SQL = (
    "SELECT count(*) AS pending_orders, sum(total) AS pending_value"
    " FROM orders WHERE status = 'pending'"
)
# How the query looks in pg_stat_statements once constants are replaced by $n.
PENDING_ORDERS_NORMALISED = "FROM orders WHERE status = $1"
FIX_INDEX = "orders_status_created_at_idx"
HISTORY_ORDERS = 60_000  # delivered orders from the year before the seed's window
BATCH_APP = "erpgo-batch"
API_APP = "erpgo-api"
T = TypeVar("T")
SLOW_REDIS_PATTERN = "erpgo:cache:user:42:*"  # matches nothing, yet reads every key
REDIS_KEYS = 200_000
SCAN_GROWTH_ROUNDS = 4  # up to 1.6 million keys, about 150 MB
SLEEP_SECONDS = "0.25"

GROW_ORDERS_SQL = f"""
INSERT INTO orders (user_id, status, total, currency, created_at, updated_at)
SELECT 1 + g % (SELECT count(*) FROM users), 'delivered', 10 + g % 90, 'USD',
       now() - interval '100 days' - g * interval '9 minutes',
       now() - interval '100 days' - g * interval '9 minutes'
  FROM generate_series(1, {HISTORY_ORDERS}) AS g;
ANALYZE orders;
"""


def grow_orders(env: dict[str, str]) -> None:
    psql(env, GROW_ORDERS_SQL)


def reset_statistics(env: dict[str, str]) -> None:
    """Forget earlier statements and table counters (server-wide and this database)."""
    psql(env, "SELECT pg_stat_statements_reset(); SELECT pg_stat_reset();")


def healthy_traffic(env: dict[str, str], calls: int = 200) -> None:
    """The indexed lookups ERPGo makes on every page: by primary key and by user."""
    with connect(env, API_APP, autocommit=True) as conn:
        for n in range(calls):
            conn.execute("SELECT id, status, total FROM orders WHERE id = %s", (1 + n * 7,))
            conn.execute("SELECT count(*) FROM orders WHERE user_id = %s", (1 + n % 150,))
            conn.execute("SELECT id, email FROM users WHERE username = %s", (f"user{n:06d}",))


def pending_orders(env: dict[str, str], calls: int = 100) -> None:
    """The warehouse dashboard's query, ``calls`` times."""
    with connect(env, API_APP, autocommit=True) as conn:
        for _ in range(calls):
            conn.execute(PENDING_ORDERS_SQL)


INSERT_ORDER_SQL = (
    "INSERT INTO orders (user_id, status, total) SELECT min(id), 'pending', 25 FROM users"
)


@contextmanager
def open_write(env: dict[str, str]) -> Iterator[Callable[[], None]]:
    """An API transaction that has inserted an order and not committed; yields its commit."""
    conn = connect(env, API_APP)
    try:
        conn.execute(INSERT_ORDER_SQL)
        yield conn.commit
    finally:
        conn.close()


def insert_order(env: dict[str, str], lock_timeout: str) -> None:
    """Insert one order, giving up (DrillError) if it waits on a lock for ``lock_timeout``."""
    psql(env, f"SET lock_timeout = '{lock_timeout}'; {INSERT_ORDER_SQL};")


def index_build_waiting(env: dict[str, str]) -> bool:
    """Whether a CREATE INDEX CONCURRENTLY is waiting for older transactions to end."""
    out = psql(
        env,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query ILIKE 'CREATE INDEX CONCURRENTLY%'",
    )
    return out.strip() != "0"


def in_thread(function: Callable[..., T], *args: object) -> Future[T]:
    """Run ``function(*args)`` in a thread of its own; the future gives its result."""
    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(function, *args)
    executor.shutdown(wait=False)
    return future


def pending_orders_row(output: str) -> dict[str, str]:
    """The top-queries row of the pending-orders query; DrillError when it is missing."""
    for row in table(output):
        if PENDING_ORDERS_NORMALISED in row["query"]:
            return row
    raise DrillError(f"the pending-orders query is not in the top queries:\n{output}")


@dataclass
class LockHolder:
    """A batch job that updated an order, then went idle without committing."""

    conn: psycopg.Connection
    pid: int

    @classmethod
    def start(cls, env: dict[str, str], order_id: int) -> LockHolder:
        conn = connect(env, BATCH_APP)
        conn.execute("UPDATE orders SET status = 'paid' WHERE id = %s", (order_id,))
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        return cls(conn, pid)

    def alive(self) -> bool:
        try:
            self.conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def close(self) -> None:
        self.conn.close()


@dataclass
class Waiter:
    """An API request updating an order in a thread: it blocks while the order is locked."""

    conn: psycopg.Connection
    pid: int
    order_id: int
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, env: dict[str, str], order_id: int) -> Waiter:
        conn = connect(env, API_APP, autocommit=True)
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        waiter = cls(conn, pid, order_id)
        threading.Thread(target=waiter._update, daemon=True).start()
        return waiter

    def _update(self) -> None:
        try:
            self.conn.execute(
                "UPDATE orders SET updated_at = now() WHERE id = %s", (self.order_id,)
            )
        except BaseException as exc:  # reported by finished()
            self.error = exc
        finally:
            self.done.set()

    def finished(self, timeout: float) -> bool:
        """True once the update went through; raises what it raised."""
        if not self.done.wait(timeout):
            return False
        if self.error is not None:
            raise DrillError(f"the waiting session's update failed: {self.error}")
        return True

    def close(self) -> None:
        self.conn.cancel_safe()
        self.done.wait(10)
        self.conn.close()


def waiting_on_lock(env: dict[str, str], pid: int) -> bool:
    out = psql(env, f"SELECT wait_event_type FROM pg_stat_activity WHERE pid = {pid}")
    return out.strip() == "Lock"


def idle_for(env: dict[str, str], pid: int) -> float:
    """Seconds the session ``pid`` has been in its current state."""
    out = psql(
        env,
        f"SELECT extract(epoch FROM now() - state_change) FROM pg_stat_activity WHERE pid = {pid}",
    )
    return float(out.strip() or 0)


# -- Redis -----------------------------------------------------------------------------


def fill_product_cache(server: Server, start: int = 1, count: int = REDIS_KEYS) -> None:
    """``count`` more cached products, then statistics, slow log and latency history cleared."""
    script = (
        "for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do "
        "redis.call('SET', 'erpgo:cache:product:' .. i, 'p' .. i) end return 1"
    )
    with redis_client(server) as client:
        client.eval(script, 0, str(start), str(start + count - 1))
        client.slowlog_reset()
        client.execute_command("LATENCY", "RESET")
        client.config_resetstat()


def redis_healthy_traffic(server: Server, calls: int = 300) -> None:
    """Cache reads and writes by key, as the API does them."""
    with redis_client(server, client_name=API_APP) as client:
        pipe = client.pipeline(transaction=False)
        for n in range(1, calls + 1):
            pipe.get(f"erpgo:cache:product:{n}")
            pipe.set(f"erpgo:session:{n}", "x")
        pipe.execute()


def redis_debug_settings(server_major: tuple[int, ...]) -> dict[str, str]:
    """Settings that allow KEYS and DEBUG SLEEP from local clients: production's redis.conf
    renames both away, and 7.0 turned DEBUG off by default (production.DRILL_SETTINGS)."""
    keep = {"rename-command": "keep"}
    return {**keep, "enable-debug-command": "local"} if server_major >= (7, 0) else keep


def redis_key_scan(server: Server, calls: int = 3) -> None:
    """The incident: code that lists cache keys with KEYS, blocking Redis while it runs.

    Whether a KEYS call passes the slow log's 10 ms depends on the machine and the
    server (Valkey 8.1 walks 200,000 keys in about that time on a fast core), so the
    cache grows until the call is slow here too, as it did in the incident: polled on
    the server's own slow log, up to SCAN_GROWTH_ROUNDS doublings.
    """
    keys = REDIS_KEYS
    for round_ in range(1, SCAN_GROWTH_ROUNDS + 1):
        with redis_client(server, client_name=BATCH_APP) as client:
            for _ in range(calls):
                client.keys(SLOW_REDIS_PATTERN)
            logged = [str(entry["command"]) for entry in client.slowlog_get(128)]
        if any(command.upper().startswith(("KEYS", "B'KEYS")) for command in logged):
            return
        if round_ < SCAN_GROWTH_ROUNDS:
            fill_product_cache(server, start=keys + 1, count=keys)
            keys *= 2
    raise DrillError(
        f"KEYS over {keys:,} keys never passed the slow log's threshold: is"
        " slowlog-log-slower-than still 10000 (conf/redis/redis.conf)?"
    )


def redis_stall(server: Server) -> None:
    """A command that blocks Redis for SLEEP_SECONDS, whatever the machine's speed.

    How long KEYS takes depends on the machine; ``DEBUG SLEEP`` from the same client
    stands for the worst of such calls, so that the latency monitor (threshold 100 ms)
    records a spike on any machine.
    """
    with redis_client(server, client_name=BATCH_APP) as client:
        client.execute_command("DEBUG", "SLEEP", SLEEP_SECONDS)
