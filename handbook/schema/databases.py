"""The databases and servers a snippet runs in, by its mode, and the user it runs as.

Read-only snippets share one seeded ``erpgo`` database per server. Snippets that write
get a fresh database cloned from the ``erpgo_template`` database (the reference schema,
migrated as production migrates it, by ``erpgo_migrate``, and seeded), dropped
afterwards. Redis snippets that write get a server of their own.

A snippet runs as the user its ``user:`` header names (an account of
conf/postgresql/roles.sql or conf/redis/users.acl: ``servers.accounts``); without one,
as production's monitoring user when it only reads and as the administrator when it
writes. A read-only snippet never runs as an account that can write.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from handbook.paths import rel
from handbook.schema import migrations, seed
from handbook.servers import accounts, pgbouncer
from handbook.servers.base import Server, ServerConfigError
from handbook.servers.pool import ServerPool

TEMPLATE = "erpgo_template"
SHARED = "erpgo"
MIGRATION_OWNER = "erpgo_migrate"  # conf/postgresql/roles.sql


def _psql(server: Server, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *args],
        env=server.env("admin") | {"PGDATABASE": database},
        capture_output=True,
        text=True,
        check=False,
    )


def psql(server: Server, sql: str, database: str = "postgres") -> str:
    result = _psql(server, database, "-At", "-c", sql)
    if result.returncode != 0:
        raise RuntimeError(f"{server.label}: {sql!r} failed: {result.stderr.strip()}")
    return result.stdout


def grants(server: Server, database: str) -> None:
    """Run conf/postgresql/roles.sql in ``database``, as production's DBA does."""
    result = _psql(server, database, "-f", str(accounts.ROLES_SQL))
    if result.returncode != 0:
        raise RuntimeError(f"{server.label}: {rel(accounts.ROLES_SQL)} failed: {result.stderr}")


class Databases:
    def __init__(self) -> None:
        self._ready: set[tuple[str, int | None]] = set()  # (label, port): private too
        self._failed: dict[tuple[str, int | None], Exception] = {}
        self._lock = threading.RLock()
        self._building: dict[tuple[str, int | None], threading.Lock] = {}
        self._poolers: dict[tuple, pgbouncer.LocalPgBouncer] = {}

    def ensure(self, server: Server) -> None:
        """Build the template and the shared database on this server, once (servers in
        different threads at the same time; a failure is raised again, not retried)."""
        key = (server.label, server.port)
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            if key in self._ready or server.read_only:
                return
            if key in self._failed:
                raise RuntimeError(f"{self._failed[key]} (first attempt; not retried)")
            try:
                psql(server, f"CREATE DATABASE {TEMPLATE}")
                # As production: roles.sql in the ERPGo database, then the deployment's
                # migration job, logged in as the migration owner (it owns the tables;
                # roles.sql's default privileges give the application and the read-only
                # role theirs).
                grants(server, TEMPLATE)
                owner = server.env(MIGRATION_OWNER) | {"PGDATABASE": TEMPLATE}
                migrations.apply(owner, migrations.discover())
                seed.seed(server.env("admin") | {"PGDATABASE": TEMPLATE})
                psql(server, f"CREATE DATABASE {SHARED} TEMPLATE {TEMPLATE}")
            except Exception as exc:
                self._failed[key] = exc
                raise
            self._ready.add(key)

    @contextmanager
    def for_snippet(
        self, server: Server, read_only: bool, user: str | None = None, via: str | None = None
    ) -> Iterator[dict[str, str]]:
        """The PG* environment of the database a SQL snippet runs in, as ``user``; with
        ``via="pgbouncer"``, through a pooler booted from conf/pgbouncer in front of it."""
        user = run_as(server, read_only, user)
        if server.read_only:
            yield server.env("monitor")
            return
        self.ensure(server)
        if read_only:
            env = server.env(user) | {"PGDATABASE": SHARED}
            yield env | (self.pooler(server, SHARED).env(user) if via else {})
            return
        name = f"snippet_{uuid.uuid4().hex[:12]}"
        psql(server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        pooler = pgbouncer.LocalPgBouncer(server, name).start() if via else None
        try:
            env = server.env(user) | {"PGDATABASE": name}
            yield env | (pooler.env(user) if pooler else {})
        finally:
            if pooler:
                pooler.stop()
            psql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pooler(self, server: Server, database: str) -> pgbouncer.LocalPgBouncer:
        """The shared pooler in front of ``database`` (started once; stopped at exit)."""
        with self._lock:
            key = (server.label, server.port, database)
            if key not in self._poolers:
                self._poolers[key] = pgbouncer.LocalPgBouncer(server, database).start()
            return self._poolers[key]

    @contextmanager
    def for_redis(
        self, server: Server, read_only: bool, pool: ServerPool, user: str | None = None
    ) -> Iterator[tuple[Server, dict[str, str]]]:
        """The server a redis-cli snippet runs on (its own when it writes) and its environment."""
        user = run_as(server, read_only, user)
        if read_only or server.read_only:
            yield server, server.env("monitor" if server.read_only else user)
            return
        private = pool.start_private(server.label)
        try:
            yield private, private.env(user)
        finally:
            private.stop()

    @contextmanager
    def for_shell(
        self,
        servers: list[Server],
        read_only: bool,
        pool: ServerPool,
        user: str | None = None,
        via: str | None = None,
    ) -> Iterator[dict[str, str]]:
        """One environment with the PG* and REDIS_URL/REDISCLI_* of each server it needs.

        ``user``: the snippet's ``user:`` header (one user, or ``pg=..., redis=...``);
        ``via``: its ``via:`` header (``pgbouncer``: PG* lead to a pooler).
        """
        chosen = accounts.users_for([s.kind for s in servers], user) if user else {}
        with ExitStack() as stack:
            env: dict[str, str] = {}
            bindirs = []
            for server in servers:
                if server.kind == "pg":
                    part = self.for_snippet(server, read_only, chosen.get("pg"), via)
                    env |= stack.enter_context(part)
                else:
                    part = self.for_redis(server, read_only, pool, chosen.get("redis"))
                    env |= stack.enter_context(part)[1]
                if server.bindir:  # a private server runs from the same install
                    bindirs.append(str(server.bindir))
            env["PATH"] = os.pathsep.join([*bindirs, os.environ.get("PATH", os.defpath)])
            yield as_readers_set_it(env, stack.enter_context(tempfile.TemporaryDirectory()))


# The variables a page tells the reader to set, in that form (the {access} list at the top
# of each page): PGHOST, PGPORT, PGUSER, PGDATABASE with the password in a pgpass file,
# and REDIS_URL=redis://<user>:<password>@<host>:<port>/0 (redis-cli reads a URL without
# the password as if the user name were the password).
READER_FORM = ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSFILE", "REDIS_URL")


def as_readers_set_it(env: dict[str, str], directory: str) -> dict[str, str]:
    """``env`` as a reader sets it: the PostgreSQL password moved into a pgpass file in
    ``directory`` (PGPASSFILE, what ~/.pgpass is), REDISCLI_AUTH left out (the password
    is in REDIS_URL)."""
    env = dict(env)
    password = env.pop("PGPASSWORD", None)
    if password is not None:
        pgpass = Path(directory) / "pgpass"
        fields = [env.get(k, "*") for k in ("PGHOST", "PGPORT")] + ["*", env["PGUSER"], password]
        escaped = [f.replace("\\", "\\\\").replace(":", "\\:") for f in fields]
        pgpass.write_text(":".join(escaped) + "\n")
        pgpass.chmod(0o600)
        env["PGPASSFILE"] = str(pgpass)
    env.pop("REDISCLI_AUTH", None)
    return env


def run_as(server: Server, read_only: bool, user: str | None) -> str:
    """The account a snippet runs as: ``user``, or by mode (monitor / admin)."""
    if user is None:
        return "monitor" if read_only else "admin"
    if read_only and not server.read_only and not accounts.read_only(server.kind, user):
        raise ServerConfigError(
            f"a read-only snippet runs as a read-only account, and {user} can write "
            f"({accounts.known(server.kind).get(user, 'not in conf/')}): use "
            f"{accounts.MONITOR}, or mark the snippet 'mode: writes'"
        )
    return user
