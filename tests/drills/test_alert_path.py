"""Drill: the whole alert path, from a failing server to a page, a diagnosis and a note.

On real programs, all on loopback (``handbook/drills/alertpath.py`` says what each copy of
a configuration changes, in one place): Debian's Prometheus loads the rules file,
postgres_exporter watches the drill's own PostgreSQL, Debian's Alertmanager routes what
fires with a copy of ``conf/alertmanager/alertmanager.yml``, and ``handbook respond``
receives it as the incident responder. Each drill breaks one thing and follows it:

- A: PostgreSQL stops. PostgreSQLDown fires after its ``for`` (shortened in the drill's
  copy, as every drilled alert's is: ``handbook/drills/pathreport.py`` SHORTENED_FOR says
  why), Alertmanager routes it to the pager and the responder, whose note links an
  anchor of the site and names the dead server.
- B: the API leaks transactions until its pool is exhausted (the pool alert's ``for``
  shortened in the drill's copy); the note names the leaked sessions.
- C: a brute-force burst of failed logins (HighFailedLoginRate, ``for`` shortened); the
  note names the attack, its address and its target.

Each records the seconds from the fault to the notification and from the notification to
the note into ``build/alert-path.json``: measured, never asserted; the verification page
shows them beside each alert's ``for``.
"""

from __future__ import annotations

import json
import re
import time

import pytest

import handbook.pytest_plugin
from handbook.drills import alertpath, auth, common, local, pathreport
from handbook.drills import pool as leaks
from handbook.drills.common import DrillError
from handbook.prometheus import exporters, monitoring
from handbook.prometheus.alerts import load_rules
from handbook.prometheus.promql import parse_duration
from handbook.prometheus.tools import ToolMissing, require_tool
from handbook.pytest_plugin import unavailable
from handbook.schema.databases import Databases
from handbook.site import build

pytestmark = [
    pytest.mark.drill,
    pytest.mark.covers("next:drill"),
    pytest.mark.covers("next:automate"),
]

# where each alert is defined, for the messages: "conf/prometheus/alert_rules.yml:106"
DEFINED = {alert.name: alert.location for alert in load_rules()}


def first_local(request, kind: str) -> str:
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    labels = [
        c.label for c in pool.candidates(kind, required=False)
        if c.provider == "local" and not c.read_only
    ]  # fmt: skip
    if not labels:
        unavailable(f"no local {kind} server for the alert path drill (see README)")
    return labels[0]


@pytest.fixture
def pool(request):
    return request.config.stash[handbook.pytest_plugin.POOL]


def monitor_env(server, database: str = "erpgo") -> dict[str, str]:
    return server.env("monitor") | {"PGDATABASE": database}


def with_redis(env: dict[str, str], redis) -> dict[str, str]:
    """``env`` and the Redis monitoring user's variables, redis-cli after psql on PATH."""
    found = {k: v for k, v in redis.env("monitor").items()}
    env = env | {k: v for k, v in found.items() if k == "REDIS_URL" or k.startswith("REDISCLI")}
    if redis.bindir:
        env["PATH"] = f"{env.get('PATH', '')}:{redis.bindir}"
    return env


def exporter(server):
    try:
        return exporters.start("postgres_exporter", server)
    except exporters.ExporterMissing as exc:
        unavailable(str(exc))


def running(targets, env, shorten=()):
    """The running path; without Prometheus or Alertmanager, a skip (a failure under CI)."""
    try:
        require_tool("alertmanager")
        monitoring.find_prometheus()
    except ToolMissing as exc:
        unavailable(str(exc))
    return alertpath.alert_path(targets, env, shorten)


def follow(stack, name: str, fault: float, cause: str, server: str, drill: str) -> str:
    """From the fault to the note: the alert fires after its `for`, Alertmanager routes
    it to the pager or chat and to the responder, the note links a real anchor and names
    ``cause``. Records the figures; returns the note."""
    drills = {d.name: d.alert for d in pathreport.DRILLS}
    assert drills.get(drill) == name, f"handbook/drills/pathreport.py: add {drill} ({name})"
    pending = alertpath.wait(lambda: stack.alert(name), f"{name} pending in Prometheus", stack)
    found = alertpath.wait(lambda: stack.note(name), f"the responder's note for {name}", stack)
    path, note = found
    received = alertpath.stamp(note, "Received")
    fired = alertpath.wait(
        lambda: (a := stack.alert(name)) and a["state"] == "firing" and a, f"{name} firing", stack
    )
    active = alertpath.datetime.fromisoformat(fired["activeAt"]).timestamp()
    waited = alertpath.drill_for(name)
    seconds = parse_duration(waited)
    assert stack.loaded_for(name) == seconds, (
        f"the drill's rules copy gives {name} a `for` of {stack.loaded_for(name)} s, "
        f"handbook/drills/pathreport.py SHORTENED_FOR says {waited}"
    )
    assert received - active >= seconds, (
        f"{DEFINED[name]}: the responder got {name} {received - active:.1f} s after it went "
        f"pending, before its for ({waited}): was Alertmanager told of a pending alert? {pending}"
    )
    receivers = stack.routed(name)
    assert alertpath.RESPONDER in receivers and len(receivers) == 2, (
        f"conf/alertmanager/alertmanager.yml: Alertmanager routed {name} to {receivers}: "
        f"expected {alertpath.RESPONDER} and the pager or the chat (continue: true)"
    )
    # and the page or the chat message went out too (to a closed port: it fails, and counts)
    integration = "pagerduty" if "pager-critical" in receivers else "slack"
    alertpath.wait(
        lambda: stack.notifications(integration) > 0,
        f"Alertmanager trying to send {name} through {integration}",
        stack,
    )
    link = alertpath.runbook_link(note)
    assert link, f"{path.name}: no runbook link in the note:\n{note}"
    problem = alertpath.anchor_problem(link)
    assert problem is None, f"{DEFINED[name]}: {name}'s runbook_url: {problem}"
    assert cause in note, (
        f"{path.name}: the incident note does not name the cause ({cause!r}): the runbook's "
        f"steps or handbook/incident/verdicts.py missed it:\n{note}"
    )
    alertpath.record(alertpath.measure(drill, name, server, fault, note))
    return note


def test_a_stopped_postgresql_pages_and_the_note_names_it(request, pool):
    srv = pool.start_private(first_local(request, "pg"))
    running_exporter = None
    try:
        running_exporter = exporter(srv)
        target = running_exporter.url.removeprefix("http://").removesuffix("/metrics")
        env = monitor_env(srv, "postgres")
        with running({"postgres": [target]}, env, ("PostgreSQLDown",)) as stack:
            alertpath.wait(
                lambda: [s for s in stack.query("pg_up") if s["value"][1] == "1"],
                "Prometheus scraping pg_up 1 from the drill's exporter",
                stack,
            )
            assert stack.alert("PostgreSQLDown") is None, "PostgreSQLDown on a healthy server"
            fault = time.time()
            local.crash(srv)
            note = follow(
                stack, "PostgreSQLDown", fault,
                f"PostgreSQL at {env['PGHOST']}:{env['PGPORT']} does not answer",
                srv.describe(), "postgres-down",
            )  # fmt: skip
            assert "## Timeline" in note
    finally:
        if running_exporter is not None:
            running_exporter.stop()
        srv.stop()


def test_a_leaked_pool_pages_and_the_note_names_the_leak(request, pool):
    srv = pool.start_private(first_local(request, "pg"))
    try:
        Databases().ensure(srv)
        pool_max = alertpath.production_pool_max()
        with (
            alertpath.ErpgoMetrics(srv) as metrics,
            running({"erpgo": [metrics.target]}, monitor_env(srv),
                    ("DatabaseConnectionPoolExhausted",)) as stack,
            leaks.sessions(srv) as s,
        ):  # fmt: skip
            s.idle(), s.idle(), s.busy()
            alertpath.wait(
                lambda: stack.query("erpgo_db_pool_connections_in_use"),
                "Prometheus scraping the pool's metrics",
                stack,
            )
            assert stack.alert("DatabaseConnectionPoolExhausted") is None, "fires on a healthy pool"
            fault = time.time()
            for order_id in range(1, int(pool_max * 0.9) + 1):  # with the busy one: above 90 %
                s.leak(order_id)
            follow(
                stack, "DatabaseConnectionPoolExhausted", fault,
                "session(s) idle in transaction (leaked): erpgo-api", srv.describe(),
                "pool-exhaustion",
            )  # fmt: skip
    finally:
        srv.stop()


BURST_SQL = f"""
INSERT INTO login_attempts (user_id, username, ip, user_agent, success, reason, attempted_at)
SELECT u.id, u.username, '{auth.BRUTE_FORCE_IP}', 'python-requests/2.31', false, 'bad_password',
       now() - interval '2 minutes' + n * interval '0.5 seconds'
  FROM users AS u, generate_series(1, {auth.BRUTE_FORCE_TRIES}) AS n
 WHERE u.username = '{auth.BRUTE_FORCE_ACCOUNT}';
"""


def test_a_brute_force_burst_pages_and_the_note_names_the_attack(request, pool):
    srv = pool.start_private(first_local(request, "pg"))
    try:
        Databases().ensure(srv)
        redis = pool.get(first_local(request, "redis"))
        env = with_redis(monitor_env(srv), redis)
        with (
            alertpath.ErpgoMetrics(srv) as metrics,
            running({"erpgo": [metrics.target]}, env, ("HighFailedLoginRate",)) as stack,
        ):
            alertpath.wait(
                lambda: stack.query("count_over_time(erpgo_auth_login_failures_total[1m]) > 1"),
                "Prometheus scraping the login failures twice",
                stack,
            )
            assert stack.alert("HighFailedLoginRate") is None, "fires on normal traffic"
            fault = time.time()
            common.psql(srv.env("admin") | {"PGDATABASE": "erpgo"}, BURST_SQL)
            follow(
                stack, "HighFailedLoginRate", fault,
                f"brute force from {auth.BRUTE_FORCE_IP} on {auth.BRUTE_FORCE_ACCOUNT}",
                srv.describe(), "brute-force",
            )  # fmt: skip
    finally:
        srv.stop()


# -- the pieces, without waiting -----------------------------------------------------------


def test_the_drills_rules_copy_changes_only_the_listed_for(tmp_path):
    copy = alertpath.rules_copy(tmp_path, tuple(alertpath.SHORTENED_FOR))
    original = alertpath.RULES_FILE.read_text().splitlines()
    changed = [
        (a, b) for a, b in zip(original, copy.read_text().splitlines(), strict=True) if a != b
    ]
    assert len(changed) == len(alertpath.SHORTENED_FOR), changed
    expected = sorted(
        f"for: {value}  # drill: {alertpath.for_of(name)} in production"
        for name, (value, _) in alertpath.SHORTENED_FOR.items()
    )
    found = sorted(line.strip().split("; shortened because ")[0] for _, line in changed)
    assert found == expected, changed
    assert alertpath.rules_copy(tmp_path) == alertpath.RULES_FILE, "nothing to shorten: as is"


def test_a_runbook_url_without_its_anchor_is_found(tmp_path):
    good = (
        "https://docs.erpgo.com/handbook/runbooks/database-connectivity.html#database-connectivity"
    )
    assert alertpath.anchor_problem(good) is None
    bad = good.replace("#database-connectivity", "#no-such-anchor")
    assert "has no target (no-such-anchor)=" in str(alertpath.anchor_problem(bad))
    gone = good.replace("database-connectivity.html", "nowhere.html")
    assert "does not exist" in str(alertpath.anchor_problem(gone))


def test_the_figures_are_merged_into_the_report(tmp_path):
    path = tmp_path / "alert-path.json"
    first = alertpath.Measured("postgres-down", "PostgreSQLDown", "PostgreSQL 15", 0, 75, 78)
    alertpath.record(first, "one", path)
    second = alertpath.Measured("brute-force", "HighFailedLoginRate", "PostgreSQL 15", 0, 30, 31)
    alertpath.record(second, "two", path)
    entries = pathreport.load(path)["entries"]
    assert set(entries) == {"postgres-down", "brute-force"}
    assert entries["postgres-down"]["for"] == "1m", entries["postgres-down"]
    assert entries["postgres-down"]["drill_for"] == "10s", entries["postgres-down"]
    assert entries["brute-force"]["drill_for"] == "15s", entries["brute-force"]
    assert entries["postgres-down"]["measured"] == {
        "fault_to_notification_seconds": 75.0,
        "notification_to_note_seconds": 3.0,
    }


def test_a_drill_that_never_sees_its_alert_fails_naming_it():
    class Nothing:
        def log(self):
            return "(the programs' logs)"

    with pytest.raises(DrillError, match="NeverFires pending in Prometheus did not happen"):
        alertpath.wait(lambda: None, "NeverFires pending in Prometheus", Nothing(), timeout=0.5)


def build_page(tmp_path, report: dict | None) -> str:
    """A one-page site showing {alert-path}, with or without the drills' report (and
    without a rules file: the production `for` then comes from the report)."""
    docs = tmp_path / "docs"
    docs.mkdir(parents=True)
    (docs / "conf.py").write_text(
        'extensions = ["myst_parser", "handbook.sphinxext"]\nsource_suffix = {".md": "markdown"}\n'
    )
    (docs / "index.md").write_text("# Alert path\n\n```{alert-path}\n```\n")
    if report is not None:
        (tmp_path / "build").mkdir()
        (tmp_path / "build" / "alert-path.json").write_text(json.dumps(report))
    result = build(tmp_path, tmp_path / "out")
    assert result.returncode == 0, f"the page does not build:\n{result.stderr}"
    return re.sub(r"<[^>]+>", " ", (tmp_path / "out" / "index.html").read_text())


@pytest.mark.usefixtures("site_tools")
def test_the_page_shows_the_figures_beside_each_for_or_says_they_are_missing(tmp_path):
    text = " ".join(build_page(tmp_path / "none", None).split())
    assert "No alert-path report in this build" in text, text
    for drill in pathreport.DRILLS:
        assert f"{drill.alert} " in text, f"{drill.alert} missing from the table"
    assert text.count("not measured in this build") == 2 * len(pathreport.DRILLS), text
    assert "15s" in text, "the drills' shortened for must show without a report"

    path = tmp_path / "alert-path.json"
    alertpath.record(
        alertpath.Measured("postgres-down", "PostgreSQLDown", "PostgreSQL 15", 0, 73.04, 73.2),
        "pytest", path,
    )  # fmt: skip
    text = " ".join(build_page(tmp_path / "one", json.loads(path.read_text())).split())
    shown = text.split("PostgreSQLDown", 1)[1].split("DatabaseConnectionPoolExhausted", 1)[0]
    assert "1m / 10s" in shown and "73.0 s 160 ms" in shown, shown
    assert text.count("not measured in this build") == 2 * (len(pathreport.DRILLS) - 1), text
