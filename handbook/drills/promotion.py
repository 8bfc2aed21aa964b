"""The promotion drill: the primary dies, its streaming standby is promoted; what was lost?

A standby made by the page's ``create_standby.sh`` (``pg_basebackup -R``) streams from a
dedicated primary. The fault: the standby loses its link (``primary_conninfo = ''``)
while a client keeps committing, then the primary crashes and ``promote.sql`` promotes
the standby. Asynchronous, the primary went on acknowledging commits the standby never
received: they are lost, and counted. Synchronous (``remote_apply``), no commit was
acknowledged while the standby was away: none is lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from handbook.drills import orders
from handbook.drills.common import admin_sql, output, tables, wait_for
from handbook.drills.local import Instance, crash, local_pg
from handbook.drills.objectives import Figures
from handbook.servers.pool import ServerPool

STANDBY_NAME = "erpgo_replica"
WAIT = 60.0  # seconds before a client that should have finished is declared stuck
BEFORE, REPLICATED, DURING, AFTER = (
    "0-before-standby",
    "1-replicated",
    "2-during-the-fault",
    "3-after-promotion",
)


def first_value(output: str, column: str) -> str:
    """``column`` of the first row in psql's aligned output ("" when absent)."""
    found = tables(output)
    return found[0][0].get(column, "") if found and found[0] else ""


@dataclass(kw_only=True)
class Promotion(Figures):
    """What the standby held after its promotion, against what the client was told."""

    synchronous: bool
    replication_status: str  # replication_status.sql on the primary before the fault
    standby_status: str  # standby_status.sql on the standby, cut off
    promote_output: str  # promote.sql
    acknowledged: dict[str, int]  # commits per batch the client was told succeeded
    present_after_promotion: dict[str, int]  # rows per batch on the promoted standby
    in_recovery_after: str  # pg_is_in_recovery() after promote.sql: "f"
    writes_accepted: bool  # a write on the promoted standby committed

    @property
    def lost(self) -> int:
        """Acknowledged commits the promoted standby does not have."""
        found = self.present_after_promotion
        return sum(max(0, n - found.get(batch, 0)) for batch, n in self.acknowledged.items())

    def problems(self) -> list[str]:
        where, found = f"{self.name} on {self.label}", []
        sync_state = first_value(self.replication_status, "sync_state")
        if sync_state != ("sync" if self.synchronous else "async"):
            found.append(f"{where}: replication_status.sql showed sync_state {sync_state!r}")
        if first_value(self.standby_status, "in_recovery") != "t":
            found.append(f"{where}: standby_status.sql did not show the standby in recovery")
        if first_value(self.promote_output, "promoted") != "t" or self.in_recovery_after != "f":
            found.append(f"{where}: promote.sql did not promote the standby")
        if not self.writes_accepted:
            found.append(f"{where}: the promoted standby did not accept a write")
        during = self.acknowledged.get(DURING, 0)
        if self.synchronous and (self.lost != 0 or during != 0):
            found.append(
                f"{where}: synchronous replication lost {self.lost} acknowledged commits "
                f"({during} acknowledged while the standby was cut off); expected none"
            )
        if not self.synchronous and not (self.lost > 0 and self.lost == during):
            found.append(
                f"{where}: asynchronous replication lost {self.lost} commits; expected the "
                f"{during} acknowledged while the standby was cut off, and more than none"
            )
        return found


def promotion(pool: ServerPool, label: str, synchronous: bool) -> Promotion:
    """Fail the primary over to its streaming standby; count acknowledged commits lost."""
    settings = {"wal_level": "replica", "synchronous_commit": "on"}
    if synchronous:
        settings["synchronous_commit"] = "remote_apply"
    primary = pool.start_private(label, settings)
    standby = Instance(local_pg(primary), primary, "standby")

    def on_primary(sql: str) -> str:
        return admin_sql(primary, sql)

    def on_standby(sql: str) -> str:
        return admin_sql(standby.server, sql)

    try:
        orders.create(primary)
        orders.insert(primary, BEFORE, 20)
        standby.start(
            "shell/dr/create_standby.sh", primary,
            STANDBY_PGDATA=str(standby.datadir), STANDBY_NAME=STANDBY_NAME,
            STANDBY_PORT=str(standby.port),
        )  # fmt: skip
        streaming = (
            f"SELECT state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
        )
        wait_for(
            lambda: on_primary(streaming) == "streaming",
            f"{STANDBY_NAME} streaming from the primary on {label}",
        )
        if synchronous:
            on_primary(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            on_primary("SELECT pg_reload_conf()")
            wait_for(
                lambda: on_primary("SELECT sync_state FROM pg_stat_replication") == "sync",
                f"{STANDBY_NAME} becoming synchronous on {label}",
            )
        replication = output("sql/dr/replication_status.sql", primary, primary.env("monitor"))
        orders.insert(primary, REPLICATED, 20)
        replayed = on_primary("SELECT pg_current_wal_lsn()")
        wait_for(
            lambda: on_standby(f"SELECT pg_last_wal_replay_lsn() >= '{replayed}'") == "t",
            f"the standby replaying the first batches on {label}",
        )
        acknowledged = orders.count_by_batch(primary)
        # The fault: the standby loses its link to the primary (a partition, a network
        # that cannot keep up). Asynchronous, the primary goes on acknowledging commits;
        # synchronous, each commit waits for the standby and is never acknowledged.
        on_standby("ALTER SYSTEM SET primary_conninfo = ''")
        on_standby("SELECT pg_reload_conf()")
        connected = (
            f"SELECT count(*) FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
        )
        wait_for(
            lambda: on_primary(connected) == "0",
            f"the standby disconnecting from the primary on {label}",
        )
        writer = orders.writer(primary, DURING, 25)
        try:
            if synchronous:
                waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
                wait_for(
                    lambda: on_primary(waiting) == "1",
                    f"a commit waiting for the synchronous standby on {label}",
                )
            else:
                writer.wait(timeout=WAIT)
            standby_out = output(
                "sql/dr/standby_status.sql", standby.server, standby.server.env("monitor")
            )
            standby_lsn = on_standby("SELECT pg_last_wal_replay_lsn()")
            lag_bytes = float(
                on_primary(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{standby_lsn}')")
            )
            crash(primary)
            writer.wait(timeout=WAIT)  # the crash ends its connection
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        assert writer.stdout is not None
        told = writer.stdout.read()
        writer.stdout.close()
        # What the application was told: one "INSERT 0 1" per acknowledged commit.
        acknowledged[DURING] = told.count("INSERT 0 1")
        started = time.perf_counter()
        promoted = output("sql/dr/promote.sql", standby.server, standby.server.env("admin"))
        on_standby(f"INSERT INTO {orders.TABLE} (batch) VALUES ('{AFTER}')")
        seconds = time.perf_counter() - started
        found = orders.count_by_batch(standby.server)
        writes_accepted = found.pop(AFTER, 0) == 1
        result = Promotion(
            name="promotion-sync" if synchronous else "promotion-async",
            label=label,
            server=f"{primary.product} {primary.version}",
            synchronous=synchronous,
            replication_status=replication,
            standby_status=standby_out,
            promote_output=promoted,
            acknowledged=acknowledged,
            writes_accepted=writes_accepted,
            present_after_promotion=found,
            in_recovery_after=on_standby("SELECT pg_is_in_recovery()"),
        )
        result.measured = {
            "promote_to_write_seconds": seconds,
            "transactions_lost": float(result.lost),
            "lag_bytes_at_failure": lag_bytes,
        }
        return result
    finally:
        standby.stop()
        primary.stop()
