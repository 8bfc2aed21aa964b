"""The databases and servers a snippet runs in, by its mode.

Read-only snippets share one seeded ``erpgo`` database per server and run as the
monitoring role. Snippets that write get a fresh database cloned from the
``erpgo_template`` database (the reference schema, migrated and seeded), dropped
afterwards. Redis snippets that write get a server of their own.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from handbook import migrations, seed
from handbook.servers.base import Server

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

    def pg_env(self, server: Server, read_only: bool) -> Iterator[dict[str, str]]:
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

    def redis_env(self, server: Server, read_only: bool, pool) -> Iterator[tuple[Server, dict]]:
        if read_only:
            yield server, server.env("monitor")
            return
        private = pool.start_private(server.label)
        try:
            yield private, private.env("admin")
        finally:
            private.stop()

    for_snippet = contextmanager(pg_env)
    for_redis = contextmanager(redis_env)

    @contextmanager
    def for_shell(self, servers: list[Server], read_only: bool, pool) -> Iterator[dict[str, str]]:
        pg = next((s for s in servers if s.kind == "pg"), None)
        redis = next((s for s in servers if s.kind == "redis"), None)
        env: dict[str, str] = {}
        with self._maybe(pg, read_only) as pg_env, self._maybe_redis(redis, read_only, pool) as r:
            for part in (pg_env, r):
                for key, value in part.items():
                    if key == "PATH" and "PATH" in env:
                        value = f"{env['PATH']}:{value}"
                    env[key] = value
            yield env

    @contextmanager
    def _maybe(self, server: Server | None, read_only: bool):
        if server is None:
            yield {}
            return
        with self.for_snippet(server, read_only) as env:
            yield env

    @contextmanager
    def _maybe_redis(self, server: Server | None, read_only: bool, pool):
        if server is None:
            yield {}
            return
        with self.for_redis(server, read_only, pool) as (_, env):
            yield env
