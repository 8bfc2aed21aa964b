"""What every drill does: run a page's snippet, wait for something, need a tool, fail clearly.

- :func:`snippet` and :func:`run` run a page's own snippet file exactly as the test
  suite does (``handbook.runners.run``, the runner of its kind); :func:`output` is the
  output of a run that must succeed.
- :func:`wait_for` polls a condition, bounded; when it never holds, the message names
  the drill's line that waited, what for, and the last error the condition raised.
- :func:`require_tool` finds a program a drill needs, or says what to install.
- :class:`DrillError` is the one error a drill raises for a step that went wrong.
- :func:`psql` runs set-up SQL that is not a runbook step; :func:`tables` reads a
  snippet's aligned psql output back into rows; :func:`connect` and :func:`redis_client`
  open the client connections a drill's workload uses (psycopg, redis-py).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis

from handbook.paths import ROOT, SNIPPETS, rel
from handbook.runners import Outcome, Target
from handbook.runners import run as run_snippet
from handbook.runners.sql import tables
from handbook.servers.base import Server, ServerUnavailable
from handbook.snippet import Snippet, parse

POLL = 0.05  # seconds between two looks at a condition
# What a condition may raise while what it waits for is not there yet (a server still
# starting, a connection refused); any other exception ends the wait at once.
NOT_YET = (OSError, psycopg.OperationalError, redis.RedisError)


class DrillError(AssertionError):
    """A drill step failed; the message names the snippet line or the step, and what to read."""


class ToolMissing(ServerUnavailable):
    """A program a drill needs is not installed: the test skips saying what to install
    (a failure under ``CI=true``)."""


# -- a page's snippets ----------------------------------------------------------------------


@functools.cache
def snippet(name: str) -> Snippet:
    """The snippet file ``name`` (relative to ``snippets/``), parsed as the test suite does."""
    return parse(SNIPPETS / name)


def run(
    shown: Snippet | str,
    servers: Server | Sequence[Server],
    env: Mapping[str, str],
    **options,
) -> Outcome:
    """Run a page's snippet on ``servers`` with ``env``, by the runner of its kind.

    ``options`` go to :class:`handbook.runners.Target`: ``variables`` (psql ``-v`` or the
    shell's environment), ``account`` (run as a server's own OS account), ``timeout``.
    """
    item = snippet(shown) if isinstance(shown, str) else shown
    return run_snippet(item, Target.on(servers, env, **options))


def require(outcome: Outcome, what: str = "") -> str:
    """The output of a run that had to succeed; DrillError with the runner's located
    message (and the output) when it did not."""
    if not outcome.ok:
        prefix = f"{what} failed: " if what else ""
        raise DrillError(prefix + outcome.report())
    return outcome.output


def output(
    shown: Snippet | str,
    servers: Server | Sequence[Server],
    env: Mapping[str, str],
    **options,
) -> str:
    """:func:`run`, and the output of that run, which must succeed (DrillError otherwise)."""
    return require(run(shown, servers, env, **options))


# -- waiting and tools ----------------------------------------------------------------------


def _caller() -> str:
    """``file:line`` of the code that called the function calling this one."""
    frame = sys._getframe(2)
    path = Path(frame.f_code.co_filename)
    where = rel(path) if path.is_relative_to(ROOT) else str(path)
    return f"{where}:{frame.f_lineno}"


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll until ``condition()`` is true. The timeout only bounds a broken run: nothing
    asserts how long it took. Errors in ``NOT_YET`` count as "not yet" and DrillError
    too (a snippet or query that fails until the server is ready); when the condition
    never holds, DrillError names the caller's line, ``what``, and the last such error."""
    where = _caller()
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if condition():
                return
            last = None
        except (*NOT_YET, DrillError) as exc:
            last = exc
        if time.monotonic() > deadline:
            because = f"; the last try raised {type(last).__name__}: {last}" if last else ""
            raise DrillError(f"{where}: {what} did not happen within {timeout:.0f} s{because}")
        time.sleep(POLL)


def require_tool(name: str, package: str) -> str:
    """The path of program ``name``; ToolMissing saying to install ``package`` if absent."""
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} is not installed: apt-get install {package}")
    return found


# -- SQL and psql's output ------------------------------------------------------------------


def psql(env: Mapping[str, str], sql: str) -> str:
    """Run drill set-up SQL (a psql script, not a runbook step) with ``env``: unaligned
    rows, fields split by ``|``, the last newline dropped; DrillError with the SQL."""
    result = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        input=sql,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        database = env.get("PGDATABASE", "?")
        raise DrillError(
            f"drill set-up SQL failed on database {database}: {result.stderr.strip()}\nSQL:\n{sql}"
        )
    return result.stdout.rstrip("\n")


def admin_sql(server: Server, sql: str, database: str = "postgres") -> str:
    """:func:`psql` as the server's superuser, in ``database``."""
    return psql(server.env("admin") | {"PGDATABASE": database}, sql)


def table(output: str, index: int = 0) -> list[dict[str, str]]:
    """The ``index``-th result table (``-1``: the last); DrillError if there is none."""
    found = tables(output)
    if not -len(found) <= index < len(found):
        raise DrillError(f"expected result table {index} in psql's output, got:\n{output}")
    return found[index]


# -- client connections ---------------------------------------------------------------------


def connect(env: Mapping[str, str], application: str, **options) -> psycopg.Connection:
    """A psycopg connection to the server, database and role of ``env`` (its PG* variables),
    named ``application`` in pg_stat_activity; ``options`` go to ``psycopg.connect``."""
    options.setdefault("connect_timeout", 10)
    return psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env.get("PGPASSWORD"),
        dbname=env.get("PGDATABASE", "postgres"),
        application_name=application,
        **options,
    )


def redis_client(
    server: Server, role: str = "admin", *, socket: bool = True, **options
) -> redis.Redis:
    """A redis-py client of ``server`` as ``role``'s user (its REDIS_URL and REDISCLI_AUTH),
    over the server's Unix socket when it has one and ``socket`` is true, else TCP.
    Replies are text; ``options`` go to ``redis.Redis`` (``client_name``, timeouts)."""
    env = server.env(role)
    url = urlsplit(env["REDIS_URL"])
    options.setdefault("socket_timeout", 30)
    options.setdefault("decode_responses", True)
    credentials = {
        "username": url.username or "default",
        "password": env.get("REDISCLI_AUTH") or url.password,
    }
    if socket and server.socket is not None:
        return redis.Redis(unix_socket_path=str(server.socket), **credentials, **options)
    return redis.Redis(
        host=url.hostname or "127.0.0.1", port=url.port or 6379, **credentials, **options
    )


def shell_env(pg_env: Mapping[str, str], redis_server: Server) -> dict[str, str]:
    """One environment for a shell snippet that needs PostgreSQL and Redis: the PG* of
    ``pg_env``, REDIS_URL and REDISCLI_AUTH of the Redis server's admin user, and both
    servers' client programs on PATH."""
    redis_env = redis_server.env("admin")
    env = dict(pg_env)
    env.update({k: v for k, v in redis_env.items() if k == "REDIS_URL" or k.startswith("REDISCLI")})
    if redis_server.bindir:  # after PostgreSQL's own bin dir, which must keep its psql first
        parts = env.get("PATH", "").split(os.pathsep)
        env["PATH"] = os.pathsep.join([*parts[:1], str(redis_server.bindir), *parts[1:]])
    return env
