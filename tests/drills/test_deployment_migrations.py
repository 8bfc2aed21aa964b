"""Drills: the deployment and rollback procedures on real migrations and a seeded database.

Each drill gets a database of its own on the session's PostgreSQL servers (one run per
version), migrated and seeded the way production got there: the reference schema up to
0005, the seed data, then the release migrations on top of that data. The procedure's
own snippets run with the same runners the harness uses.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import psycopg
import pytest

from handbook.drills import common
from handbook.drills import deploy as drill
from handbook.guide import notification
from handbook.paths import DOCS, rel
from handbook.prometheus.alerts import load_rules
from handbook.schema import migrations as mig
from handbook.schema import seed as sd

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [
    pytest.mark.covers("20.2"),
    pytest.mark.covers("20.3"),
    pytest.mark.covers("next:drill"),
]

MIGRATIONS = mig.discover()
BY_VERSION = {m.version: m for m in MIGRATIONS}
RELEASE = [m for m in MIGRATIONS if m.version > 5]  # the migrations the procedure deploys
ANCHOR = "2026-01-05 12:00:00+00"
_names = itertools.count(1)
DISAGREEING = "SELECT count(*) FROM users WHERE email_verified <> (email_verified_at IS NOT NULL)"
TRIGGER_ROW = re.compile(
    r"^\| `(?P<alert>[A-Za-z]+)` \((?P<severity>\w+)\) \|.*\{ref\}`(?P<anchor>[a-z-]+)` \|$"
)
BACKUP = (
    "INSERT INTO ops.backup_runs (kind, location, started_at, finished_at, verified_at) "
    "VALUES ('base', 's3://erpgo-backups/base/{n}', now() - interval '{h} hours', "
    "now() - interval '{h} hours', {verified})"
)


@pytest.fixture(scope="session")
def seeded_at_0005(pg_server):
    """Per server: a template database migrated to 0005 and seeded (small scale), built once."""
    env = pg_server.env("admin")
    name = f"deploy_template_{os.getpid()}"
    common.psql({**env, "PGDATABASE": "postgres"}, f"CREATE DATABASE {name}")
    template = {**env, "PGDATABASE": name}
    mig.apply(template, MIGRATIONS, target=5)
    sd.seed({**template, "HANDBOOK_SCALE": "small"}, anchor=ANCHOR)
    yield name
    common.psql({**env, "PGDATABASE": "postgres"}, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def admin(pg_server, seeded_at_0005):
    """A database of its own, migrated to 0005 and seeded, as the superuser; dropped after."""
    env = pg_server.env("admin")
    name = f"deploy_{os.getpid()}_{next(_names)}"
    common.psql(
        {**env, "PGDATABASE": "postgres"}, f"CREATE DATABASE {name} TEMPLATE {seeded_at_0005}"
    )
    try:
        yield {**env, "PGDATABASE": name}
    finally:
        common.psql({**env, "PGDATABASE": "postgres"}, f"DROP DATABASE {name} WITH (FORCE)")


def _check(outcome, expected_ok: bool = True) -> str:
    if outcome.ok != expected_ok:
        pytest.fail(
            f"expected the snippet to {'succeed' if expected_ok else 'fail'}: "
            f"{outcome.message or 'it exited 0'}\n--- output ---\n{outcome.output}",
            pytrace=False,
        )
    return outcome.output


# -- lock safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [p for m in MIGRATIONS for p in (m.up, m.down)], ids=lambda p: p.name
)
def test_every_migration_sets_a_lock_timeout_before_it_takes_locks(path: Path):
    problems = drill.lock_timeout_problems(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BEGIN;\nALTER TABLE users ADD COLUMN x int;\nCOMMIT;\n", ":2: the first statement"),
        ("SET lock_timeout = 0;\nALTER TABLE users ADD COLUMN x int;\n", "is no limit"),
        ("SET lock_timeout = '1min';\nALTER TABLE users ADD COLUMN x int;\n", "is too long"),
        ("-- c\nSET lock_timeout TO '2s';\nBEGIN;\nDROP TABLE t;\nCOMMIT;\n", None),
        ("BEGIN;\nSET LOCAL lock_timeout = '3s';\nCREATE INDEX i ON t (a);\nCOMMIT;\n", None),
    ],
)
def test_the_lock_timeout_check_finds_missing_and_unbounded_timeouts(tmp_path, text, expected):
    path = tmp_path / "0001_x.up.sql"
    path.write_text(text)
    problems = drill.lock_timeout_problems(path)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.drill
def test_a_long_transaction_makes_the_migration_fail_fast_and_the_recovery_works(pg_server, admin):
    mig.apply(admin, MIGRATIONS, target=drill.CONTRACT - 1)
    contract = BY_VERSION[drill.CONTRACT]
    with drill.long_transaction(admin, "users") as reporter:
        # The contract migration needs ACCESS EXCLUSIVE on users: it waits lock_timeout, then
        # gives up instead of queueing every later query on users behind it.
        with pytest.raises(mig.MigrationError) as error:
            mig.apply(admin, MIGRATIONS)
        message = str(error.value)
        assert message.startswith(f"{rel(contract.up)}:"), message
        assert drill.LOCK_TIMEOUT_ERROR in message, message

        # The state the rollback page describes: dirty at the failed version, schema unchanged.
        assert mig.state(admin) == mig.State(drill.CONTRACT, True)
        state = common.table(_check(common.run("sql/rollback/migration_state.sql", pg_server,
                                             admin)))  # fmt: skip
        assert state == [{"version": str(drill.CONTRACT), "dirty": "t",
                          "meaning": "failed half-way: check the schema, then force the last "
                                     "good version"}]  # fmt: skip
        still_there = "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'"
        assert common.psql(admin, f"{still_there} AND column_name = 'email_verified'") == "1"
        # The pre-deployment check refuses to go on, and the blocker check names the culprit.
        pending = common.run("shell/deploy/pending_migrations.sh", pg_server, admin)
        assert f"STOP: schema_migrations says version {drill.CONTRACT} is dirty" in _check(
            pending, expected_ok=False
        )
        blockers = common.table(_check(common.run("sql/deploy/ddl_blockers.sql", pg_server, admin)))
        assert [(r["pid"], r["application_name"], r["locked_tables"]) for r in blockers] == [
            (str(reporter), "erpgo-report", "users")
        ], blockers

    # Recovery as documented: the blocker is gone, force the last good version, migrate again.
    forced = common.run(
        "shell/rollback/force_version.sh",
        pg_server,
        {**admin, "LAST_GOOD": str(drill.CONTRACT - 1)},
    )
    assert f"now version {drill.CONTRACT - 1} clean" in _check(forced)
    assert mig.state(admin) == mig.State(drill.CONTRACT - 1, False)
    assert mig.apply(admin, MIGRATIONS) == [contract]
    assert common.psql(admin, f"{still_there} AND column_name = 'email_verified'") == "0"


def test_force_version_refuses_without_the_last_good_version(pg_server, admin):
    mig.apply(admin, MIGRATIONS)
    common.psql(admin, "UPDATE schema_migrations SET dirty = true")
    outcome = common.run("shell/rollback/force_version.sh", pg_server, admin)
    assert "set LAST_GOOD to the last good version" in _check(outcome, expected_ok=False)
    assert mig.state(admin) == mig.State(MIGRATIONS[-1].version, True)


# -- expand / contract --------------------------------------------------------------------------


@pytest.mark.drill
def test_during_the_expand_phase_both_releases_work_and_agree(admin):
    mig.apply(admin, MIGRATIONS, target=drill.CONTRACT - 1)
    # The backfill: everyone who has logged in is verified, in both columns alike.
    assert (
        common.psql(admin, "SELECT count(*) FROM users WHERE email_verified")
        == common.psql(admin, "SELECT count(*) FROM users WHERE last_login_at IS NOT NULL")
        != "0"
    )
    assert common.psql(admin, DISAGREEING) == "0"
    with (
        common.connect(admin, "erpgo-api-1.4", autocommit=True) as c14,
        common.connect(admin, "erpgo-api-1.5", autocommit=True) as c15,
    ):
        old, new = drill.Release14(c14), drill.Release15(c15)
        a = old.sign_up("drill-a@example.com")
        b = new.sign_up("drill-b@example.com")
        assert (old.is_verified(b), new.is_verified(a)) == (False, False)
        old.confirm_email(a)
        new.confirm_email(b)
        assert (old.is_verified(a), new.is_verified(a)) == (True, True)
        assert (old.is_verified(b), new.is_verified(b)) == (True, True)

        # The contract step: release 1.5 keeps working, release 1.4 would not.
        mig.apply(admin, MIGRATIONS)
        c = new.sign_up("drill-c@example.com")
        new.confirm_email(c)
        assert new.is_verified(a) and new.is_verified(c)
        with pytest.raises(psycopg.errors.UndefinedColumn, match="email_verified"):
            old.is_verified(a)


@pytest.mark.drill
def test_down_then_up_loses_no_rows_outside_what_the_migration_owns(pg_server, admin):
    mig.apply(admin, MIGRATIONS)
    common.psql(admin, BACKUP.format(n=1, h=2, verified="now() - interval '1 hour'"))
    seeded = drill.data_sums(admin, {"public.users": {"email_verified_at"}})
    assert all(not v.startswith("0:") for k, v in seeded.items() if k != "ops.backup_runs"), seeded
    for migration in reversed(RELEASE):
        tables, columns = drill.owned(migration)
        before = drill.data_sums(admin, columns)
        assert mig.rollback_one(admin, MIGRATIONS) == migration
        assert mig.apply(admin, MIGRATIONS, target=migration.version) == [migration]
        after = drill.data_sums(admin, columns)
        lost = {t: (before[t], after.get(t)) for t in before
                if t not in tables and before[t] != after.get(t)}  # fmt: skip
        assert not lost, (
            f"{migration.down.name} then {migration.up.name} changed rows of tables it does "
            f"not own (rows:md5 before, after): {lost}"
        )
        assert set(before) == set(after)
        # then one step further down, for the next migration's round trip
        mig.rollback_one(admin, MIGRATIONS)
    # All the way down: the seeded data is exactly what it was before the release.
    assert mig.state(admin) == mig.State(RELEASE[0].version - 1, False)
    del seeded["ops.backup_runs"]
    assert drill.data_sums(admin, {}) == seeded


def test_rolling_back_the_contract_keeps_every_confirmation(admin):
    mig.apply(admin, MIGRATIONS)
    common.psql(admin, "UPDATE users SET email_verified_at = now() - interval '1 day' "
                      "WHERE id % 7 = 0")  # fmt: skip
    before = drill.data_sums(admin, {})
    mig.rollback_one(admin, MIGRATIONS)
    assert common.psql(admin, DISAGREEING) == "0"
    mig.apply(admin, MIGRATIONS)
    assert drill.data_sums(admin, {}) == before


# -- the procedure's snippets on states the harness does not produce ------------------------


def test_pending_migrations_lists_exactly_the_files_past_the_database_version(pg_server, admin):
    mig.apply(admin, MIGRATIONS, target=drill.EXPAND)
    output = _check(common.run("shell/deploy/pending_migrations.sh", pg_server, admin))
    expected = [f"pending: {m.up.name}" for m in MIGRATIONS if m.version > drill.EXPAND]
    assert [line for line in output.splitlines() if line.startswith("pending:")] == expected
    assert f"database at version {drill.EXPAND} (clean); {len(expected)} migration(s) pending" in (
        output
    )


def test_migrate_down_one_matches_golang_migrate_bookkeeping(pg_server, admin):
    mig.apply(admin, MIGRATIONS)
    twin = {**admin, "PGDATABASE": admin["PGDATABASE"] + "_twin"}
    common.psql({**admin, "PGDATABASE": "postgres"},
               f"CREATE DATABASE {twin['PGDATABASE']} TEMPLATE {admin['PGDATABASE']}")  # fmt: skip
    try:
        output = _check(common.run("shell/rollback/migrate_down_one.sh", pg_server, admin))
        last = MIGRATIONS[-1]
        assert f"rolled back {last.down.name}: schema at version {last.version - 1}" in output
        assert mig.rollback_one(twin, MIGRATIONS) == last
        assert mig.state(admin) == mig.state(twin) == mig.State(last.version - 1, False)
        assert mig.schema_dump(admin) == mig.schema_dump(twin)
    finally:
        common.psql({**admin, "PGDATABASE": "postgres"},
                   f"DROP DATABASE {twin['PGDATABASE']} WITH (FORCE)")  # fmt: skip


def test_migrate_down_one_waits_for_no_one_and_refuses_dirty_or_locked(pg_server, admin):
    mig.apply(admin, MIGRATIONS)
    key = mig.lock_id(admin["PGDATABASE"])
    with common.connect(admin, "migrate", autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        outcome = common.run("shell/rollback/migrate_down_one.sh", pg_server, admin)
        assert "another migration run holds the migration lock" in _check(outcome, False)
        assert mig.state(admin) == mig.State(MIGRATIONS[-1].version, False)
    common.psql(admin, "UPDATE schema_migrations SET dirty = true")
    outcome = common.run("shell/rollback/migrate_down_one.sh", pg_server, admin)
    assert "is dirty: recover from the failed migration first" in _check(outcome, False)


def test_last_verified_backup_says_stop_unless_a_recent_restore_passed(pg_server, admin):
    mig.apply(admin, MIGRATIONS)
    monitor = {**pg_server.env("monitor"), "PGDATABASE": admin["PGDATABASE"]}

    def verdict() -> str:
        out = _check(common.run("sql/deploy/last_verified_backup.sql", pg_server, monitor))
        return common.table(out)[0]["verdict"]

    insert = BACKUP
    assert verdict() == "STOP: no verified backup in ops.backup_runs"
    common.psql(admin, insert.format(n=1, h=2, verified="NULL"))  # taken, never restored
    assert verdict() == "STOP: no verified backup in ops.backup_runs"
    common.psql(admin, insert.format(n=2, h=30, verified="now() - interval '29 hours'"))
    assert verdict() == "STOP: the newest verified backup is older than 26 hours"
    common.psql(admin, insert.format(n=3, h=3, verified="now() - interval '1 hour'"))
    assert verdict() == "ok"


def test_replication_lag_says_when_no_replica_is_connected(pg_server, admin):
    monitor = {**pg_server.env("monitor"), "PGDATABASE": admin["PGDATABASE"]}
    rows = common.table(_check(common.run("sql/deploy/replication_lag.sql", pg_server, monitor)))
    assert [r["replica"] for r in rows] == [
        "none: no streaming replica is connected to this server"
    ]


def test_the_incident_message_has_every_field_the_channel_needs(pg_server, admin):
    mig.apply(admin, MIGRATIONS)
    filled = {
        "INCIDENT_ID": "INC-2041",
        "SEVERITY": "SEV1",
        "TRIGGER": "HighErrorRate (runbooks/high-error-rate.html#high-error-rate)",
        "IMPACT": "orders API answers 12 % of requests with 5xx",
        "DECISION": "roll back the app; schema stays at 9",
        "RELEASE_FROM": "1.5.0",
        "RELEASE_TO": "1.4.2",
        "COMMANDER": "A. On-call",
    }
    output = _check(
        common.run("shell/rollback/incident_message.sh", pg_server, {**admin, **filled})
    )
    assert notification.problems(output) == [], output
    fields = notification.fields(output)
    assert fields["Incident"] == "INC-2041" and fields["Release"] == "1.5.0 -> 1.4.2"
    assert fields["Schema version"] == str(MIGRATIONS[-1].version)
    # Unfilled, the template still lists every field, each marked for filling in.
    blank = _check(common.run("shell/rollback/incident_message.sh", pg_server, admin))
    missing = notification.problems(blank)
    assert not [p for p in missing if p.startswith("no ")], missing
    assert {p.split("'")[1] for p in missing} == {
        "Incident", "Severity", "Trigger", "Impact", "Decision", "Release", "Incident commander"
    }  # fmt: skip


# -- the rollback triggers name real alerts, with the rules file's severity and runbook -----


def test_rollback_triggers_match_the_alert_rules():
    page = DOCS / "procedures" / "rollback.md"
    rows = {}
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if match := TRIGGER_ROW.match(line):
            rows[match["alert"]] = (number, match["severity"], match["anchor"])
    alerts = {a.name: a for a in load_rules()}
    assert set(rows) == set(alerts), (
        f"{rel(page)}: the triggers table must list every alert of the rules file once: "
        f"missing {sorted(set(alerts) - set(rows))}, unknown {sorted(set(rows) - set(alerts))}"
    )
    for name, (number, severity, anchor) in rows.items():
        alert = alerts[name]
        assert severity == alert.labels["severity"], (
            f"{rel(page)}:{number}: {name} is {alert.labels['severity']} in {rel(alert.source)}"
        )
        assert alert.annotations["runbook_url"].endswith(f"#{anchor}"), (
            f"{rel(page)}:{number}: {name}'s runbook_url is {alert.annotations['runbook_url']}"
        )


@pytest.mark.drill
def test_replication_lag_lists_a_streaming_replica(pg_server, request):
    # A primary of its own with a real streaming standby, built by the disaster-recovery
    # page's own snippet (run as the server account, as handbook.drills.promotion does).
    from handbook.drills.local import Instance, local_pg
    from handbook.drills.promotion import STANDBY_NAME
    from handbook.pytest_plugin import POOL

    if pg_server.provider != "local":  # not a missing tool: the local servers run it
        pytest.skip(
            f"the standby runs pg_ctl on the primary's data directory: {pg_server.label} "
            "is not local"
        )
    pool = request.config.stash[POOL]
    primary = pool.start_private(pg_server.label, {"wal_level": "replica"})
    try:
        standby = Instance(local_pg(primary), primary, "standby")
        try:
            standby.start(
                "shell/dr/create_standby.sh", primary,
                STANDBY_PGDATA=str(standby.datadir), STANDBY_NAME=STANDBY_NAME,
                STANDBY_PORT=str(standby.port),
            )  # fmt: skip
            # A standby streams before it first reports what it replayed: until then
            # replay_lsn is NULL and bytes_behind empty, so wait for both.
            streaming = (
                "SELECT count(*) FROM pg_stat_replication"
                " WHERE state = 'streaming' AND replay_lsn IS NOT NULL"
            )
            common.wait_for(
                lambda: common.admin_sql(primary, streaming) == "1",
                "the standby streaming from the primary and reporting what it replayed",
            )
            monitor = primary.env("monitor")
            output = _check(common.run("sql/deploy/replication_lag.sql", primary, monitor))
            rows = common.table(output)
            assert [(r["replica"], r["state"]) for r in rows] == [(STANDBY_NAME, "streaming")], (
                output
            )
            assert int(rows[0]["bytes_behind"]) >= 0, output
        finally:
            standby.stop()
    finally:
        primary.stop()
