"""The databases and servers a snippet runs in, by its mode.

Read-only snippets share one seeded ``erpgo`` database per server and run as the
monitoring role. Snippets that write get a fresh database cloned from the
``erpgo_template`` database (the reference schema, migrated and seeded), dropped
afterwards. Redis snippets that write get a server of their own.
"""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from handbook.schema import migrations, seed
from handbook.servers.base import Server
from handbook.servers.pool import ServerPool

TEMPLATE = "erpgo_template"
SHARED = "erpgo"


def psql(server: Server, sql: str, database: str = "postgres") -> str:
    env = server.env("admin") | {"PGDATABASE": database}
    result = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{server.label}: {sql!r} failed: {result.stderr.strip()}")
    return result.stdout


class Databases:
    def __init__(self) -> None:
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, server: Server) -> None:
        """Build the template and the shared database on this server, once."""
        with self._lock:
            if server.label in self._ready or server.read_only:
                return
            psql(server, f"CREATE DATABASE {TEMPLATE}")
            env = server.env("admin") | {"PGDATABASE": TEMPLATE}
            migrations.apply(env, migrations.discover())
            seed.seed(env)
            psql(server, f"GRANT pg_read_all_data TO {server.monitor_env['PGUSER']}")
            psql(server, f"CREATE DATABASE {SHARED} TEMPLATE {TEMPLATE}")
            self._ready.add(server.label)

    @contextmanager
    def for_snippet(self, server: Server, read_only: bool) -> Iterator[dict[str, str]]:
        """The PG* environment of the database a SQL snippet runs in."""
        if server.read_only:
            yield server.env("monitor")
            return
        self.ensure(server)
        if read_only:
            yield server.env("monitor") | {"PGDATABASE": SHARED}
            return
        name = f"snippet_{uuid.uuid4().hex[:12]}"
        psql(server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        try:
            yield server.env("admin") | {"PGDATABASE": name}
        finally:
            psql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    @contextmanager
    def for_redis(
        self, server: Server, read_only: bool, pool: ServerPool
    ) -> Iterator[tuple[Server, dict[str, str]]]:
        """The server a redis-cli snippet runs on (its own when it writes) and its environment."""
        if read_only:
            yield server, server.env("monitor")
            return
        private = pool.start_private(server.label)
        try:
            yield private, private.env("admin")
        finally:
            private.stop()

    @contextmanager
    def for_shell(
        self, servers: list[Server], read_only: bool, pool: ServerPool
    ) -> Iterator[dict[str, str]]:
        """One environment with the PG* and REDIS_URL/REDISCLI_* of each server it needs."""
        with ExitStack() as stack:
            env: dict[str, str] = {}
            bindirs = []
            for server in servers:
                if server.kind == "pg":
                    env |= stack.enter_context(self.for_snippet(server, read_only))
                else:
                    _, part = stack.enter_context(self.for_redis(server, read_only, pool))
                    env |= part
                if server.bindir:  # a private server runs from the same install
                    bindirs.append(str(server.bindir))
            env["PATH"] = os.pathsep.join([*bindirs, os.environ.get("PATH", os.defpath)])
            yield env
