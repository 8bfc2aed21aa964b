"""Disaster-recovery drills: real backups, restores and failovers on throwaway servers.

Each drill returns a ``Drill`` result: what it checked (rows, counts, roles: the tests
assert on those) and what it measured (seconds, bytes: written to the DR report, never
asserted). The drills run the page's own snippets (``snippets/shell/dr``,
``snippets/sql/dr``): shell ones as the account that owns the data directories
(PostgreSQL refuses root), SQL ones with ``handbook.runners.sql`` like the harness does.

- ``backup_and_pitr``: WAL archiving, a base backup checked against its manifest, the
  backup restored into a scratch server and compared table by table, then two
  point-in-time restores (to a named restore point, to a time): every row committed
  before the target is back, none committed after it.
- ``promotion``: a streaming standby made with ``pg_basebackup -R``; the primary dies;
  the standby is promoted. Asynchronous with the standby cut off on purpose: the
  acknowledged commits it never received are lost and counted. Synchronous
  (``remote_apply``): none is lost.
- ``sentinel_failover``: a Redis master, one replica, three sentinels; the master is
  killed; time until the sentinels name the replica, and until it takes writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from handbook.paths import ROOT
from handbook.runners import Outcome
from handbook.runners import shell as shell_runner
from handbook.runners import sql as sql_runner
from handbook.schema.databases import psql
from handbook.servers import cleanup, resp, scratch
from handbook.servers.base import Server, ServerUnavailable
from handbook.servers.pool import ServerPool
from handbook.servers.ports import HOST, free_port
from handbook.servers.postgres import LocalPostgres
from handbook.servers.redis import LocalRedis
from handbook.snippet import Snippet, parse

TABLE = "drill_orders"
RESTORE_POINT = "erpgo-before-release"  # the name snippets/sql/dr/restore_point.sql creates
STANDBY_NAME = "erpgo_replica"
MASTER_NAME = "erpgo"
# The drill's Sentinel timings: small so that a failover takes seconds, not a minute.
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 3000
WAIT = 60.0  # seconds before a step that should succeed is declared broken


class DrillError(AssertionError):
    """A drill step failed; the message names the snippet line or the step, and the log."""


@dataclass
class Drill:
    """One drill run: the facts it checked and the figures it measured."""

    name: str  # "pitr", "promotion-async", "promotion-sync", "sentinel-failover", ...
    label: str  # "pg15", "redis7.0"
    server: str  # "PostgreSQL 15.20"
    checked: dict[str, object] = field(default_factory=dict)  # asserted by the tests
    measured: dict[str, float] = field(default_factory=dict)  # reported, never asserted


def snippet(name: str) -> Snippet:
    return parse(ROOT / "snippets" / name)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll until ``condition()``; the timeout only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(RuntimeError, OSError, resp.RespError):
            if condition():
                return
        if time.monotonic() > deadline:
            raise DrillError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)


def require(outcome: Outcome, what: str) -> str:
    if not outcome.ok:
        raise DrillError(f"{what} failed: {outcome.message}\n--- output ---\n{outcome.output}")
    return outcome.output


def local_pg(server: Server) -> LocalPostgres:
    if not isinstance(server.handle, LocalPostgres):
        raise ServerUnavailable(
            f"{server.label} is not a local PostgreSQL: the recovery drills run pg_basebackup "
            "and pg_ctl on its data directory; use local binaries (HANDBOOK_PG=local)"
        )
    return server.handle


def one_value(server: Server, sql: str, database: str = "postgres") -> str:
    return psql(server, sql, database).strip()


# ---------------------------------------------------------------------------
# Server programs run as the data directory's owner


def run_owned(owner: LocalPostgres, name: str, server: Server, **extra: str) -> Outcome:
    """Run the shell snippet ``name`` as the server account, PG* pointing at ``server``."""
    shown = snippet(name)
    env = owner.owner_env() | server.admin_env | extra
    # The checkout may sit where only root may enter (a 0700 temp dir, a home): run a
    # copy from the server's own temp dir, which the account owns; lines stay the same.
    assert owner.scratch is not None and owner.account is not None
    script = owner.scratch / f"snippet-{shown.path.name}"
    shutil.copyfile(shown.path, script)
    owner.account.own(script)
    try:
        result = owner.owner_run(
            ["bash", "-E", "-c", shell_runner.WRAPPER, script], env=env, timeout=300
        )
    except subprocess.TimeoutExpired:
        return Outcome(False, "", f"{shown.name}:{shown.body_start}: did not finish in 300 s")
    failed = shell_runner.FAILED_AT.search(result.stderr)
    stderr = shell_runner.FAILED_AT.sub("", result.stderr)
    if result.returncode == 0:
        return Outcome(True, result.stdout + stderr)
    line = failed["line"] if failed else shown.body_start
    tail = stderr.strip().splitlines()
    return Outcome(
        False,
        result.stdout + stderr,
        f"{shown.name}:{line}: exited {result.returncode}: "
        f"{tail[-1] if tail else 'no message'} ({server.describe()})",
    )


class Instance:
    """A server started by a snippet from a copy of a drill server's data (a standby, a
    restore): its own temp dir, reaped like the pool's, stopped by ``stop()``."""

    def __init__(self, owner: LocalPostgres, source: Server, what: str) -> None:
        self.owner = owner
        self.root = scratch.make("pg")
        assert owner.account is not None
        owner.account.own(self.root)
        self.datadir = self.root / "data"
        self.port = free_port()
        self.what = what
        self._token = cleanup.register(f"{what} in {self.root}", self.stop)
        admin = source.admin_env | {"PGPORT": str(self.port)}
        monitor = source.monitor_env | {"PGPORT": str(self.port)}
        self.server = Server(
            kind="pg",
            product=source.product,
            version=source.version,
            provider=source.provider,
            origin=source.origin,
            bindir=source.bindir,
            admin_env=admin,
            monitor_env=monitor,
            label=f"{source.label} {what}",
            port=self.port,
            scratch=self.root,
        )

    def log(self) -> str:
        for path in (self.root / "data.log", self.datadir / "log"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    lines = path.read_text(errors="replace").strip().splitlines()[-15:]
                    return "\n".join("    " + line for line in lines)
        return "    (no log)"

    def check(self, outcome: Outcome, what: str) -> str:
        if not outcome.ok:
            raise DrillError(
                f"{what} failed: {outcome.message}\n--- output ---\n{outcome.output}"
                f"\n--- {self.what} log ---\n{self.log()}"
            )
        return outcome.output

    def record_pid(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
            scratch.record(self.root, server_pid=pid)

    def stop(self, mode: str = "immediate") -> None:
        """Throwaway data: ``immediate`` by default (no shutdown checkpoint), then SIGKILL."""
        if self.root is None:
            return
        try:
            pid = None
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
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


def crash(server: Server) -> None:
    """The primary dies: ``pg_ctl stop -m immediate`` (no shutdown checkpoint, no goodbyes)."""
    owner = local_pg(server)
    result = owner.owner_run(
        ["pg_ctl", "stop", "-D", owner.datadir, "-m", "immediate", "-w", "-s"], timeout=30
    )
    if result.returncode != 0:
        raise DrillError(f"could not crash {server.label}: {result.stderr.strip()}")


# ---------------------------------------------------------------------------
# Backup, verification, point-in-time recovery


def _count_by_batch(server: Server) -> dict[str, int]:
    out = psql(server, f"SELECT batch, count(*) FROM {TABLE} GROUP BY batch ORDER BY batch")
    return {b: int(n) for b, n in (line.split("|") for line in out.split())}


def _insert(server: Server, batch: str, rows: int) -> None:
    """``rows`` rows in ``rows`` transactions, each acknowledged before the next starts."""
    script = "".join(f"INSERT INTO {TABLE} (batch) VALUES ('{batch}');\n" for _ in range(rows))
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        input=script, env=server.env("admin"), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise DrillError(f"{server.label}: inserting batch {batch!r} failed: {result.stderr}")


def _writer(server: Server, batch: str, rows: int) -> subprocess.Popen:
    """psql committing ``rows`` transactions; it prints ``INSERT 0 1`` for each acknowledged."""
    writer = subprocess.Popen(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        env=server.env("admin"), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert writer.stdin is not None
    writer.stdin.write(f"INSERT INTO {TABLE} (batch) VALUES ('{batch}');\n" * rows)
    writer.stdin.close()
    return writer


def _table(server: Server) -> None:
    psql(
        server,
        f"CREATE TABLE {TABLE} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "batch text NOT NULL, committed_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    )


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _linked_copy(owner: LocalPostgres, source: Path, dest: Path) -> None:
    """Archived WAL never changes once written: a hard-linked copy is a real, cheap copy."""
    result = owner.owner_run(["cp", "-al", source, dest], timeout=60)
    if result.returncode != 0:
        raise DrillError(f"copying the WAL archive failed: {result.stderr.strip()}")


def backup_and_pitr(pool: ServerPool, label: str) -> list[Drill]:
    """Base backup + WAL archive; verification in a scratch server; PITR by name and time."""
    work = scratch.make("pgdrill")
    token = cleanup.register(f"recovery drill files in {work}", lambda: scratch.remove(work))
    instances: list[Instance] = []
    primary = None
    try:
        archive = work / "archive"
        settings = {
            "archive_mode": "on",
            "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
            "wal_level": "replica",
        }
        primary = pool.start_private(label, settings)
        owner = local_pg(primary)
        assert owner.account is not None
        owner.account.own(work)
        owner.owner_run(["mkdir", "-m", "700", archive])
        _table(primary)
        _insert(primary, "0-in-backup", 50)
        psql(
            primary,
            f"INSERT INTO {TABLE} (batch) SELECT '0-in-backup' FROM generate_series(1, 950)",
        )

        backup_dir = work / "base"
        started = time.perf_counter()
        backup_out = require(
            run_owned(owner, "shell/dr/base_backup.sh", primary, BACKUP_DIR=str(backup_dir)),
            "the base backup (snippets/shell/dr/base_backup.sh)",
        )
        backup_seconds = time.perf_counter() - started
        verify = snippet("sql/dr/verify_restore.sql")
        expected = require(sql_runner.run(verify, primary, primary.env("monitor")), verify.name)

        # Verification: restore into a scratch server and compare every table.
        started = time.perf_counter()
        scratch_pg = Instance(owner, primary, "scratch restore")
        instances.append(scratch_pg)
        scratch_pg.server.admin_env["PGHOST"] = str(scratch_pg.root)
        scratch_pg.server.monitor_env["PGHOST"] = str(scratch_pg.root)
        scratch_pg.check(
            run_owned(
                owner, "shell/dr/restore_scratch.sh", scratch_pg.server,
                BACKUP_DIR=str(backup_dir), SCRATCH_PGDATA=str(scratch_pg.datadir),
            ),
            "the scratch restore (snippets/shell/dr/restore_scratch.sh)",
        )  # fmt: skip
        scratch_pg.record_pid()
        restored = require(
            sql_runner.run(verify, scratch_pg.server, scratch_pg.server.env("monitor")),
            f"{verify.name} on the scratch restore",
        )
        verify_seconds = time.perf_counter() - started
        scratch_pg.stop()
        verification = Drill("backup-verification", label, f"{primary.product} {primary.version}")
        verification.checked = {
            "manifest_verified": "base backup verified" in backup_out,
            "tables_match": restored == expected,
            "expected": expected,
            "restored": restored,
            "rows": _rows_in(expected, TABLE),
        }
        verification.measured = {
            "backup_seconds": backup_seconds,
            "backup_bytes": float(_du(backup_dir)),
            "verify_seconds": verify_seconds,
        }

        # The history PITR must cut: A, then the target time, B, the restore point, C.
        _insert(primary, "1-before-time", 10)
        target_time = one_value(primary, "SELECT clock_timestamp()")
        _insert(primary, "2-before-name", 10)
        point = require(
            sql_runner.run(snippet("sql/dr/restore_point.sql"), primary, primary.env("admin")),
            "snippets/sql/dr/restore_point.sql",
        )
        _insert(primary, "3-after-name", 10)
        last = one_value(primary, "SELECT pg_walfile_name(pg_current_wal_lsn())")
        one_value(primary, "SELECT pg_switch_wal()")
        wait_for(lambda: (archive / last).is_file(), f"archiving of WAL segment {last} on {label}")
        archiver = snippet("sql/dr/archiver_status.sql")
        archiver_out = require(
            sql_runner.run(archiver, primary, primary.env("monitor")), archiver.name
        )
        failed_archiving = int(one_value(primary, "SELECT failed_count FROM pg_stat_archiver"))
        committed = _count_by_batch(primary)
        archived_bytes = float(_du(archive))

        drills = [verification]
        for kind, target in (("name", RESTORE_POINT), ("time", target_time)):
            copy = work / f"archive-{kind}"
            _linked_copy(owner, archive, copy)
            instance = Instance(owner, primary, f"restore to {kind}")
            instances.append(instance)
            started = time.perf_counter()
            env = {"BACKUP_DIR": str(backup_dir), "WAL_ARCHIVE": str(copy)}
            env["PGDATA"] = str(instance.datadir)
            env["RECOVERY_TARGET_NAME" if kind == "name" else "RECOVERY_TARGET_TIME"] = target
            out = instance.check(
                run_owned(owner, "shell/dr/restore_pitr.sh", instance.server, **env),
                f"the point-in-time restore to a {kind} (snippets/shell/dr/restore_pitr.sh)",
            )
            instance.record_pid()
            psql(instance.server, f"INSERT INTO {TABLE} (batch) VALUES ('4-after-restore')")
            seconds = time.perf_counter() - started
            found = _count_by_batch(instance.server)
            found.pop("4-after-restore", None)
            drill = Drill(f"pitr-{kind}", label, f"{primary.product} {primary.version}")
            drill.checked = {
                "target": target,
                "committed": committed,
                "restored": found,
                "promoted": "promoted on timeline" in out,
                "archiver_failures": failed_archiving,
                "archiver_output": archiver_out,
                "restore_point_output": point,
            }
            drill.measured = {
                "restore_seconds": seconds,
                "rows_restored": float(sum(found.values())),
                "wal_archived_bytes": archived_bytes,
            }
            drills.append(drill)
            instance.stop()
        return drills
    finally:
        for instance in instances:
            instance.stop()
        if primary is not None:
            primary.stop()
        scratch.remove(work)
        cleanup.unregister(token)


def _rows_in(verify_output: str, table: str) -> int:
    match = re.search(rf"^\s*public\.{table}\s*\|\s*(\d+)\s*\|", verify_output, re.M)
    return int(match.group(1)) if match else -1


# ---------------------------------------------------------------------------
# Replica promotion


def promotion(pool: ServerPool, label: str, synchronous: bool) -> Drill:
    """Fail the primary over to its streaming standby; count acknowledged commits lost.

    Asynchronous: the standby's WAL receiver is cut off (``primary_conninfo = ''``), the
    primary keeps acknowledging commits, then dies. Synchronous (``remote_apply``): every
    commit is acknowledged only once the standby applied it; then the primary dies.
    """
    settings = {"wal_level": "replica", "synchronous_commit": "on"}
    if synchronous:
        settings["synchronous_commit"] = "remote_apply"
    primary = pool.start_private(label, settings)
    owner = local_pg(primary)
    standby = Instance(owner, primary, "standby")
    name = "promotion-sync" if synchronous else "promotion-async"
    try:
        _table(primary)
        _insert(primary, "0-before-standby", 20)
        standby.check(
            run_owned(
                owner, "shell/dr/create_standby.sh", primary,
                STANDBY_PGDATA=str(standby.datadir), STANDBY_NAME=STANDBY_NAME,
                STANDBY_PORT=str(standby.port),
            ),
            "creating the standby (snippets/shell/dr/create_standby.sh)",
        )  # fmt: skip
        standby.record_pid()
        wait_for(
            lambda: (
                one_value(
                    primary,
                    "SELECT state FROM pg_stat_replication WHERE application_name = "
                    f"'{STANDBY_NAME}'",
                )
                == "streaming"
            ),
            f"{STANDBY_NAME} streaming from the primary on {label}",
        )
        if synchronous:
            psql(primary, f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            psql(primary, "SELECT pg_reload_conf()")
            wait_for(
                lambda: one_value(primary, "SELECT sync_state FROM pg_stat_replication") == "sync",
                f"{STANDBY_NAME} becoming synchronous on {label}",
            )
        status = snippet("sql/dr/replication_status.sql")
        replication = require(sql_runner.run(status, primary, primary.env("monitor")), status.name)
        _insert(primary, "1-replicated", 20)
        replayed = one_value(primary, "SELECT pg_current_wal_lsn()")
        wait_for(
            lambda: (
                one_value(standby.server, f"SELECT pg_last_wal_replay_lsn() >= '{replayed}'") == "t"
            ),
            f"the standby replaying the first batches on {label}",
        )
        acknowledged = _count_by_batch(primary)
        # The fault: the standby loses its link to the primary (a partition, a network
        # that cannot keep up). Asynchronous, the primary goes on acknowledging commits;
        # synchronous, each commit waits for the standby and is never acknowledged.
        psql(standby.server, "ALTER SYSTEM SET primary_conninfo = ''")
        psql(standby.server, "SELECT pg_reload_conf()")
        wait_for(
            lambda: (
                one_value(
                    primary,
                    "SELECT count(*) FROM pg_stat_replication WHERE application_name = "
                    f"'{STANDBY_NAME}'",
                )
                == "0"
            ),
            f"the standby disconnecting from the primary on {label}",
        )
        writer = _writer(primary, "2-during-the-fault", 25)
        try:
            if synchronous:
                wait_for(
                    lambda: (
                        one_value(
                            primary,
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
                        )
                        == "1"
                    ),
                    f"a commit waiting for the synchronous standby on {label}",
                )
            else:
                writer.wait(timeout=WAIT)
            standby_view = snippet("sql/dr/standby_status.sql")
            standby_out = require(
                sql_runner.run(standby_view, standby.server, standby.server.env("monitor")),
                f"{standby_view.name} on the standby",
            )
            lag_bytes = float(
                one_value(
                    primary,
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), "
                    f"'{one_value(standby.server, 'SELECT pg_last_wal_replay_lsn()')}')",
                )
            )
            crash(primary)
            writer.wait(timeout=WAIT)  # the crash ends its connection
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        assert writer.stdout is not None
        out = writer.stdout.read()
        writer.stdout.close()
        # What the application was told: one "INSERT 0 1" per acknowledged commit.
        acknowledged["2-during-the-fault"] = out.count("INSERT 0 1")
        promote = snippet("sql/dr/promote.sql")
        started = time.perf_counter()
        promoted = require(
            sql_runner.run(promote, standby.server, standby.server.env("admin")), promote.name
        )
        psql(standby.server, f"INSERT INTO {TABLE} (batch) VALUES ('3-after-promotion')")
        seconds = time.perf_counter() - started
        found = _count_by_batch(standby.server)
        writes_accepted = found.pop("3-after-promotion", 0) == 1
        in_recovery = one_value(standby.server, "SELECT pg_is_in_recovery()")
        lost = sum(max(0, n - found.get(batch, 0)) for batch, n in acknowledged.items())
        drill = Drill(name, label, f"{primary.product} {primary.version}")
        drill.checked = {
            "replication_status": replication,
            "standby_status": standby_out,
            "promote_output": promoted,
            "acknowledged": acknowledged,
            "present_after_promotion": found,
            "lost": lost,
            "in_recovery_after": in_recovery,
            "writes_accepted": writes_accepted,
        }
        drill.measured = {
            "promote_to_write_seconds": seconds,
            "transactions_lost": float(lost),
            "lag_bytes_at_failure": lag_bytes,
        }
        return drill
    finally:
        standby.stop()
        primary.stop()


# ---------------------------------------------------------------------------
# Redis Sentinel


class Sentinel:
    """``redis-server --sentinel`` on a free loopback port, its config in a temp dir."""

    def __init__(self, binary: Path, master: Server, password: str, quorum: int = 2) -> None:
        self.root = scratch.make("redis")
        self.port = free_port()
        self._token = cleanup.register(f"Redis Sentinel in {self.root}", self.stop)
        conf = self.root / "sentinel.conf"
        conf.touch(mode=0o600)
        conf.write_text(
            "# written by handbook.drills.recovery for one drill\n"
            f"port {self.port}\nbind {HOST}\ndaemonize no\ndir {self.root}\n"
            f'logfile "{self.root / "sentinel.log"}"\n'
            f"sentinel monitor {MASTER_NAME} {HOST} {master.port} {quorum}\n"
            f"sentinel auth-pass {MASTER_NAME} {password}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self.proc = subprocess.Popen(
            [os.fspath(binary), os.fspath(conf), "--sentinel"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            cwd=self.root, start_new_session=True,
        )  # fmt: skip
        scratch.record(self.root, server_pid=self.proc.pid)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def ask(self, *args: str) -> object:
        (reply,) = resp.call((HOST, self.port), tuple(args), timeout=2)
        if isinstance(reply, resp.RespError):
            raise reply
        return reply

    def master(self) -> dict[str, str]:
        reply = self.ask("SENTINEL", "MASTER", MASTER_NAME)
        assert isinstance(reply, list)
        return dict(zip(reply[::2], reply[1::2], strict=False))

    def master_port(self) -> int:
        reply = self.ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        assert isinstance(reply, list)
        return int(reply[1])

    def log(self) -> str:
        try:
            lines = (self.root / "sentinel.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in lines[-15:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        scratch.remove(self.root)
        cleanup.unregister(self._token)


def _redis(server: Server, *args: str, password: str | None = None) -> object:
    handle = server.handle
    assert isinstance(handle, LocalRedis)
    (reply,) = resp.call(
        server.socket, tuple(args), user="default", password=password or handle.password
    )
    if isinstance(reply, resp.RespError):
        raise reply
    return reply


@contextlib.contextmanager
def _sentinels(binary: Path, master: Server, password: str) -> Iterator[list[Sentinel]]:
    started: list[Sentinel] = []
    try:
        for _ in range(3):
            started.append(Sentinel(binary, master, password))
        yield started
    finally:
        for sentinel in started:
            sentinel.stop()


def sentinel_failover(pool: ServerPool, label: str) -> Drill:
    """Kill a Redis master watched by three sentinels; the replica must take over."""
    master = pool.start_private(label)
    replica = pool.start_private(label)
    try:
        if not isinstance(master.handle, LocalRedis) or not isinstance(replica.handle, LocalRedis):
            raise ServerUnavailable(f"{label}: the Sentinel drill needs local Redis binaries")
        password = master.handle.password
        # One password reaches both (Sentinel sends the same auth-pass to every server).
        _redis(replica, "ACL", "SETUSER", "default", f">{password}")
        _redis(replica, "CONFIG", "SET", "masterauth", password)
        _redis(replica, "REPLICAOF", HOST, str(master.port))
        wait_for(
            lambda: "master_link_status:up" in str(_redis(replica, "INFO", "replication")),
            f"the {label} replica syncing from its master",
        )
        for number in range(100):
            _redis(master, "SET", f"order:{number}", "paid")
        synced = _redis(master, "WAIT", "1", "5000")
        with _sentinels(master.handle.install.server, master, password) as sentinels:

            def ready() -> bool:
                views = [s.master() for s in sentinels]
                return all(
                    v.get("num-other-sentinels") == "2" and v.get("num-slaves") == "1"
                    for v in views
                )

            wait_for(ready, f"three {label} sentinels finding each other and the replica")
            started = time.perf_counter()
            assert master.handle.proc is not None
            master.handle.proc.send_signal(signal.SIGKILL)
            try:
                wait_for(
                    lambda: all(s.master_port() == replica.port for s in sentinels),
                    f"the {label} sentinels electing the replica as master",
                )
            except DrillError as exc:
                logs = "\n".join(s.log() for s in sentinels[:1])
                raise DrillError(f"{exc}; a sentinel's log:\n{logs}") from None
            new_master = time.perf_counter() - started
            wait_for(
                lambda: _redis(replica, "SET", "order:after-failover", "paid") == "OK",
                f"the promoted {label} replica accepting writes",
            )
            writes = time.perf_counter() - started
            status = snippet("shell/dr/sentinel_status.sh")
            # Sentinels here have no password: no REDISCLI_AUTH (redis-cli 6.2 would send it).
            env = {k: v for k, v in replica.env("admin").items() if not k.startswith("REDIS")}
            env["SENTINEL_URL"] = sentinels[0].url
            sentinel_out = require(
                shell_runner.run(status, env, f"{replica.describe()} + Sentinel"), status.name
            )
            role = snippet("shell/dr/redis_role.sh")
            role_out = require(
                shell_runner.run(role, replica.env("monitor"), replica.describe()), role.name
            )
            kept = sum(
                1 for number in range(100) if _redis(replica, "GET", f"order:{number}") == "paid"
            )
        drill = Drill("sentinel-failover", label, f"{replica.product} {replica.version}")
        drill.checked = {
            "replicas_acknowledged": synced,
            "sentinel_status": sentinel_out,
            "role": role_out,
            "new_master_port": replica.port,
            "keys_kept": kept,
        }
        drill.measured = {
            "to_new_master_seconds": new_master,
            "to_writes_seconds": writes,
            "down_after_ms": float(DOWN_AFTER_MS),
        }
        return drill
    finally:
        replica.stop()
        master.stop()


# ---------------------------------------------------------------------------
# What each drill must have shown (the tests and ``python -m handbook.drills.dr`` both check)


def _in_status(output: str, column: str) -> str:
    """The first row's ``column`` in psql's aligned output ("" when absent)."""
    lines = output.splitlines()
    if len(lines) < 3:
        return ""
    header = [c.strip() for c in lines[0].split("|")]
    row = [c.strip() for c in lines[2].split("|")]
    return row[header.index(column)] if column in header and len(row) == len(header) else ""


def problems(drill: Drill) -> list[str]:
    """What is wrong with a drill's outcome, each said so a reader knows what broke."""
    c, found = drill.checked, []
    where = f"{drill.name} on {drill.label}"
    if drill.name == "backup-verification":
        if not c["manifest_verified"]:
            found.append(f"{where}: pg_verifybackup did not confirm the base backup")
        if not c["tables_match"]:
            found.append(
                f"{where}: the scratch restore differs from the source:\n"
                f"source:\n{c['expected']}\nrestore:\n{c['restored']}"
            )
        if c["rows"] != 1000:
            found.append(f"{where}: verify_restore.sql counted {c['rows']} rows, not 1000")
    elif drill.name.startswith("pitr-"):
        keep = ("0-in-backup", "1-before-time")
        if drill.name == "pitr-name":
            keep += ("2-before-name",)
        wanted = {b: n for b, n in c["committed"].items() if b in keep}
        if c["restored"] != wanted:
            found.append(
                f"{where}: restoring to {c['target']!r} gave rows {c['restored']}, "
                f"expected {wanted} (every commit before the target, none after)"
            )
        if not c["promoted"]:
            found.append(f"{where}: restore_pitr.sh did not report the promotion")
        if c["archiver_failures"]:
            found.append(f"{where}: archive_command failed {c['archiver_failures']} times")
    elif drill.name.startswith("promotion-"):
        synchronous = drill.name == "promotion-sync"
        sync_state = _in_status(c["replication_status"], "sync_state")
        if sync_state != ("sync" if synchronous else "async"):
            found.append(f"{where}: replication_status.sql showed sync_state {sync_state!r}")
        if _in_status(c["standby_status"], "in_recovery") != "t":
            found.append(f"{where}: standby_status.sql did not show the standby in recovery")
        if _in_status(c["promote_output"], "promoted") != "t" or c["in_recovery_after"] != "f":
            found.append(f"{where}: promote.sql did not promote the standby")
        if not c["writes_accepted"]:
            found.append(f"{where}: the promoted standby did not accept a write")
        during = c["acknowledged"].get("2-during-the-fault", 0)
        if synchronous and (c["lost"] != 0 or during != 0):
            found.append(
                f"{where}: synchronous replication lost {c['lost']} acknowledged commits "
                f"({during} acknowledged while the standby was cut off); expected none"
            )
        if not synchronous and not (c["lost"] > 0 and c["lost"] == during):
            found.append(
                f"{where}: asynchronous replication lost {c['lost']} commits; expected the "
                f"{during} acknowledged while the standby was cut off, and more than none"
            )
    elif drill.name == "sentinel-failover":
        port = str(c["new_master_port"])
        if f"master: {HOST}:{port}" not in c["sentinel_status"]:
            found.append(f"{where}: sentinel_status.sh does not name :{port} as the master")
        if not c["role"].startswith("master"):
            found.append(f"{where}: redis_role.sh on the promoted replica: {c['role']!r}")
        if c["keys_kept"] != 100:
            found.append(f"{where}: {c['keys_kept']} of 100 replicated keys survived")
    return found
