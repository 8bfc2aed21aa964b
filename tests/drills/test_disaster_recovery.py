"""Drills: the disaster-recovery page's backups, restores and failovers, for real.

On dedicated local servers of every PostgreSQL and Redis version found: WAL archiving,
a base backup checked against its manifest and restored into a scratch server that
must match the source table by table; point-in-time restores to a named restore point
and to a time (every row committed before the target back, none after); promotion of
a streaming standby after the primary dies (asynchronous with the standby cut off:
the acknowledged commits it never received are lost, counted, more than none;
synchronous with ``remote_apply``: none); the monitoring's part of a promotion (a real
Prometheus with conf/'s alert rules, PostgreSQLDown's ``for`` shortened as in every drill:
it fires for the crashed primary and resolves once the page's step 5 labels the promoted
server primary); a Sentinel failover of a killed Redis master.

The tests assert rows, counts and roles, never times. The times are measured and
written to ``build/dr-report.json`` (git-ignored), which the page renders beside the
production RTO/RPO targets: so a ``tox`` run before ``tox -e docs`` fills the page.
"""

from __future__ import annotations

import json
import os

import pytest

from handbook.drills import backup, failover_monitoring, objectives, promotion, sentinel
from handbook.drills.objectives import Figures
from handbook.prometheus.exporters import ExporterMissing
from handbook.prometheus.tools import ToolMissing
from handbook.pytest_plugin import unavailable
from handbook.servers import ServerPool
from handbook.servers.base import ServerUnavailable
from handbook.site import build

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [pytest.mark.covers("20.4"), pytest.mark.covers("next:drill")]

# Drills run pg_basebackup and pg_ctl on the servers' data directories: local binaries
# only, whatever --pg/--redis chose for the snippets (Docker and external servers cannot).
LOCAL = ServerPool(pg="local", redis="local", reap=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``pg_label`` / ``redis_label``: every local server version (each drill starts
    dedicated servers of that version, so no shared server is needed)."""
    for kind in ("pg", "redis"):
        if f"{kind}_label" in metafunc.fixturenames:
            labels = LOCAL.labels(kind, required=False)
            metafunc.parametrize(f"{kind}_label", labels or [f"no-{kind}"])


@pytest.fixture(scope="module")
def measured():
    """Drills that passed; their figures go to build/dr-report.json after the module."""
    passed: list[Figures] = []
    yield passed
    if passed:
        objectives.record(passed, objectives.TEST_COMMAND)


def run(label: str, drill, *args):
    if label.startswith("no-"):
        unavailable(
            f"no local {label[3:]} server: install one (.ci/run does), or name it in "
            "HANDBOOK_PG_BINDIRS / HANDBOOK_REDIS_SERVERS"
        )
    try:
        return drill(LOCAL, label, *args)
    except ServerUnavailable as exc:
        unavailable(str(exc))


def check(results: list, measured: list[Figures]) -> None:
    found = [problem for result in results for problem in result.problems()]
    assert not found, "\n".join(found)
    measured.extend(results)


@pytest.mark.drill
def test_backup_verifies_and_restores_to_a_point_in_time(pg_label, measured):
    drill = run(pg_label, backup.backup_and_pitr)
    # The scratch restore holds exactly what the source held when the backup was taken.
    assert drill.verification.restored == drill.verification.expected, drill.verification
    # Committed after the restore point / after the target time: gone. Before: all back.
    by_name, by_time = drill.by_name.restored, drill.by_time.restored
    assert backup.AFTER_NAME not in by_name, drill.by_name
    assert by_name[backup.BEFORE_NAME] == backup.BATCH, drill.by_name
    assert backup.BEFORE_NAME not in by_time, drill.by_time
    assert by_time[backup.BEFORE_TIME] == backup.BATCH, drill.by_time
    check(drill.results, measured)


@pytest.mark.drill
def test_async_promotion_loses_the_commits_the_standby_never_got(pg_label, measured):
    drill = run(pg_label, promotion.promotion, False)
    during = drill.acknowledged[promotion.DURING]
    assert during > 0, f"no commit was acknowledged while the standby was cut off: {drill}"
    assert drill.lost == during, drill
    check([drill], measured)


@pytest.mark.drill
def test_sync_promotion_loses_no_acknowledged_commit(pg_label, measured):
    drill = run(pg_label, promotion.promotion, True)
    assert drill.lost == 0, drill
    assert drill.writes_accepted, drill
    check([drill], measured)


@pytest.mark.drill
def test_monitoring_follows_the_promoted_primary_and_postgresql_down_clears(pg_label):
    """The page's steps 5 and 4 on a real Prometheus with conf/'s alert rules (the drills'
    copy: PostgreSQLDown's `for` shortened, handbook/drills/pathreport.py says why):
    PostgreSQLDown stays pending for its `for`, fires for the crashed primary and resolves
    once the promoted server's target is labelled primary; the new replica's target
    clears ExporterSeriesAbsent."""
    try:
        drill = run(pg_label, failover_monitoring.failover_monitoring)
    except (ToolMissing, ExporterMissing) as exc:
        unavailable(str(exc))
    firing, promoted, rebuilt = (drill.checks[k] for k in ("firing", "promoted", "rebuilt"))
    check = failover_monitoring.CHECK
    assert f"primary {drill.primary_target} pg_up=0" in firing, f"{check} at firing:\n{firing}"
    assert f"PostgreSQLDown firing {drill.primary_target} role=primary" in firing, firing
    assert f"primary {drill.promoted_target} pg_up=1" in promoted, f"{check}:\n{promoted}"
    assert "PostgreSQLDown" not in promoted, promoted
    assert "ExporterSeriesAbsent pending no target role=replica" in promoted, promoted
    assert f"replica {drill.replica_target} pg_up=1" in rebuilt, f"{check}:\n{rebuilt}"
    assert "no PostgreSQLDown or postgres ExporterSeriesAbsent alert" in rebuilt, rebuilt


@pytest.mark.drill
def test_sentinel_promotes_the_replica_when_the_master_dies(redis_label, measured):
    drill = run(redis_label, sentinel.sentinel_failover)
    assert drill.keys_kept == sentinel.KEYS, drill
    check([drill], measured)


def test_every_objective_names_drills_that_exist_and_figures_they_measure():
    """The page's table cannot point at a drill or a figure nobody measures."""
    names = {"backup-verification", "pitr-name", "pitr-time"}
    names |= {"promotion-async", "promotion-sync", "sentinel-failover"}
    for objective in objectives.OBJECTIVES:
        unknown = set(objective.drills) - names
        assert not unknown, (
            f"handbook/drills/objectives.py: {objective.anchor} names unknown drills {unknown}"
        )
    assert set(objectives.FIGURES) == names, (
        "handbook/drills/objectives.py: FIGURES must describe every drill"
    )


def test_report_keeps_other_entries_and_names_the_machine_not_the_host(tmp_path):
    path = tmp_path / "dr-report.json"
    first = Figures(name="pitr-name", label="pg-a", server="PostgreSQL 15.20",
                    measured={"restore_seconds": 2})  # fmt: skip
    second = Figures(name="pitr-name", label="pg-b", server="PostgreSQL 18.6",
                     measured={"restore_seconds": 1})  # fmt: skip
    objectives.record([first], "one", path)
    objectives.record([second], "two", path)
    entries = objectives.load(path)["entries"]
    assert set(entries) == {"pitr-name[pg-a]", "pitr-name[pg-b]"}
    assert entries["pitr-name[pg-a]"]["command"] == "one"
    text = path.read_text()
    assert os.uname().nodename not in text, "the report must not carry the hostname"
    assert objectives.describe(entries["pitr-name[pg-b]"]) == "restored and writable in 1.0 s"


def build_page(tmp_path, report: dict | None):
    """A one-page site showing {recovery-objectives}, with or without a drill report."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "conf.py").write_text(
        'extensions = ["myst_parser", "handbook.sphinxext"]\nsource_suffix = {".md": "markdown"}\n'
    )
    (docs / "index.md").write_text("# DR\n\n```{recovery-objectives}\n```\n")
    if report is not None:
        (tmp_path / "build").mkdir()
        (tmp_path / "build" / "dr-report.json").write_text(json.dumps(report))
    result = build(tmp_path, tmp_path / "out")
    assert result.returncode == 0, f"the page does not build:\n{result.stderr}"
    return (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def test_page_without_a_report_builds_and_says_how_to_fill_it(tmp_path):
    html = build_page(tmp_path, None)
    assert "No drill report in this build" in html
    assert objectives.COMMAND in html
    for objective in objectives.OBJECTIVES:
        assert objective.rto.split(" (")[0] in html, f"target of {objective.anchor} not shown"


def test_page_renders_measured_figures_with_machine_date_and_command(tmp_path):
    drill = Figures(
        name="promotion-async",
        label="pg-a",
        server="PostgreSQL 15.20",
        measured={"promote_to_write_seconds": 0.25, "transactions_lost": 25},
    )
    report = {"entries": {"promotion-async[pg-a]": objectives.entry(drill, objectives.COMMAND)}}
    html = build_page(tmp_path, report)
    assert "pg_promote() to first write 250 ms, acknowledged commits lost 25" in html
    assert f"{objectives.machine()['cores']} cores" in html
    assert report["entries"]["promotion-async[pg-a]"]["when"] in html
    assert "No drill report" not in html


STATUS = " {col} \n---\n {value}\n(1 row)\n"


def promotion_outcome(name: str, lost: int, during: int) -> promotion.Promotion:
    synchronous = name == "promotion-sync"
    return promotion.Promotion(
        name=name,
        label="pg-a",
        server="PostgreSQL 15.20",
        synchronous=synchronous,
        replication_status=STATUS.format(
            col="sync_state", value="sync" if synchronous else "async"
        ),
        standby_status=STATUS.format(col="in_recovery", value="t"),
        promote_output=STATUS.format(col="promoted", value="t"),
        in_recovery_after="f",
        writes_accepted=True,
        acknowledged={promotion.REPLICATED: 20, promotion.DURING: during},
        present_after_promotion={promotion.REPLICATED: 20, promotion.DURING: during - lost},
    )


@pytest.mark.parametrize(
    ("name", "lost", "during", "complaint"),
    [
        ("promotion-async", 0, 25, "asynchronous replication lost 0 commits"),
        ("promotion-async", 0, 0, "and more than none"),
        ("promotion-sync", 3, 3, "synchronous replication lost 3 acknowledged commits"),
        ("promotion-sync", 0, 0, None),
        ("promotion-async", 25, 25, None),
    ],
)
def test_promotion_checks_fail_on_the_wrong_loss(name, lost, during, complaint):
    """The checks the drills rely on do fail when the outcome is wrong."""
    drill = promotion_outcome(name, lost, during)
    assert drill.lost == lost
    found = drill.problems()
    if complaint is None:
        assert found == []
    else:
        assert any(complaint in problem for problem in found), found


def test_pitr_check_fails_when_a_row_after_the_target_comes_back():
    committed = {backup.IN_BACKUP: 1000, backup.BEFORE_TIME: 10, backup.BEFORE_NAME: 10,
                 backup.AFTER_NAME: 10}  # fmt: skip
    drill = backup.PointInTimeRestore(
        name="pitr-name",
        label="pg-a",
        server="PostgreSQL 15.20",
        target=backup.RESTORE_POINT,
        committed=committed,
        restored=committed,  # the rows committed after the restore point came back
        promoted=True,
        archiver_failures=0,
    )
    (problem,) = drill.problems()
    assert "pitr-name on pg-a: restoring to 'erpgo-before-release'" in problem
    assert "none after" in problem


def test_verification_check_fails_when_the_restore_differs():
    drill = backup.Verification(
        name="backup-verification",
        label="pg-a",
        server="PostgreSQL 15.20",
        manifest_verified=True,
        expected=" table | rows\n---\n public.drill_orders | 1000 |\n",
        restored=" table | rows\n---\n public.drill_orders | 999 |\n",
        rows=1000,
    )
    (problem,) = drill.problems()
    assert "the scratch restore differs from the source" in problem


def test_sentinel_check_fails_when_the_replica_is_not_the_new_master():
    drill = sentinel.SentinelFailover(
        name="sentinel-failover",
        label="redis-a",
        server="Redis 7.0.15",
        replicas_acknowledged=1,
        sentinel_status="master: 127.0.0.1:6380\n",
        role="slave\n",
        new_master_port=6381,
        keys_kept=sentinel.KEYS,
    )
    found = drill.problems()
    assert any("does not name :6381 as the master" in p for p in found), found
    assert any("redis_role.sh on the promoted replica" in p for p in found), found
