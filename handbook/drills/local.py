"""A drill's hands on local PostgreSQL processes: the server account, crashes, new servers.

Drills that stop, copy or start PostgreSQL need a local server (``local_pg``): its data
directory, and the OS account that owns it (PostgreSQL refuses root). ``run_owned``
runs a page's shell snippet as that account, through the shell runner like every other
snippet; ``Instance`` is a server such a snippet starts from a copy of another's data
(a standby, a restore), reaped like the pool's own and stopped by ``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from handbook.drills.common import DrillError, require, run, snippet
from handbook.runners import Outcome
from handbook.servers import cleanup, scratch
from handbook.servers.base import Server, ServerUnavailable
from handbook.servers.ports import free_port
from handbook.servers.postgres import LocalPostgres

OWNED_TIMEOUT = 300  # seconds: a backup or a restore of a drill's small database


def local_pg(server: Server) -> LocalPostgres:
    """The local server behind ``server``; ServerUnavailable for Docker and external ones."""
    if not isinstance(server.handle, LocalPostgres):
        raise ServerUnavailable(
            f"{server.label} is not a local PostgreSQL: this drill runs pg_ctl and "
            "pg_basebackup on its data directory; use local binaries (HANDBOOK_PG=local)"
        )
    return server.handle


def crash(server: Server) -> None:
    """The server dies: ``pg_ctl stop -m immediate`` (no shutdown checkpoint, no goodbyes),
    as a crash or an OOM kill stops it."""
    owner = local_pg(server)
    result = owner.owner_run(
        ["pg_ctl", "stop", "-D", owner.datadir, "-m", "immediate", "-w", "-s"], timeout=30
    )
    if result.returncode != 0:
        raise DrillError(f"could not crash {server.describe()}: {result.stderr.strip()}")


def run_owned(owner: LocalPostgres, name: str, server: Server, **extra: str) -> Outcome:
    """Run the shell snippet ``name`` as the account that owns ``owner``'s data directory,
    with the server programs on PATH, PG* pointing at ``server`` and ``extra`` set."""
    user = snippet(name).user  # as its page says (a replication role for pg_basebackup)
    login = server.accounts.get(user, server.admin_env) if user else server.admin_env
    env = owner.owner_env() | server.admin_env | login | extra
    return run(name, server, env, account=owner.account, timeout=OWNED_TIMEOUT)


class Instance:
    """A server started by a snippet from a copy of a drill server's data (a standby, a
    restore): its own temp dir, reaped like the pool's, stopped by ``stop()``."""

    def __init__(self, owner: LocalPostgres, source: Server, what: str) -> None:
        assert owner.account is not None
        self.owner = owner
        self.root = scratch.make("pg")
        owner.account.own(self.root)
        self.datadir = self.root / "data"
        self.port = free_port()
        self.what = what
        self._token = cleanup.register(f"{what} in {self.root}", self.stop)
        self.server = Server(
            kind="pg",
            product=source.product,
            version=source.version,
            provider=source.provider,
            origin=source.origin,
            bindir=source.bindir,
            admin_env=source.admin_env | {"PGPORT": str(self.port)},
            monitor_env=source.monitor_env | {"PGPORT": str(self.port)},
            label=f"{source.label} {what}",
            port=self.port,
            scratch=self.root,
        )

    def log(self) -> str:
        """The last lines of the server's log, indented, for a failure message."""
        for path in (self.root / "data.log", self.datadir / "log"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    lines = path.read_text(errors="replace").strip().splitlines()[-15:]
                    return "\n".join("    " + line for line in lines)
        return "    (no log)"

    def start(self, name: str, source: Server, **extra: str) -> str:
        """Run the snippet ``name`` that starts this server (as the data's owner, PG* of
        ``source``); its output, or DrillError with the server's log."""
        try:
            out = require(run_owned(self.owner, name, source, **extra), f"{self.what} ({name})")
        except DrillError as exc:
            raise DrillError(f"{exc}\n--- {self.what} log ---\n{self.log()}") from None
        self._record_pid()
        return out

    def _pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        return None

    def _record_pid(self) -> None:
        pid = self._pid()
        if pid is not None:
            scratch.record(self.root, server_pid=pid)

    def stop(self, mode: str = "immediate") -> None:
        """Throwaway data: ``immediate`` by default (no shutdown checkpoint), then SIGKILL."""
        if self.root is None:
            return
        try:
            pid = self._pid()
            if pid is not None:
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    self.owner.owner_run(
                        ["pg_ctl", "stop", "-D", self.datadir, "-m", mode, "-w", "-t", "20", "-s"],
                        timeout=30,
                    )
                if not scratch.wait_gone(pid, 2):
                    scratch.terminate(pid, signal.SIGKILL, 5)
        finally:
            scratch.remove(self.root)
            cleanup.unregister(self._token)
            self.root = None  # type: ignore[assignment]


def host_env(server: Server, env: dict[str, str]) -> dict[str, str]:
    """``env`` as on the database host: PGDATA set, the server's own programs first on PATH.

    The harness may run a server from a copy of its install that the server's account
    can read (the original can sit where only root may enter, such as tox's directory);
    commands that start the server must use the programs it runs from.
    """
    owner = local_pg(server)
    assert owner.runtime is not None
    path = f"{owner.runtime.bindir}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env | owner.runtime.env | {"PGDATA": str(owner.datadir), "PATH": path}
