"""Drill: the database connectivity runbook, on dedicated PostgreSQL servers per version.

The server is stopped the way a crash stops it; the readiness check must say so with
pg_isready's documented exit code; the connection diagnosis must tell a down server
from a refused login, from a full server and from a missing database; the recovery
procedure must bring the server back with every row; a backup taken with the page's
pg_dump script and restored with its pg_restore script must hold every row. Each run
starts with the same scripts on the healthy server: no verdict, no failure there.
"""

from __future__ import annotations

import uuid

import pytest

import handbook.pytest_plugin
from handbook.drills import common, local, pool
from handbook.drills import connectivity as drill
from handbook.schema import seed
from handbook.schema.databases import TEMPLATE, Databases

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [
    pytest.mark.covers("20.2"),
    pytest.mark.covers("next:drill"),
    pytest.mark.covers("next:automate"),
]

READINESS = common.snippet("shell/connectivity/readiness.sh")
DIAGNOSE = common.snippet("shell/connectivity/diagnose_connection.sh")
NETWORK = common.snippet("shell/connectivity/network_check.sh")
DISK = common.snippet("shell/connectivity/disk_space.sh")
DISK_USAGE = common.snippet("sql/connectivity/disk_usage.sql")
RECOVER = common.snippet("shell/connectivity/recover_server.sh")
BACKUP = common.snippet("shell/connectivity/backup_database.sh")
RESTORE = common.snippet("shell/connectivity/restore_backup.sh")


def local_only(srv):
    if srv.provider != "local":
        # Not a missing tool (the local servers run it): a container's processes are not ours.
        pytest.skip(
            f"this drill stops and starts the server's own processes: {srv.label} is not local"
        )


def expect(outcome, code, snippet, phrase):
    """The script exited with ``code`` (documented on the page) and printed ``phrase``."""
    got = outcome.returncode
    assert got == code and phrase in outcome.output, (
        f"{snippet.name}: expected exit {code} and {phrase!r}, got exit {got}:\n{outcome.output}"
    )


@pytest.mark.drill
def test_stopped_server_is_reported_and_recovered(pg_server, request):
    pool_ = request.config.stash[handbook.pytest_plugin.POOL]
    local_only(pg_server)
    srv = pool_.start_private(pg_server.label)
    try:
        Databases().ensure(srv)
        admin = srv.env("admin") | {"PGDATABASE": "erpgo"}
        monitor = srv.env("monitor") | {"PGDATABASE": "erpgo"}
        rows_before = seed.checksums(admin)

        # Healthy baseline: every check passes and none names a cause.
        checks = (READINESS, DIAGNOSE, NETWORK, DISK)
        baseline = {s.name: common.run(s, srv, monitor) for s in checks}
        for name, outcome in baseline.items():
            assert outcome.ok, f"baseline: {outcome.message}\n{outcome.output}"
            assert not drill.verdict(outcome), f"{name}: baseline verdict"
        assert "accepting connections" in baseline[READINESS.name].output
        assert "connected to erpgo" in baseline[DIAGNOSE.name].output
        assert "accepts connections" in baseline[NETWORK.name].output
        assert "Filesystem" in baseline[DISK.name].output
        usage = common.output(DISK_USAGE, srv, monitor)
        sizes = common.table(usage)
        assert "erpgo" in {r["database"] for r in sizes}, usage

        # The incident: the server goes away without a shutdown checkpoint.
        local.crash(srv)
        expect(common.run(READINESS, srv, monitor), 2, READINESS, "no response")
        down = common.run(DIAGNOSE, srv, monitor)
        expect(down, 2, DIAGNOSE, "verdict: server down or unreachable")
        expect(common.run(NETWORK, srv, monitor), 2, NETWORK, "refused or timed out")
        # The disk check works without the server, given the data directory.
        disk = common.run(DISK, srv, monitor | {"PGDATA": str(local.local_pg(srv).datadir)})
        assert disk.ok and "Filesystem" in disk.output, f"{DISK.name}: {disk.message}"

        # Recovery: the page's procedure starts it (crash recovery), then does nothing.
        recovered = common.run(RECOVER, srv, local.host_env(srv, admin))
        assert recovered.ok, f"{RECOVER.name}: {recovered.message}\n{recovered.output}"
        assert "accepting connections" in recovered.output
        assert common.run(READINESS, srv, monitor).ok
        assert common.run(DIAGNOSE, srv, monitor).ok
        again = common.run(RECOVER, srv, local.host_env(srv, admin))
        assert again.ok and "nothing to start" in again.output, again.output
        assert seed.checksums(admin) == rows_before, "rows changed across crash and recovery"
    finally:
        srv.stop()


@pytest.mark.drill
def test_refused_login_and_full_server_are_told_apart(pg_server, request):
    pool_ = request.config.stash[handbook.pytest_plugin.POOL]
    # 6 slots, 2 kept for superusers: the application roles can hold 4.
    srv = pool_.start_private(
        pg_server.label, {"max_connections": "6", "superuser_reserved_connections": "2"}
    )
    try:
        monitor = srv.env("monitor")
        admin = srv.env("admin")

        baseline = common.run(DIAGNOSE, srv, monitor)
        assert baseline.ok and not drill.verdict(baseline), baseline.output

        # A refused login: wrong password, unknown role. The server is up all along, and
        # pg_isready (which does not log in) says so: the page warns about exactly that.
        wrong = monitor | {"PGPASSWORD": "not-the-password"}
        expect(common.run(DIAGNOSE, srv, wrong), 3, DIAGNOSE, "verdict: login refused")
        expect(common.run(DIAGNOSE, srv, monitor | {"PGUSER": "erpgo_nobody"}), 3, DIAGNOSE,
               "verdict: login refused")  # fmt: skip
        assert common.run(READINESS, srv, wrong).ok
        expect(common.run(DIAGNOSE, srv, monitor | {"PGDATABASE": "erpgo_missing"}), 6, DIAGNOSE,
               "verdict: no such database")  # fmt: skip

        # A full server: the application's role takes every slot it may have.
        with pool.sessions(srv, database="postgres") as s:
            for _ in range(4):
                s.connect(pool.API)
            full = common.run(DIAGNOSE, srv, monitor)
            expect(full, 4, DIAGNOSE, "verdict: server full")
            # A superuser still gets one of the reserved slots: how you investigate.
            assert common.run(DIAGNOSE, srv, admin).ok
            for _ in range(2):
                s.connect("psql", user="postgres", password=admin["PGPASSWORD"])
            expect(common.run(DIAGNOSE, srv, admin), 4, DIAGNOSE, "verdict: server full")
            assert common.run(READINESS, srv, monitor).ok  # up, just full
        assert common.run(DIAGNOSE, srv, monitor).ok
    finally:
        srv.stop()


@pytest.mark.drill
def test_backup_restores_every_row(pg_server, request, tmp_path):
    databases = request.config.stash[handbook.pytest_plugin.DATABASES]
    databases.ensure(pg_server)
    name = f"drill_restore_{uuid.uuid4().hex[:10]}"
    common.admin_sql(pg_server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        admin = pg_server.env("admin") | {"PGDATABASE": name}
        monitor = pg_server.env("monitor") | {"PGDATABASE": name}
        rows_before = seed.checksums(admin)
        assert common.run(DIAGNOSE, pg_server, monitor).ok

        # The backup, as the read-only monitoring role.
        backup = common.run(BACKUP, pg_server, monitor | {"BACKUP_DIR": str(tmp_path)})
        assert backup.ok, f"{BACKUP.name}: {backup.message}\n{backup.output}"
        (archive,) = tmp_path.glob(f"{name}-*.dump")
        tables = common.admin_sql(
            pg_server,
            "SELECT count(*) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
            name,
        )
        assert f": {int(tables)} tables of data" in backup.output, backup.output

        # The loss, and what the diagnosis says about it.
        common.admin_sql(pg_server, f"DROP DATABASE {name} WITH (FORCE)")
        expect(common.run(DIAGNOSE, pg_server, monitor), 6, DIAGNOSE, "verdict: no such database")

        # The restore: every row back, counted by the script itself.
        env = admin | {"BACKUP_FILE": str(archive), "RESTORE_DB": name}
        restored = common.run(RESTORE, pg_server, env)
        assert restored.ok, f"{RESTORE.name}: {restored.message}\n{restored.output}"
        counted = {
            r["table"].removeprefix("public."): int(r["rows"])
            for r in common.table(restored.output)
        }
        expected = {t: int(v.split(":")[0]) for t, v in rows_before.items()}
        assert {t: counted.get(t) for t in expected} == expected, restored.output
        assert seed.checksums(admin) == rows_before, "the restored rows differ from the backup's"

        # Never on top of data: a second restore into the same database refuses, unchanged.
        twice = common.run(RESTORE, pg_server, env)
        assert not twice.ok and "already exists" in twice.output, twice.output
        assert seed.checksums(admin) == rows_before
    finally:
        common.admin_sql(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
