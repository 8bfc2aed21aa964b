"""The whole alert path on real programs: a fault, Prometheus, Alertmanager, ``handbook respond``.

A drill starts, all on 127.0.0.1 and free ports: Debian's ``prometheus`` loading a copy
of ``conf/prometheus/alert_rules.yml`` whose drilled alert has the shortened ``for`` of
:data:`SHORTENED_FOR` (the one place, with the reasons), the real exporters against the
drill's servers, Debian's ``prometheus-alertmanager`` loading a copy of
``conf/alertmanager/alertmanager.yml`` (:func:`alertmanager_config` says what the copy
changes), and ``handbook respond`` as the incident responder's webhook. It then breaks
something and follows the alert: Prometheus fires it after its ``for``, Alertmanager
routes it, the responder writes a note, and the note names the cause. :func:`measure`
reads from the note how long each leg took, and :func:`record` keeps those figures in
``build/alert-path.json`` (``pathreport``; measured, never asserted), which
``{alert-path}`` (``handbook/sphinxext/alertpath.py``) renders on the verification page
beside each alert's ``for``.

ERPGo itself is not in this repository. Its pool and login metrics (``erpgo_db_pool_*``,
``erpgo_auth_login_failures_total``, conf/metrics/erpgo.yml) are played by
:class:`ErpgoMetrics`: a ``/metrics`` page computed at every scrape from the real server
the drill's sessions use (the ``erpgo-api`` sessions of ``pg_stat_activity``; the failed
rows of ``login_attempts``), as ERPGo's own pool and login handler count them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import psycopg
import yaml

from handbook.drills import pathreport
from handbook.drills.common import DrillError, connect
from handbook.drills.pathreport import (
    REPORT,
    SHORTENED_FOR,
    TEST_COMMAND,
    Measured,
)
from handbook.paths import CONF, DOCS, ROOT, rel
from handbook.prometheus import monitoring
from handbook.prometheus.alertmanager import loopback_config
from handbook.prometheus.alerts import RULES_FILE, load_rules, split_runbook_url
from handbook.prometheus.tools import require_tool
from handbook.servers import cleanup, scratch
from handbook.servers.base import Server
from handbook.servers.ports import HOST, free_port
from handbook.site import DEFAULT_BASE_URL

PRODUCTION_ENV = CONF / "erpgo" / "production.env"
RESPONDER = "incident-responder"  # the receiver conf/alertmanager/alertmanager.yml names

# The only change to conf/prometheus/prometheus.yml's timing, and why: production scrapes
# and evaluates every 15 s; the drill scrapes every 2 s and evaluates every second so that
# an alert's state follows the fault within seconds, and the figures measure the `for` and
# Alertmanager's waits, not the scrape grid. Not 1 s: postgres_exporter takes a second
# (its own retry) to answer pg_up 0 for a server that refuses it, which a 1 s timeout
# would turn into a failed scrape (up 0, no pg_up at all). The targets are the drill's own.
SHORTENED_INTERVALS = {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"}
# Prometheus resends a firing alert to Alertmanager after this delay (1 m by default); an
# alert that fires before Prometheus has discovered its Alertmanager would wait for it.
RESEND_DELAY = "--rules.alert.resend-delay=1s"

# The only change to conf/alertmanager/alertmanager.yml's waits, and why: the top route's
# group_wait, which warnings inherit on their way to the chat, is 30 s in production
# (warnings are batched); the drill waits for the chat message to be attempted, which
# any group_wait proves, so it gets the 10 s of the responder's and the pager's routes and
# arrives with the note. The responder's route, which the figures measure, is unchanged.
CHAT_GROUP_WAIT = "10s"

WAIT = 300.0  # seconds a leg of the path may take before the drill fails, naming it


# -- configuration copies ------------------------------------------------------------------


def rules_copy(directory: Path, shorten: tuple[str, ...] = ()) -> Path:
    """The rules file itself, or a copy in ``directory`` where the alerts ``shorten`` have
    the ``for`` of :data:`SHORTENED_FOR`, with its reason written beside it. Every drill
    that waits for an alert's ``for`` loads its rules from here."""
    if not shorten:
        return RULES_FILE
    lines = RULES_FILE.read_text(encoding="utf-8").splitlines()
    current, done = None, set()
    for index, line in enumerate(lines):
        found = re.match(r"\s*- alert:\s*(\S+)", line)
        if found:
            current = found[1]
        if current in shorten and re.match(r"\s*for:\s*\S+\s*$", line):
            value, reason = SHORTENED_FOR[current]
            indent = line[: len(line) - len(line.lstrip())]
            lines[index] = f"{indent}for: {value}  # drill: {line.split(':', 1)[1].strip()} "
            lines[index] += f"in production; shortened because {reason}"
            done.add(current)
            current = None
    missing = sorted(set(shorten) - done)
    if missing:
        raise DrillError(f"{rel(RULES_FILE)}: no `for:` found for {', '.join(missing)}")
    path = directory / "alert_rules.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prometheus_config(
    directory: Path, rules: Path, alertmanager: str, targets: dict[str, list[str]]
) -> Path:
    """conf/prometheus/prometheus.yml with :data:`SHORTENED_INTERVALS`, the rules given, the
    drill's Alertmanager, and the jobs of ``targets`` (job -> addresses) scraping loopback.
    Each job keeps conf's labels (the postgres job's ``role``)."""
    conf = yaml.safe_load(monitoring.PROMETHEUS_CONF.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in conf["scrape_configs"]}
    scrape = []
    for name, addresses in targets.items():
        configs = (jobs.get(name) or {}).get("static_configs") or [{}]
        labels = configs[0].get("labels")
        static = {"targets": addresses} | ({"labels": labels} if labels else {})
        scrape.append({"job_name": name, "static_configs": [static]})
    data = {
        "global": (conf.get("global") or {}) | SHORTENED_INTERVALS,
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": scrape,
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def alertmanager_config(directory: Path, responder_url: str, token: str) -> Path:
    """A copy of conf/alertmanager/alertmanager.yml whose receivers point at loopback.

    The only changes: the secret files are the drill's own (a made-up PagerDuty key, a
    Slack webhook URL and the switch's token), PagerDuty's and Slack's URLs and the dead
    man's switch are a closed loopback port (so pages and chat fail fast, as they would
    with nobody listening), the incident responder's URL is the drill's ``handbook
    respond``, and the top route's group_wait is :data:`CHAT_GROUP_WAIT`. Routes, the
    other waits, inhibitions and templates are conf's.
    """
    closed = f"http://{HOST}:{free_port()}"  # nothing listens there
    data = loopback_config(
        directory, closed, lambda name: responder_url if name == RESPONDER else closed, token
    )
    data["route"]["group_wait"] = CHAT_GROUP_WAIT
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def production_pool_max(path: Path = PRODUCTION_ENV) -> int:
    """ERPGO_DB_MAX_OPEN_CONNS of conf/erpgo/production.env: the pool's size."""
    found = re.search(r"^ERPGO_DB_MAX_OPEN_CONNS=(\d+)", path.read_text(), re.M)
    if not found:
        raise DrillError(f"{rel(path)}: no ERPGO_DB_MAX_OPEN_CONNS")
    return int(found[1])


# -- ERPGo's metrics, played from the real server ------------------------------------------


class ErpgoMetrics:
    """A ``/metrics`` page with ERPGo's pool and login metrics, read from ``server`` at
    every scrape (its ``database``): what ERPGo's pool and login handler would count."""

    SERVICE = "erpgo-api"
    REASONS: ClassVar = {"bad_password": "invalid_password"}  # login_attempts.reason -> label

    def __init__(self, server: Server, database: str = "erpgo") -> None:
        self.env = server.env("admin") | {"PGDATABASE": database}
        self.pool_max = production_pool_max()
        self.port = free_port()
        self.conn: psycopg.Connection | None = None
        self.http = HTTPServer((HOST, self.port), self._handler())
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    def page(self) -> str:
        if self.conn is None or self.conn.closed:
            self.conn = connect(self.env, "erpgo-metrics-drill", autocommit=True)
        in_use, idle = self.conn.execute(
            "SELECT count(*) FILTER (WHERE state <> 'idle'), count(*) FILTER (WHERE state = "
            "'idle') FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND application_name = %s",
            (self.SERVICE,),
        ).fetchone()
        failures = self.conn.execute(
            "SELECT reason, count(*) FROM login_attempts WHERE NOT success GROUP BY reason"
        ).fetchall()
        service = f'service="{self.SERVICE}"'
        lines = [
            "# TYPE erpgo_db_pool_connections_in_use gauge",
            f'erpgo_db_pool_connections_in_use{{{service},pool="primary"}} {in_use}',
            "# TYPE erpgo_db_pool_connections_idle gauge",
            f'erpgo_db_pool_connections_idle{{{service},pool="primary"}} {idle}',
            "# TYPE erpgo_db_pool_connections_max gauge",
            f'erpgo_db_pool_connections_max{{{service},pool="primary"}} {self.pool_max}',
            "# TYPE erpgo_auth_login_failures_total counter",
        ]
        for reason, count in failures:
            label = self.REASONS.get(reason or "", reason or "unknown_user")
            lines.append(f'erpgo_auth_login_failures_total{{{service},reason="{label}"}} {count}')
        return "\n".join(lines) + "\n"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    body, code = metrics.page().encode(), 200
                except psycopg.Error as exc:  # ERPGo's /metrics would fail too
                    body, code = str(exc).encode(), 500
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> ErpgoMetrics:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()
        if self.conn is not None:
            self.conn.close()


# -- the programs --------------------------------------------------------------------------


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.read()
    except OSError:
        return None


def _ready(url: str, process: subprocess.Popen, what: str, log: Path, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while _get(url) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise DrillError(f"{what} did not answer {url} (exit {process.poll()}):\n{tail}")
        time.sleep(0.1)


@dataclass
class Process:
    """A program the drill started; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    what: str
    process: subprocess.Popen
    log: Path
    token: int | None = None

    def stop(self) -> None:
        self.process.terminate()
        cleanup.end_process(self.process, timeout=10)
        cleanup.unregister(self.token)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start(what: str, argv: list[str], directory: Path, **options: object) -> Process:
    log = directory / f"{what.split()[0]}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, **options,
        )  # fmt: skip
    started = Process(what, proc, log)
    started.token = cleanup.register(what, started.stop)
    return started


@dataclass
class Stack:
    """The running path: Prometheus, Alertmanager and the responder, and where notes land."""

    directory: Path
    prometheus: monitoring.Prometheus
    alertmanager: str  # http://127.0.0.1:port
    responder: Process
    notes: Path
    processes: list[Process] = field(default_factory=list)

    @property
    def prometheus_url(self) -> str:
        return f"http://{HOST}:{self.prometheus.port}"

    def query(self, expression: str) -> list[dict]:
        query = urllib.parse.urlencode({"query": expression})
        return self.prometheus.api(f"/api/v1/query?{query}")["result"]

    def loaded_for(self, name: str) -> float | None:
        """The ``for`` (seconds) Prometheus loaded for alert ``name``: :func:`loaded_for`."""
        return loaded_for(self.prometheus, name)

    def alert(self, name: str) -> dict | None:
        """Prometheus's view of alert ``name`` (state, activeAt), or None while inactive."""
        for item in self.prometheus.api("/api/v1/alerts")["alerts"]:
            if item["labels"].get("alertname") == name:
                return item
        return None

    def routed(self, name: str) -> list[str]:
        """The receivers Alertmanager holds alert ``name`` for (its API v2)."""
        query = urllib.parse.urlencode({"filter": f'alertname="{name}"'})
        body = _get(f"{self.alertmanager}/api/v2/alerts?{query}")
        alerts = json.loads(body) if body else []
        return sorted({r["name"] for a in alerts for r in a.get("receivers", [])})

    def notifications(self, integration: str) -> float:
        """``alertmanager_notifications_total`` of ``integration``: what it tried to send."""
        text = (_get(f"{self.alertmanager}/metrics") or b"").decode()
        pattern = rf'^alertmanager_notifications_total{{integration="{integration}"}} (\S+)$'
        found = re.search(pattern, text, re.M)
        return float(found[1]) if found else 0.0

    def note(self, name: str) -> tuple[Path, str] | None:
        """The responder's note for alert ``name``, once written."""
        for path in sorted(self.notes.glob(f"*-{name}-*.md")):
            return path, path.read_text(encoding="utf-8")
        return None

    def log(self) -> str:
        parts = [f"--- {p.what}\n{p.output()[-1500:]}" for p in self.processes]
        return "\n".join([*parts, f"--- prometheus\n{self.prometheus.log()}"])


def loaded_for(prometheus: monitoring.Prometheus, name: str) -> float | None:
    """The ``for`` in seconds of alert ``name`` as the running Prometheus loaded it (its
    ``/api/v1/rules``), or None when it has no such alert: what the drill really waited."""
    groups = prometheus.api("/api/v1/rules")["groups"]  # type: ignore[index]
    for rule in (r for g in groups for r in g["rules"]):
        if rule.get("type") == "alerting" and rule.get("name") == name:
            return float(rule.get("duration", 0))
    return None


def drill_for(alert: str) -> str:
    """The ``for`` a drill's copy of the rules gives ``alert``: :data:`SHORTENED_FOR`'s,
    else the rules file's."""
    return pathreport.drill_for(alert, for_of(alert))


@contextlib.contextmanager
def alert_path(
    targets: dict[str, list[str]], responder_env: dict[str, str], shorten: tuple[str, ...] = ()
):
    """Start Alertmanager, Prometheus and ``handbook respond``; stop all three on the way
    out, whatever happens. (Alertmanager retries a responder that is not up yet, and
    Prometheus resends to an Alertmanager it could not reach: the order is not a race.)"""
    alertmanager = require_tool("alertmanager")
    monitoring.find_prometheus()
    directory = scratch.make("alertpath")
    processes: list[Process] = []
    prometheus = None
    try:
        token = "drill-responder-token"
        (directory / "responder-token").write_text(token)
        notes = directory / "notes"
        respond_port, am_port = free_port(), free_port()
        config = alertmanager_config(directory, f"http://{HOST}:{respond_port}/", token)
        am = start(
            "alertmanager",
            [alertmanager, f"--config.file={config}", f"--storage.path={directory / 'am'}",
             f"--web.listen-address={HOST}:{am_port}", "--cluster.listen-address="],
            directory,
        )  # fmt: skip
        processes.append(am)
        am_url = f"http://{HOST}:{am_port}"
        _ready(f"{am_url}/-/ready", am.process, "alertmanager", am.log)
        rules = rules_copy(directory, shorten)
        prom_config = prometheus_config(directory, rules, f"{HOST}:{am_port}", targets)
        prometheus = monitoring.boot_prometheus(prom_config, (RESEND_DELAY,))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS"))}
        env |= responder_env | {"COLUMNS": "120", "PYTHONUNBUFFERED": "1"}
        responder = start(
            "handbook respond",
            [sys.executable, "-m", "handbook", "respond", f"--port={respond_port}",
             f"--notes-dir={notes}", f"--token-file={directory / 'responder-token'}",
             f"--prometheus=http://{HOST}:{prometheus.port}"],
            directory, env=env, cwd=ROOT,
        )  # fmt: skip
        processes.append(responder)
        _ready(f"http://{HOST}:{respond_port}/-/healthy", responder.process, "handbook respond",
               responder.log)  # fmt: skip
        yield Stack(directory, prometheus, am_url, responder, notes, processes)
    finally:
        if prometheus is not None:
            prometheus.stop()
        for process in reversed(processes):
            process.stop()
        scratch.remove(directory)


def wait(condition, what: str, path: Stack, timeout: float = WAIT):
    """Poll ``condition`` until it returns something true, and return it; DrillError
    naming ``what`` with the programs' logs when it never does. Nothing asserts how long
    it took: the timeout only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, RuntimeError, urllib.error.URLError):
            found = condition()
            if found:
                return found
        if time.monotonic() > deadline:
            raise DrillError(
                f"alert path: {what} did not happen within {timeout:.0f} s\n{path.log()}"
            )
        time.sleep(0.25)


# -- what the responder wrote, and the figures ---------------------------------------------


def stamp(note: str, field_name: str) -> float:
    """The time the note's ``- **Received:**`` (or ``Diagnosed:``) line holds, as epoch s."""
    found = re.search(rf"^- \*\*{field_name}:\*\* (\S+)", note, re.M)
    if not found:
        raise DrillError(f"the note has no {field_name} line:\n{note}")
    return datetime.fromisoformat(found[1]).timestamp()


def runbook_link(note: str) -> str:
    found = re.search(r"^- \*\*Runbook:\*\* \[[^\]]*\]\((?P<url>[^)]+)\)", note, re.M)
    return found["url"] if found else ""


def anchor_problem(url: str) -> str | None:
    """Why ``url`` does not land on an anchor of the built site, or None when it does.

    The page must be a page of docs/ (``runbooks/x.html`` from ``docs/runbooks/x.md``) and
    hold the explicit target ``(anchor)=``, which Sphinx turns into ``id="anchor"``
    (tests/test_site.py proves that on the built site for every alert)."""
    try:
        page, anchor = split_runbook_url(url, DEFAULT_BASE_URL)
    except ValueError as exc:
        return str(exc)
    source = DOCS / Path(page).with_suffix(".md")
    if not source.exists():
        return f"{url}: {rel(source)} does not exist, so the site has no {page}"
    if not re.search(rf"^\({re.escape(anchor)}\)=\s*$", source.read_text(), re.M):
        return f"{url}: {rel(source)} has no target ({anchor})= for #{anchor}"
    return None


def measure(drill: str, alert: str, server: str, fault: float, note: str) -> Measured:
    return Measured(drill, alert, server, fault, stamp(note, "Received"), stamp(note, "Diagnosed"))


def for_of(alert: str) -> str:
    """The alert's ``for`` in conf/prometheus/alert_rules.yml (what production waits)."""
    rule = next((a for a in load_rules() if a.name == alert), None)
    return rule.for_ if rule and rule.for_ else "0s"


def record(found: Measured, command: str = TEST_COMMAND, path: Path = REPORT) -> None:
    """Merge one drill's figures into ``build/alert-path.json`` (:mod:`pathreport`)."""
    pathreport.record(found, for_of(found.alert), command, path)
