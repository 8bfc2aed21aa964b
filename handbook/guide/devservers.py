"""Development servers for a new hire: the harness's PostgreSQL and Redis, kept running.

    python -m handbook.guide.devservers start  # PostgreSQL + Redis; database erpgo migrated, seeded
    eval "$(python -m handbook.guide.devservers env)"  # PGHOST, ..., REDIS_URL here
    python -m handbook.guide.devservers status
    python -m handbook.guide.devservers stop

``start`` launches a small background process that starts the servers the way the test
harness does (``handbook.servers.ServerPool``: Docker where an engine answers, else the
local binaries; as root, PostgreSQL runs as an unprivileged account), builds the
reference ``erpgo`` database, writes the client environment to ``env.sh`` and waits.
``stop`` (or SIGTERM) makes it stop both servers and remove their files. State lives in
``$XDG_STATE_HOME/erpgo-handbook/devservers`` (default ``~/.local/state/...``).
``HANDBOOK_DEVSERVERS_TTL=<seconds>`` stops the servers by themselves after that long.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from handbook.servers import scratch
from handbook.servers.base import Server

START_TIMEOUT = 180  # seconds: a first start may copy a PostgreSQL install and seed it
STOP_TIMEOUT = 60
TTL_VAR = "HANDBOOK_DEVSERVERS_TTL"
START = "python -m handbook.guide.devservers start"


class DevServersError(RuntimeError):
    """Something a new hire can fix; the message says what to do."""


def state_dir(environ: dict[str, str] | os._Environ | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME", "~")) / ".local/state")
    return Path(base).expanduser() / "erpgo-handbook" / "devservers"


def _files(state: Path) -> tuple[Path, Path, Path]:
    return state / "daemon.pid", state / "env.sh", state / "daemon.log"


def running_pid(state: Path) -> int | None:
    """The daemon's pid when it runs; raise DevServersError when it died without stopping."""
    pid_file, _, log = _files(state)
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().strip() or 0)
    if pid and scratch.process_alive(pid):
        return pid
    raise DevServersError(
        f"the dev servers stopped unexpectedly (process {pid} is gone; its log: {log}): "
        f"run `{START}` again"
    )


def env_text(state: Path) -> str:
    """The ``export`` lines of the running servers."""
    _, env_file, _ = _files(state)
    pid = running_pid(state)
    if pid is None or not env_file.exists():
        raise DevServersError(f"no dev servers are running (nothing in {state}): run `{START}`")
    return env_file.read_text()


# -- the background process -----------------------------------------------------------


def _newest(pool, kind: str) -> str:
    candidates = [c for c in pool.candidates(kind) if not c.read_only]
    return max(candidates, key=lambda c: c.major).label


def _exports(pg: Server, redis: Server, pgpass: Path) -> str:
    values = {
        "PGHOST": pg.admin_env["PGHOST"],
        "PGPORT": pg.admin_env["PGPORT"],
        "PGUSER": pg.admin_env["PGUSER"],
        "PGDATABASE": "erpgo",
        "PGPASSFILE": str(pgpass),
        "REDIS_URL": redis.admin_env["REDIS_URL"],
        "REDISCLI_AUTH": redis.admin_env["REDISCLI_AUTH"],
    }
    # The clients beside the servers first (psql of the server's version); never a system
    # dir, which would shadow the virtualenv's python.
    system = {"/usr/bin", "/bin", "/usr/local/bin"}
    bindirs = list(dict.fromkeys(str(s.bindir) for s in (pg, redis) if s.bindir))
    bindirs = [d for d in bindirs if d not in system]
    lines = [
        f"# {pg.describe()} and {redis.describe()}: written by handbook.guide.devservers",
        *(f"export {key}={shlex.quote(value)}" for key, value in values.items()),
    ]
    if bindirs:
        lines.append(f'export PATH={shlex.quote(os.pathsep.join(bindirs))}:"$PATH"')
    return "\n".join(lines) + "\n"


def serve(state: Path, pg_label: str | None, redis_label: str | None, ttl: float) -> int:
    """Start both servers, write env.sh, wait for SIGTERM/SIGINT (or the TTL), stop them."""
    from handbook.schema.databases import Databases
    from handbook.servers.pool import ServerPool

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    _, env_file, _ = _files(state)
    pool = ServerPool()
    try:
        pg = pool.get(pg_label or _newest(pool, "pg"))
        redis = pool.get(redis_label or _newest(pool, "redis"))
        Databases().ensure(pg)
        pgpass = state / "pgpass"
        pgpass.touch(mode=0o600)
        pgpass.write_text(
            f"{pg.admin_env['PGHOST']}:{pg.admin_env['PGPORT']}:*:"
            f"{pg.admin_env['PGUSER']}:{pg.admin_env['PGPASSWORD']}\n"
        )
        partial = env_file.with_suffix(".tmp")
        partial.touch(mode=0o600)
        partial.write_text(_exports(pg, redis, pgpass))
        partial.replace(env_file)
        print(f"ready: {pg.describe()}, {redis.describe()}", flush=True)
        deadline = time.monotonic() + ttl if ttl > 0 else None
        while not stop.wait(1.0):
            if deadline is not None and time.monotonic() > deadline:
                print(f"{TTL_VAR}={ttl:g} s reached: stopping", flush=True)
                break
    finally:
        env_file.unlink(missing_ok=True)
        pool.stop_all()
        (state / "pgpass").unlink(missing_ok=True)
        print("stopped", flush=True)
    return 0


# -- the commands ------------------------------------------------------------------------


def start(state: Path, pg_label: str | None, redis_label: str | None) -> str:
    """Start the daemon (or find it running); return the summary to print."""
    pid_file, env_file, log = _files(state)
    try:
        pid = running_pid(state)
    except DevServersError:
        pid = None  # a dead daemon: start afresh
    if pid is not None:
        return f"dev servers already running (process {pid})\n{_summary(env_file)}"
    state.mkdir(parents=True, exist_ok=True)
    env_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "handbook.guide.devservers", "serve"]
    command += ["--pg", pg_label] if pg_label else []
    command += ["--redis", redis_label] if redis_label else []
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a closed terminal does not take the servers with it
        )
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while not env_file.exists():
        if process.poll() is not None:
            pid_file.unlink(missing_ok=True)
            raise DevServersError(
                f"the dev servers did not start (exit {process.returncode}); the last lines of "
                f"{log}:\n{_tail(log)}"
            )
        if time.monotonic() > deadline:
            scratch.terminate(process.pid, signal.SIGTERM, grace=STOP_TIMEOUT)
            pid_file.unlink(missing_ok=True)
            raise DevServersError(
                f"the dev servers were not ready after {START_TIMEOUT} s; see {log}:\n{_tail(log)}"
            )
        time.sleep(0.1)
    return f"dev servers started (process {process.pid})\n{_summary(env_file)}"


def _summary(env_file: Path) -> str:
    first = env_file.read_text().splitlines()[0].lstrip("# ")
    return (
        f"{first}\nenvironment: {env_file}\n"
        'load it in each new terminal: eval "$(python -m handbook.guide.devservers env)"'
    )


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


def stop(state: Path) -> str:
    pid_file, env_file, _ = _files(state)
    try:
        pid = running_pid(state)
    except DevServersError:
        pid = None
    if pid is None:
        pid_file.unlink(missing_ok=True)
        env_file.unlink(missing_ok=True)
        return "no dev servers running"
    scratch.terminate(pid, signal.SIGTERM, grace=STOP_TIMEOUT)
    pid_file.unlink(missing_ok=True)
    env_file.unlink(missing_ok=True)
    return f"dev servers stopped (process {pid})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handbook.guide.devservers")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "serve"):
        sub = commands.add_parser(name)
        sub.add_argument("--pg", help="server label, e.g. pg15 (default: the newest)")
        sub.add_argument("--redis", help="server label, e.g. redis7.0 (default: the newest)")
    for name in ("env", "status", "stop"):
        commands.add_parser(name)
    args = parser.parse_args(argv)
    state = state_dir()
    try:
        if args.command == "serve":
            return serve(state, args.pg, args.redis, float(os.environ.get(TTL_VAR) or 0))
        if args.command == "start":
            print(start(state, args.pg, args.redis))
        elif args.command == "env":
            print(env_text(state), end="")
        elif args.command == "status":
            pid = running_pid(state)
            if pid is None:
                raise DevServersError(f"no dev servers are running: run `{START}`")
            print(f"dev servers running (process {pid})\n{_summary(_files(state)[1])}")
        else:
            print(stop(state))
    except DevServersError as exc:
        print(f"handbook.guide.devservers: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
