"""The connection-pool drills' sessions: ERPGo's pool, played with real client sessions.

A drill plays ERPGo's connection pool with real client sessions (psycopg) on a
dedicated server: healthy ones (idle in the pool, or running a statement) and leaked
ones, which opened a transaction, locked a row and were never committed or rolled back,
so they sit *idle in transaction* holding a connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

from handbook.drills.common import admin_sql, connect
from handbook.servers.base import Server

API = "erpgo-api"  # the application_name ERPGo's API sets on its connections
WORKER = "erpgo-worker"  # another ERPGo component: a leak there is not the API's
# The login role ERPGo's pods use (conf/postgresql/roles.sql: a member of erpgo_app, which
# holds the grants; blue and green take turns across a password rotation).
APP_ROLE = "erpgo_app_blue"
DATABASE = "erpgo"  # the seeded database handbook.schema.databases builds on every server


def pids(server: Server, where: str, database: str = "postgres") -> set[int]:
    """Client backends matching a ``pg_stat_activity`` condition, seen by the superuser."""
    out = admin_sql(
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
        password: str | None = None,
        database: str | None = None,
        autocommit: bool = True,
    ) -> psycopg.Connection:
        # The role's own variables (conf/postgresql/roles.sql's, with this server's password)
        # unless a password is given.
        login = {"PGUSER": user, "PGPASSWORD": password} if password else self.server.account(user)
        env = self.server.admin_env | login | {"PGDATABASE": database or self.database}
        conn = connect(env, application, autocommit=autocommit)
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
