"""Meta-monitoring: the four alerts that keep the six others honest, on the real tools.

- Routing: ``amtool`` sends each meta alert where its runbook says (the Watchdog to
  the dead man's switch only, a failing pager to the chat, a failing chat to the
  pager), and the routes the runbook pages render (``Registry.route``) are amtool's.
- Alertmanager's own metric names exist on a real Alertmanager's ``/metrics``.
- The alerts without a threshold (absent(), the Watchdog): their unit tests fail
  when the rule drifts, as the thresholded ones' do in tests/test_alert_rules.py.
- The drill: a real Prometheus started with the rules file, a real Alertmanager
  started from ``conf/alertmanager/alertmanager.yml`` and a real redis_exporter, all
  on loopback. The postgres exporters are dead ports: TargetDown and
  ExporterSeriesAbsent fire for exactly them; the Watchdog reaches a loopback
  endpoint standing in for the dead man's switch; Alertmanager's pager and chat
  reject its credentials (the runbook's first cause: PagerDuty's 400 for an invalid
  routing key, Slack's 403 for a revoked webhook), so AlertmanagerNotificationsFailing
  fires. The runbooks'
  snippets run against that stack and point at the cause. Stopping the
  redis_exporter fires its alerts, starting it again clears them.
- The metrics page's onboarding script runs on a real git repository.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from handbook import snippet as snippets
from handbook.confcheck.names import Registry
from handbook.paths import CONF, ROOT, SNIPPETS, rel
from handbook.prometheus import exporters, monitoring
from handbook.prometheus.alertmanager import ALERTMANAGER_CONFIG, amtool_routes, loopback_config
from handbook.prometheus.alerts import EXPECTED_ALERTS, RULES_FILE, load_rules
from handbook.prometheus.promtool import promtool_test_rules
from handbook.prometheus.ruletests import ABSENCE_CASES, ALWAYS_CASES, rule_test_files
from handbook.prometheus.tools import ToolMissing, require_tool
from handbook.pytest_plugin import POOL, unavailable
from handbook.servers import cleanup
from handbook.servers.ports import free_port

pytestmark = [pytest.mark.covers("20.1")]

META = ("TargetDown", "ExporterSeriesAbsent", "Watchdog", "AlertmanagerNotificationsFailing")
ALERTS = {alert.name: alert for alert in load_rules()}
DEADMAN = "deadmans-switch"
# The drill copy's `for`: seconds instead of minutes, so that the drill runs in seconds.
# The promtool unit tests pin the real durations (5m) in conf/prometheus/tests/.
DRILL_FOR = "2s"
WAIT = 90  # seconds a drill condition may take before the test fails, naming it


def need(tool: str) -> str:
    try:
        return require_tool(tool)
    except ToolMissing as exc:
        unavailable(str(exc))


def need_program(name: str, package: str) -> None:
    if subprocess.run(["which", name], capture_output=True, check=False).returncode != 0:
        unavailable(f"{name} not found: apt-get install {package}")


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"alertname": "Watchdog", "severity": "none", "team": "platform"}, [DEADMAN]),
        ({"alertname": "TargetDown", "severity": "warning", "team": "platform"}, ["chat-warnings"]),
        (
            {"alertname": "ExporterSeriesAbsent", "severity": "critical", "team": "platform"},
            ["pager-critical"],
        ),
        (
            {"alertname": "AlertmanagerNotificationsFailing", "severity": "critical",
             "integration": "pagerduty"},
            ["chat-warnings"],
        ),
        (
            {"alertname": "AlertmanagerNotificationsFailing", "severity": "critical",
             "integration": "webhook"},
            ["chat-warnings"],
        ),
        (
            {"alertname": "AlertmanagerNotificationsFailing", "severity": "critical",
             "integration": "slack"},
            ["pager-critical"],
        ),
    ],
    ids=["watchdog", "target-down", "absent", "pager-fails", "switch-fails", "chat-fails"],
)  # fmt: skip
def test_meta_alerts_go_where_their_runbooks_say(labels, receivers):
    need("amtool")
    assert amtool_routes(labels) == receivers, f"{rel(ALERTMANAGER_CONFIG)}: {labels}"


def test_the_rendered_routes_are_amtools():
    """The runbook headers say who is told from Registry.route: it must be amtool's answer."""
    need("amtool")
    registry = Registry()
    cases = [alert.notification_labels() for alert in ALERTS.values()]
    cases += [
        {**ALERTS["AlertmanagerNotificationsFailing"].notification_labels(), "integration": i}
        for i in ("pagerduty", "slack", "webhook")
    ]
    cases += [{"alertname": "Unknown"}, {"severity": "warning", "alertname": "X"}]
    for labels in cases:
        assert registry.route(labels) == amtool_routes(labels), labels


def test_the_watchdog_reaches_only_the_switch_and_every_notification_names_the_channel():
    registry = Registry()
    assert registry.notifies(DEADMAN) == ["the dead man's switch"]
    assert set(registry.channels) == {"#erpgo-oncall"}, (
        f"{rel(ALERTMANAGER_CONFIG)}: the pages name #erpgo-oncall as the on-call channel"
    )
    assert "#erpgo-oncall" in registry.notifies("pager-critical")


def test_every_alert_has_a_grafana_panel():
    registry = Registry()
    for name in ALERTS:
        assert registry.panels_for(name), (
            f"conf/grafana/dashboards/: no panel title names {name}: the runbook links to one"
        )


def test_the_meta_alerts_are_expected_with_their_runbooks():
    for name in META:
        assert name in EXPECTED_ALERTS, f"handbook/prometheus/alerts.py: add {name}"
        assert ALERTS[name].runbook_target() == (
            EXPECTED_ALERTS[name].page,
            EXPECTED_ALERTS[name].anchor,
        )


# ------------------------------------------------------------------ alertmanager names


def test_alertmanagers_own_metric_names_exist(tmp_path):
    """conf/metrics/exporters.yml lists alertmanager_* names: a real Alertmanager has them."""
    with running_alertmanager(tmp_path, ALERTMANAGER_CONFIG) as url:
        text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    names = exporters.sample_names(text)
    used = {n for n in exporters.used_names() if n.startswith("alertmanager_")}
    assert used, "no rule or snippet uses an alertmanager_* name"
    for name in sorted(used):
        assert name in names, (
            f"{name} is not on Alertmanager's /metrics ({exporters.used_names()[name]})"
        )
    for integration in ("pagerduty", "slack", "webhook"):
        assert f'alertmanager_notifications_total{{integration="{integration}"}}' in text


# ----------------------------------------------------- alerts without a threshold drift


def _rules() -> dict:
    return yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


def _rule(data: dict, name: str) -> dict:
    return next(r for g in data["groups"] for r in g["rules"] if r.get("alert") == name)


def _drop_redis(rule: dict) -> None:
    rule["expr"] = rule["expr"].rsplit("or", 1)[0].strip()


MUTATIONS = [
    ("ExporterSeriesAbsent", "the redis exporter forgotten", _drop_redis,
     "fires when the series is absent"),
    ("ExporterSeriesAbsent", "for one evaluation longer", lambda r: r.update({"for": "6m"}),
     "silent until for has elapsed"),
    ("ExporterSeriesAbsent", "for one evaluation shorter", lambda r: r.update({"for": "4m"}),
     "silent until for has elapsed"),
    ("ExporterSeriesAbsent", "absent of any job", lambda r: r.update(
        {"expr": 'absent(pg_up{job="postgres"}) or absent(redis_up{job="redis"})'}),
     "fires when the series is absent"),
    ("Watchdog", "a for of a minute", lambda r: r.update({"for": "1m"}),
     "fires at every evaluation"),
    ("Watchdog", "never firing", lambda r: r.update({"expr": "vector(1) < 0"}),
     "fires at every evaluation"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "what", "change", "case"), MUTATIONS, ids=[f"{m[0]}-{m[1]}" for m in MUTATIONS]
)
def test_the_unit_tests_fail_when_a_rule_without_threshold_drifts(
    tmp_path, name, what, change, case
):
    need("promtool")
    assert case in ABSENCE_CASES + ALWAYS_CASES
    data = _rules()
    change(_rule(data, name))
    mutated = tmp_path / "alert_rules.yml"
    mutated.write_text(yaml.safe_dump(data, sort_keys=False, width=1000), encoding="utf-8")
    result = promtool_test_rules(*rule_test_files(), rules_file=mutated, only=[name])
    assert not result.ok, f"{name}: the unit tests still pass with {what}"
    assert any(f'"{name}: {case}' in f.message for f in result.findings), result.report()


# --------------------------------------------------------------------------- the drill


class Sink(BaseHTTPRequestHandler):
    """Stands in for the dead man's switch: records each webhook Alertmanager posts."""

    received: list[tuple[str, dict]] = []  # noqa: RUF012 - replaced per server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.headers.get("Authorization", ""), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


class Rejecting(BaseHTTPRequestHandler):
    """Stands in for PagerDuty and Slack refusing the drill's credentials, with their
    own answers to a rotated routing key and a revoked webhook. Alertmanager does not
    retry a 4xx: the failure is counted at once. A closed port is retried for ten
    seconds (Alertmanager's minimum notify timeout) before it counts."""

    ANSWERS = {  # noqa: RUF012 - read only
        "/v2/enqueue": (400, b'{"status":"invalid event","errors":["Invalid routing key"]}'),
        "/slack": (403, b"invalid_token"),
    }

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body = self.ANSWERS.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def running_alertmanager(tmp_path: Path, config: Path):
    """A real Alertmanager on a free loopback port, stopped on the way out."""
    binary = need("alertmanager")
    port = free_port()
    log_path = tmp_path / "alertmanager.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "alertmanager answers /-/ready",
            lambda: _get(f"{url}/-/ready") is not None or process.poll() is not None,
            log=log_path,
        )
        if process.poll() is not None:
            pytest.fail(f"alertmanager did not start:\n{log_path.read_text()}")
        yield url
    finally:
        process.terminate()
        cleanup.end_process(process, timeout=10)  # then SIGTERM again, then SIGKILL


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.read()
    except OSError:
        return None


def wait_for(what: str, check: Callable[[], object], log: Path | None = None, timeout=WAIT):
    """Poll ``check`` until it returns something true; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            pytest.fail(f"drill: {what} never happened within {timeout}s\n{tail}", pytrace=False)
        time.sleep(0.25)


def drill_rules(path: Path) -> Path:
    """The rules file with the meta alerts' `for` shortened to DRILL_FOR (see above)."""
    data = _rules()
    for name in META:
        rule = _rule(data, name)
        if "for" in rule:
            rule["for"] = DRILL_FOR
    path.write_text(
        "# Drill copy of conf/prometheus/alert_rules.yml: the meta-monitoring alerts' `for`\n"
        f"# is {DRILL_FOR} instead of minutes so that the drill takes seconds; the promtool\n"
        "# unit tests pin the real durations.\n"
        + yaml.safe_dump(data, sort_keys=False, width=1000),
        encoding="utf-8",
    )
    return path


def drill_alertmanager(tmp_path: Path, sink: str, rejecting: str) -> Path:
    """conf's alertmanager.yml with its secrets in temp files, the pager and chat pointing
    at ``rejecting`` (see Rejecting), the switch at the sink, and every wait cut to a
    second."""
    data = loopback_config(tmp_path, rejecting, lambda name: sink, "drill-token")

    def fast(route: dict) -> None:
        route.update(group_wait="0s", group_interval="1s", repeat_interval="1s")
        for child in route.get("routes") or []:
            fast(child)

    fast(data["route"])
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def drill_prometheus(tmp_path: Path, rules: Path, am: str, dead: dict, redis_target: str) -> Path:
    """conf's scrape jobs and role labels, every target on loopback, 1 s intervals."""
    conf = yaml.safe_load(monitoring.PROMETHEUS_CONF.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in conf["scrape_configs"]}
    postgres = [
        {"targets": [dead[static.get("labels", {}).get("role", "")]], "labels": static["labels"]}
        for static in jobs["postgres"]["static_configs"]
    ]
    data = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am]}]}]},
        "scrape_configs": [
            {"job_name": "postgres", "static_configs": postgres},
            {"job_name": "redis", "static_configs": [{"targets": [redis_target]}]},
            {"job_name": "alertmanager", "static_configs": [{"targets": [am]}]},
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Stack:
    prometheus: monitoring.Prometheus
    alertmanager: str
    redis: object
    exporter: exporters.Running
    dead: dict[str, str]  # role -> the dead postgres exporter address
    received: list = field(default_factory=list)
    log: Path | None = None

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus.port}"

    def firing(self) -> list[dict]:
        alerts = self.prometheus.api("/api/v1/alerts")["alerts"]
        return [a["labels"] for a in alerts if a["state"] == "firing"]

    def firing_named(self, name: str) -> list[dict]:
        return [labels for labels in self.firing() if labels["alertname"] == name]

    def query(self, snippet_path: str) -> list[dict]:
        """A PromQL snippet's expression, evaluated by the drill's Prometheus."""
        body = snippets.parse(SNIPPETS / snippet_path).body()
        return self.prometheus.api("/api/v1/query?" + urllib.parse.urlencode({"query": body}))[
            "result"
        ]

    def run(self, snippet_path: str, **env: str) -> str:
        """A shell snippet of the runbooks, run with bash as the reader runs it."""
        done = subprocess.run(
            ["bash", str(SNIPPETS / snippet_path)],
            env={"PATH": "/usr/bin:/bin", "PROMETHEUS_URL": self.prometheus_url,
                 "ALERTMANAGER_URL": self.alertmanager, **env},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"snippets/{snippet_path}: exit {done.returncode}\n{done.stderr}"
        )
        return done.stdout


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory) -> Stack:
    tmp = tmp_path_factory.mktemp("meta-drill")
    try:
        monitoring.find_prometheus()
    except ToolMissing as exc:
        unavailable(str(exc))
    need("amtool")
    for program, package in (("curl", "curl"), ("jq", "jq")):
        need_program(program, package)
    pool = request.config.stash[POOL]
    labels = [c.label for c in pool.candidates("redis", required=False) if not c.read_only]
    if not labels:
        unavailable("no Redis server to start a redis_exporter against (see README)")
    redis = pool.get(labels[0])
    try:
        exporter = exporters.start("redis_exporter", redis)
    except exporters.ExporterMissing as exc:
        unavailable(str(exc))
    dead = {"primary": f"127.0.0.1:{free_port()}", "replica": f"127.0.0.1:{free_port()}"}
    Sink.received = []
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    rejecting = ThreadingHTTPServer(("127.0.0.1", 0), Rejecting)  # the pager and the chat
    threading.Thread(target=rejecting.serve_forever, daemon=True).start()
    prometheus = drilled = None
    try:
        am_config = drill_alertmanager(
            tmp,
            f"http://127.0.0.1:{sink.server_port}/",
            f"http://127.0.0.1:{rejecting.server_port}",
        )
        with running_alertmanager(tmp, am_config) as am_url:
            am = am_url.removeprefix("http://")
            redis_target = exporter.url.removeprefix("http://").removesuffix("/metrics")
            rules = drill_rules(tmp / "alert_rules.yml")
            config = drill_prometheus(tmp, rules, am, dead, redis_target)
            # An alert fired before Prometheus has discovered its Alertmanager (the first
            # seconds) is sent again only after the resend delay, a minute by default.
            prometheus = monitoring.boot_prometheus(config, ("--rules.alert.resend-delay=1s",))
            drilled = Stack(prometheus, am_url, redis, exporter, dead, Sink.received)
            yield drilled
    finally:
        if prometheus is not None:
            prometheus.stop()
        for server in (sink, rejecting):
            server.shutdown()
            server.server_close()
        (drilled.exporter if drilled else exporter).stop()


def test_the_watchdog_reaches_the_dead_mans_switch(stack):
    """Prometheus fires it, Alertmanager holds it and delivers it to the switch, only it."""
    wait_for("the switch receives the Watchdog", lambda: stack.received)
    for authorization, body in stack.received:
        assert authorization == "Bearer drill-token", "the switch's token is not sent"
        assert {a["labels"]["alertname"] for a in body["alerts"]} == {"Watchdog"}, body
    (sample,) = stack.query("promql/meta/watchdog_firing.promql")
    assert sample["value"][1] == "1"
    out = stack.run("shell/meta/watchdog_in_alertmanager.sh")
    assert "Watchdog" in out and "The alerting pipeline works" in out, out


def test_dead_postgres_exporters_fire_target_down_and_exporter_series_absent(stack):
    def fired():
        down = {a["instance"] for a in stack.firing_named("TargetDown")}
        absent = {(a["job"], a.get("role", "")) for a in stack.firing_named("ExporterSeriesAbsent")}
        everything = down >= set(stack.dead.values()) and len(absent) >= 2
        return (down, absent) if everything else None

    down, absent = wait_for("TargetDown and ExporterSeriesAbsent fire", fired)
    assert down == set(stack.dead.values()), "TargetDown must name exactly the dead exporters"
    assert absent == {("postgres", "primary"), ("postgres", "replica")}, (
        "ExporterSeriesAbsent must name the missing roles, and not the redis job that reports"
    )
    # Step 1 of target-down: the postgres job has all its targets down, redis none.
    shares = {s["metric"]["job"]: float(s["value"][1]) for s in stack.query(
        "promql/meta/targets_down_by_job.promql")}  # fmt: skip
    assert shares == {"postgres": 1.0}, shares
    # Step 2: the scrape errors name both dead addresses and why.
    errors = stack.run("shell/meta/scrape_errors.sh")
    for address in stack.dead.values():
        assert any(
            address in line and "connection refused" in line for line in errors.splitlines()
        ), errors
    # exporter-series-absent, step 1: the targets are there, down; step 2: scraped, down.
    ups = {
        (s["metric"]["job"], s["metric"]["instance"]): s["value"][1]
        for s in stack.query("promql/meta/exporter_targets.promql")
    }
    assert ups[("postgres", stack.dead["primary"])] == "0" and list(ups.values()).count("1") == 1
    targets = stack.run("shell/meta/job_targets.sh", JOB="postgres")
    assert f"scraped {stack.dead['primary']} role=primary health=down" in targets, targets
    assert "no target at all" in stack.run("shell/meta/job_targets.sh", JOB="pgbouncer-drill")


def test_failing_notifications_fire_their_alert(stack):
    def fired():
        return {a["integration"] for a in stack.firing_named("AlertmanagerNotificationsFailing")}

    integrations = wait_for("AlertmanagerNotificationsFailing fires", fired)
    assert integrations <= {"pagerduty", "slack"}, integrations
    counters = stack.run("shell/meta/notification_counters.sh")
    failed = [
        line for line in counters.splitlines()
        if line.startswith("alertmanager_notifications_failed_total") and not line.endswith(" 0")
    ]  # fmt: skip
    assert failed, counters
    ratios = stack.query("promql/meta/notification_failure_ratio.promql")
    assert any(float(s["value"][1]) > 0.01 for s in ratios), ratios


def test_a_stopped_exporter_fires_its_alerts_and_clears_when_back(stack):
    target = stack.exporter.url.removeprefix("http://").removesuffix("/metrics")
    port = int(target.rsplit(":", 1)[1])
    stack.exporter.stop()

    def redis_alerts():
        down = [a for a in stack.firing_named("TargetDown") if a["instance"] == target]
        absent = [a for a in stack.firing_named("ExporterSeriesAbsent") if a["job"] == "redis"]
        return bool(down and absent)

    wait_for(
        "TargetDown and ExporterSeriesAbsent fire for the stopped redis_exporter", redis_alerts
    )
    stack.exporter = exporters.start("redis_exporter", stack.redis, port=port)
    wait_for("the redis alerts clear once the exporter answers again", lambda: not redis_alerts())
    # the postgres exporters are still dead: their alerts stay
    assert stack.firing_named("ExporterSeriesAbsent")


# ------------------------------------------------------------ the onboarding metric


def git(repo: Path, *args: str, email: str = "lead@erpgo.com", when: str = "") -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(repo),
        "GIT_AUTHOR_NAME": email.split("@")[0],
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": email.split("@")[0],
        "GIT_COMMITTER_EMAIL": email,
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
    }
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def test_the_onboarding_metric_counts_days_to_the_first_commit(tmp_path):
    """snippets/shell/meta/first_commit_days.sh on a real repository and start dates."""
    need_program("git", "git")
    repo = tmp_path / "erpgo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    history = [
        ("lead@erpgo.com", "2026-01-10T09:00:00Z"),
        ("ana@erpgo.com", "2026-11-05T16:00:00Z"),  # started 2026-11-02: 3 days
        ("ana@erpgo.com", "2026-11-20T10:00:00Z"),
        ("anabel@erpgo.com", "2026-11-03T10:00:00Z"),  # a longer address, not Ana's
    ]
    for email, when in history:
        git(repo, "commit", "-q", "--allow-empty", "-m", "work", email=email, when=when)
    git(repo, "checkout", "-q", "-b", "feature", when="2026-11-25T10:00:00Z")
    git(repo, "commit", "-q", "--allow-empty", "-m", "on a branch", email="bo@erpgo.com",
        when="2026-11-25T10:00:00Z")  # fmt: skip
    git(repo, "checkout", "-q", "main")
    starts = tmp_path / "starts.txt"
    starts.write_text(
        "ana@erpgo.com 2026-11-02\nbo@erpgo.com 2026-11-20\ncy@erpgo.com 2026-11-30\n"
    )
    done = subprocess.run(
        ["bash", str(SNIPPETS / "shell/meta/first_commit_days.sh")],
        cwd=repo, env={"PATH": "/usr/bin:/bin", "STARTS": str(starts)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ana@erpgo.com: first commit 2026-11-05, 3 days after starting on 2026-11-02",
        "bo@erpgo.com: first commit 2026-11-25, 5 days after starting on 2026-11-20",
        "cy@erpgo.com: no commit yet (started 2026-11-30)",
    ]


def test_every_meta_snippet_is_shown_and_run_here():
    """The lint-only snippets under snippets/shell/meta/ name this file as their test."""
    text = Path(__file__).read_text(encoding="utf-8")
    for path in sorted((SNIPPETS / "shell" / "meta").glob("*.sh")):
        snippet = snippets.parse(path)
        assert snippet.verified_by == rel(Path(__file__)), f"{snippet.name}: verified-by"
        assert path.relative_to(SNIPPETS).as_posix() in text, f"{snippet.name} is not run here"
    assert (CONF / "alertmanager" / "alertmanager.yml").exists() and ROOT.exists()
