"""The high-error-rate drill's workloads: healthy traffic, deadlocks, serialization failures.

Each workload is a pair of sessions in threads reserving stock in ``inventory``, running
until stopped:

* ``healthy``: reservations one row at a time, each committed; nothing fails;
* ``deadlocks``: two sessions lock the same two inventory rows in opposite orders (a
  barrier makes every round collide), so PostgreSQL ends one of each pair (40P01);
* ``serialization_failures``: two REPEATABLE READ transactions read the same row, then
  both update it; the second to update fails with 40001 once the first commits.

``Workload.failures`` counts the SQLSTATEs the sessions saw, so a drill can tell that
the incident really happened before it asks the runbook's diagnostics to show it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors

from handbook.drills.common import DrillError, connect, psql, table
from handbook.schema import migrations
from handbook.servers.base import Server

ROW_A = (1, 1)  # (product_id, warehouse_id)
ROW_B = (2, 1)
RESERVE = (
    "UPDATE inventory SET reserved = (reserved + 1) %% 100, updated_at = now()"
    " WHERE product_id = %s AND warehouse_id = %s"
)
# The reference schema (migrations only, no seed: two stock rows are all the drill needs).
STOCK_SQL = """
INSERT INTO products (id, sku, name, price)
VALUES (1, 'SKU-1', 'Pallet', 10), (2, 'SKU-2', 'Crate', 5);
INSERT INTO warehouses (id, code, name) VALUES (1, 'W1', 'Main');
INSERT INTO inventory (product_id, warehouse_id, quantity, reserved)
VALUES (1, 1, 1000, 0), (2, 1, 1000, 0);
"""
APPLICATION = "erpgo-api"


class Workload:
    """Two sessions running ``round`` in a loop until ``stop()``; failures by SQLSTATE."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.name = name
        self.failures: Counter[str] = Counter()
        self.commits = 0
        self.stopping = threading.Event()
        self.barrier = threading.Barrier(2, timeout=10)
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self.conns = [connect(env, f"{APPLICATION}-{name}", autocommit=True) for _ in range(2)]
        rounds: dict[str, Callable[[psycopg.Connection, int], None]] = {
            "healthy": self._healthy,
            "deadlocks": self._deadlock,
            "serialization": self._serialization,
        }
        self.round = rounds[name]
        self.threads = [
            threading.Thread(target=self._loop, args=(conn, side), daemon=True)
            for side, conn in enumerate(self.conns)
        ]

    def start(self) -> Workload:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.barrier.abort()
        for thread in self.threads:
            thread.join(15)
        for conn in self.conns:
            conn.close()
        if self.errors:
            raise DrillError(f"the {self.name} workload broke: {self.errors[0]!r}")

    def _loop(self, conn: psycopg.Connection, side: int) -> None:
        while not self.stopping.is_set():
            try:
                self.round(conn, side)
                with self._lock:
                    self.commits += 1
            except threading.BrokenBarrierError:
                return
            except (errors.DeadlockDetected, errors.SerializationFailure) as exc:
                with self._lock:
                    self.failures[exc.sqlstate or "?"] += 1
            except BaseException as exc:
                if not self.stopping.is_set():
                    self.errors.append(exc)
                return

    # One round per session and call; ``side`` is 0 or 1.

    def _healthy(self, conn: psycopg.Connection, side: int) -> None:
        with conn.transaction():
            conn.execute(RESERVE, ROW_A if side == 0 else ROW_B)
        time.sleep(0.01)

    def _deadlock(self, conn: psycopg.Connection, side: int) -> None:
        first, second = (ROW_A, ROW_B) if side == 0 else (ROW_B, ROW_A)
        try:
            with conn.transaction():
                conn.execute(RESERVE, first)
                self.barrier.wait()
                conn.execute(RESERVE, second)
        finally:
            self._realign()

    def _serialization(self, conn: psycopg.Connection, side: int) -> None:
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                conn.execute(
                    "SELECT reserved FROM inventory WHERE product_id = %s AND warehouse_id = %s",
                    ROW_A,
                )
                self.barrier.wait()
                conn.execute(RESERVE, ROW_A)
        finally:
            self._realign()

    def _realign(self) -> None:
        """Both sessions finish the round before either starts the next.

        A broken barrier (the workload is stopping) is not raised from here: it would
        replace the deadlock or serialization error the round is ending with, which
        must still be counted.
        """
        if not self.stopping.is_set():
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait()


@contextmanager
def running(env: dict[str, str], name: str) -> Iterator[Workload]:
    """Run the workload ``name`` for the duration of the block; stop it even on failure."""
    workload = Workload(env, name).start()
    try:
        yield workload
    finally:
        workload.stop()


def create_database(server: Server, name: str) -> dict[str, str]:
    """A database ``name`` with the reference schema and two stock rows; its admin env."""
    env = server.env("admin") | {"PGDATABASE": name}
    psql(server.env("admin"), f"CREATE DATABASE {name};")
    migrations.apply(env, migrations.discover())
    psql(env, STOCK_SQL)
    return env


def database_row(output: str, database: str) -> dict[str, int]:
    """The counters of ``database`` in transaction_failures.sql's output, as integers."""
    for row in table(output):
        if row["database"] == database:
            keys = ("commits", "rollbacks", "deadlocks", "sessions_fatal", "sessions_killed")
            return {key: int(row[key]) for key in keys}
    raise DrillError(f"no row for database {database!r} in:\n{output}")
