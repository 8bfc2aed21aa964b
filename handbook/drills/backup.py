"""The backup drill: WAL archiving, a verified base backup, and point-in-time restores.

On a dedicated primary that archives its WAL: a base backup taken by the page's
``base_backup.sh`` (checked against its manifest) is restored into a scratch server
(``restore_scratch.sh``) and compared with the source table by table
(``verify_restore.sql`` on both). Then the history a point-in-time restore must cut: a
batch, the target time, a batch, the restore point (``restore_point.sql``), a batch;
``restore_pitr.sh`` restores to the restore point and to the time, each in a server of
its own: every row committed before the target is back, none committed after it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from handbook.drills import orders
from handbook.drills.common import DrillError, admin_sql, output, require, snippet, wait_for
from handbook.drills.local import Instance, local_pg, run_owned
from handbook.drills.objectives import Figures
from handbook.servers import cleanup, scratch
from handbook.servers.pool import ServerPool
from handbook.servers.postgres import LocalPostgres

RESTORE_POINT = "erpgo-before-release"  # the name snippets/sql/dr/restore_point.sql creates
BACKUP_ROWS = 1000  # rows of orders.TABLE in the base backup
BATCH = 10  # rows of each batch committed after it
IN_BACKUP, BEFORE_TIME, BEFORE_NAME, AFTER_NAME = (
    "0-in-backup",
    "1-before-time",
    "2-before-name",
    "3-after-name",
)


@dataclass(kw_only=True)
class Verification(Figures):
    """The base backup restored into a scratch server and compared with its source."""

    manifest_verified: bool  # base_backup.sh reported pg_verifybackup's success
    expected: str  # verify_restore.sql on the source
    restored: str  # verify_restore.sql on the scratch restore
    rows: int  # rows of orders.TABLE verify_restore.sql counted on the source

    def problems(self) -> list[str]:
        where, found = f"{self.name} on {self.label}", []
        if not self.manifest_verified:
            found.append(f"{where}: pg_verifybackup did not confirm the base backup")
        if self.restored != self.expected:
            found.append(
                f"{where}: the scratch restore differs from the source:\n"
                f"source:\n{self.expected}\nrestore:\n{self.restored}"
            )
        if self.rows != BACKUP_ROWS:
            found.append(f"{where}: verify_restore.sql counted {self.rows} rows, not {BACKUP_ROWS}")
        return found


@dataclass(kw_only=True)
class PointInTimeRestore(Figures):
    """A restore to a restore point (``pitr-name``) or to a time (``pitr-time``)."""

    target: str  # the restore point's name, or the time
    committed: dict[str, int]  # rows per batch on the primary
    restored: dict[str, int]  # rows per batch in the restore
    promoted: bool  # restore_pitr.sh reported the promotion
    archiver_failures: int  # pg_stat_archiver.failed_count on the primary
    archiver_output: str = ""  # archiver_status.sql on the primary
    restore_point_output: str = ""  # restore_point.sql

    @property
    def kept(self) -> tuple[str, ...]:
        """The batches committed before the target: the ones the restore must bring back."""
        before = (IN_BACKUP, BEFORE_TIME)
        return (*before, BEFORE_NAME) if self.name == "pitr-name" else before

    def problems(self) -> list[str]:
        where, found = f"{self.name} on {self.label}", []
        wanted = {b: n for b, n in self.committed.items() if b in self.kept}
        if self.restored != wanted:
            found.append(
                f"{where}: restoring to {self.target!r} gave rows {self.restored}, "
                f"expected {wanted} (every commit before the target, none after)"
            )
        if not self.promoted:
            found.append(f"{where}: restore_pitr.sh did not report the promotion")
        if self.archiver_failures:
            found.append(f"{where}: archive_command failed {self.archiver_failures} times")
        return found


@dataclass
class BackupRun:
    """The three results of one run: the verified backup, and the two restores."""

    verification: Verification
    by_name: PointInTimeRestore
    by_time: PointInTimeRestore

    @property
    def results(self) -> list[Verification | PointInTimeRestore]:
        return [self.verification, self.by_name, self.by_time]


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _linked_copy(owner: LocalPostgres, source: Path, dest: Path) -> None:
    """Archived WAL never changes once written: a hard-linked copy is a real, cheap copy."""
    result = owner.owner_run(["cp", "-al", source, dest], timeout=60)
    if result.returncode != 0:
        raise DrillError(f"copying the WAL archive failed: {result.stderr.strip()}")


def _rows_in(verify_output: str, table: str) -> int:
    match = re.search(rf"^\s*public\.{table}\s*\|\s*(\d+)\s*\|", verify_output, re.M)
    return int(match.group(1)) if match else -1


def backup_and_pitr(pool: ServerPool, label: str) -> BackupRun:
    """Base backup + WAL archive; verification in a scratch server; PITR by name and time."""
    work = scratch.make("pgdrill")
    token = cleanup.register(f"backup drill files in {work}", lambda: scratch.remove(work))
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
        server = f"{primary.product} {primary.version}"
        orders.create(primary)
        orders.insert(primary, IN_BACKUP, 50)
        admin_sql(
            primary,
            f"INSERT INTO {orders.TABLE} (batch) "
            f"SELECT '{IN_BACKUP}' FROM generate_series(1, {BACKUP_ROWS - 50})",
        )

        backup_dir = work / "base"
        started = time.perf_counter()
        backup_out = require(
            run_owned(owner, "shell/dr/base_backup.sh", primary, BACKUP_DIR=str(backup_dir)),
            "the base backup",
        )
        backup_seconds = time.perf_counter() - started
        verify = snippet("sql/dr/verify_restore.sql")
        expected = output(verify, primary, primary.env("monitor"))

        # Verification: restore into a scratch server and compare every table.
        started = time.perf_counter()
        copy = Instance(owner, primary, "scratch restore")
        instances.append(copy)
        copy.server.admin_env["PGHOST"] = str(copy.root)
        copy.server.monitor_env["PGHOST"] = str(copy.root)
        copy.start(
            "shell/dr/restore_scratch.sh", copy.server,
            BACKUP_DIR=str(backup_dir), SCRATCH_PGDATA=str(copy.datadir),
        )  # fmt: skip
        restored = output(verify, copy.server, copy.server.env("monitor"))
        verify_seconds = time.perf_counter() - started
        copy.stop()
        verification = Verification(
            name="backup-verification",
            label=label,
            server=server,
            manifest_verified="base backup verified" in backup_out,
            expected=expected,
            restored=restored,
            rows=_rows_in(expected, orders.TABLE),
            measured={
                "backup_seconds": backup_seconds,
                "backup_bytes": float(_du(backup_dir)),
                "verify_seconds": verify_seconds,
            },
        )

        # The history PITR must cut: A, then the target time, B, the restore point, C.
        orders.insert(primary, BEFORE_TIME, BATCH)
        target_time = admin_sql(primary, "SELECT clock_timestamp()")
        orders.insert(primary, BEFORE_NAME, BATCH)
        point = output("sql/dr/restore_point.sql", primary, primary.env("admin"))
        orders.insert(primary, AFTER_NAME, BATCH)
        last = admin_sql(primary, "SELECT pg_walfile_name(pg_current_wal_lsn())")
        admin_sql(primary, "SELECT pg_switch_wal()")
        wait_for(lambda: (archive / last).is_file(), f"archiving of WAL segment {last} on {label}")
        archiver_out = output("sql/dr/archiver_status.sql", primary, primary.env("monitor"))
        failed_archiving = int(admin_sql(primary, "SELECT failed_count FROM pg_stat_archiver"))
        committed = orders.count_by_batch(primary)
        archived_bytes = float(_du(archive))

        restores = {}
        for kind, target in (("name", RESTORE_POINT), ("time", target_time)):
            wal = work / f"archive-{kind}"
            _linked_copy(owner, archive, wal)
            instance = Instance(owner, primary, f"restore to {kind}")
            instances.append(instance)
            started = time.perf_counter()
            env = {"BACKUP_DIR": str(backup_dir), "WAL_ARCHIVE": str(wal)}
            env["PGDATA"] = str(instance.datadir)
            env["RECOVERY_TARGET_NAME" if kind == "name" else "RECOVERY_TARGET_TIME"] = target
            out = instance.start("shell/dr/restore_pitr.sh", instance.server, **env)
            admin_sql(instance.server, f"INSERT INTO {orders.TABLE} (batch) VALUES ('4-after')")
            seconds = time.perf_counter() - started
            found = orders.count_by_batch(instance.server)
            found.pop("4-after", None)
            restores[kind] = PointInTimeRestore(
                name=f"pitr-{kind}",
                label=label,
                server=server,
                target=target,
                committed=committed,
                restored=found,
                promoted="promoted on timeline" in out,
                archiver_failures=failed_archiving,
                archiver_output=archiver_out,
                restore_point_output=point,
                measured={
                    "restore_seconds": seconds,
                    "rows_restored": float(sum(found.values())),
                    "wal_archived_bytes": archived_bytes,
                },
            )
            instance.stop()
        return BackupRun(verification, restores["name"], restores["time"])
    finally:
        for instance in instances:
            instance.stop()
        if primary is not None:
            primary.stop()
        scratch.remove(work)
        cleanup.unregister(token)
