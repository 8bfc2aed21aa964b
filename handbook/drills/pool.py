"""The connection-pool drills' sessions, and a reader for what the runbook's psql prints.

A drill plays ERPGo's connection pool with real client sessions (psycopg) on a
dedicated server: healthy ones (idle in the pool, or running a statement) and leaked
ones, which opened a transaction, locked a row and were never committed or rolled back,
so they sit *idle in transaction* holding a connection. ``psql_tables`` turns psql's
aligned output (what a reader sees) back into rows, so that a drill asserts on the same
text the runbook tells the reader to look at.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

from handbook.drills.psql import tables as psql_tables  # noqa: F401 (the drills use it)
from handbook.paths import ROOT
from handbook.runners import Outcome
from handbook.schema.databases import psql
from handbook.servers.base import Server
from handbook.snippet import Snippet, parse

API = "erpgo-api"  # the application_name ERPGo's API sets on its connections
WORKER = "erpgo-worker"  # another ERPGo component: a leak there is not the API's
APP_ROLE = "erpgo_app"  # the role ERPGo logs in as (not a superuser)
APP_PASSWORD = secrets.token_hex(12)  # a throwaway server's role: a new one per run
DATABASE = "erpgo"  # the seeded database handbook.schema.databases builds on every server


def snippet(name: str) -> Snippet:
    """A runbook snippet by its path under ``snippets/``, parsed like the harness does."""
    return parse(ROOT / "snippets" / name)


def require(outcome: Outcome, what: str) -> str:
    """The output of a run that must succeed; else fail with the runner's located message."""
    if not outcome.ok:
        raise AssertionError(f"{what} failed: {outcome.message}\n--- output ---\n{outcome.output}")
    return outcome.output


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll until ``condition()`` holds; fail saying ``what`` did not happen.

    The timeout only bounds a broken run: nothing asserts how long it took.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.1)


def create_app_role(server: Server, database: str | None = DATABASE) -> None:
    """ERPGo's login role, no superuser; reads and locks rows of ``database`` if given."""
    psql(server, f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'")
    if database:
        psql(
            server,
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}",
            database,
        )


def pids(server: Server, where: str, database: str = "postgres") -> set[int]:
    """Client backends matching a ``pg_stat_activity`` condition, seen by the superuser."""
    out = psql(
        server,
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
        f"AND pid <> pg_backend_pid() AND ({where})",
        database,
    )
    return {int(line) for line in out.split()}


@dataclass
class Sessions:
    """Client sessions a drill opened on one server; ``close()`` ends every one."""

    server: Server
    database: str = DATABASE
    opened: list[psycopg.Connection] = field(default_factory=list)

    def connect(
        self,
        application: str,
        *,
        user: str = APP_ROLE,
        password: str = APP_PASSWORD,
        database: str | None = None,
        autocommit: bool = True,
    ) -> psycopg.Connection:
        conn = psycopg.connect(
            host=self.server.admin_env["PGHOST"],
            port=self.server.admin_env["PGPORT"],
            dbname=database or self.database,
            user=user,
            password=password,
            application_name=application,
            autocommit=autocommit,
            connect_timeout=10,
        )
        self.opened.append(conn)
        return conn

    def idle(self, application: str = API) -> int:
        """A pooled connection that ran a query and went back to the pool: state ``idle``."""
        conn = self.connect(application)
        conn.execute("SELECT count(*) FROM products").fetchone()
        return conn.info.backend_pid

    def busy(self, application: str = API, seconds: int = 120) -> int:
        """A connection running a long statement: state ``active`` (cancelled by close())."""
        conn = self.connect(application)
        conn.pgconn.send_query(f"SELECT pg_sleep({seconds})".encode())
        return conn.info.backend_pid

    def leak(self, order_id: int, application: str = API, **kwargs) -> psycopg.Connection:
        """The bug: lock an order inside a transaction, then never commit or roll back."""
        conn = self.connect(application, autocommit=False, **kwargs)
        conn.execute("SELECT id, status FROM orders WHERE id = %s FOR UPDATE", (order_id,))
        return conn

    def close(self) -> None:
        for conn in self.opened:
            try:
                if conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
                    conn.cancel_safe(timeout=5)
                conn.close()
            except psycopg.Error:
                pass  # the runbook (or the server) already ended this session
        self.opened.clear()


@contextmanager
def sessions(server: Server, database: str = DATABASE) -> Iterator[Sessions]:
    opened = Sessions(server, database)
    try:
        yield opened
    finally:
        opened.close()


def alive(conn: psycopg.Connection) -> bool:
    """Whether the session still answers (a terminated one raises on its next statement)."""
    try:
        conn.execute("SELECT 1").fetchone()
    except psycopg.Error:
        return not (conn.broken or conn.closed)
    return True
