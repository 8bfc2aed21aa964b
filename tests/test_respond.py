"""``handbook respond`` on a real server: Alertmanager's webhook in, an incident note out.

Each test runs the real command (``python -m handbook respond``) on a free loopback port
and posts it Alertmanager's webhook payload (version 4, as Alertmanager sends it: the
alert-path drill in ``tests/drills/test_alert_path.py`` has a real Alertmanager do the
posting). The diagnoses run against a private PostgreSQL in the middle of a pool leak.
The command's ``--help``, its errors and a note are recorded under
``snippets/incident/respond/`` for docs/reference/respond.md; a run whose output differs
fails, and ``--update-outputs`` rewrites them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

import handbook.pytest_plugin
from handbook.drills import pool as drill
from handbook.incident import respond
from handbook.paths import ROOT, SNIPPETS, rel
from handbook.prometheus.alertmanager import ALERTMANAGER_CONFIG, amtool_routes
from handbook.prometheus.alerts import load_rules
from handbook.prometheus.tools import ToolMissing, require_tool
from handbook.pytest_plugin import unavailable
from handbook.schema.databases import Databases
from handbook.servers import cleanup
from handbook.servers.ports import free_port

RECORDED = SNIPPETS / "incident" / "respond"
ALERTS = {a.name: a for a in load_rules()}
# the alerts with an incident runbook: the rule groups of ERPGo itself
ERPGO_GROUPS = ("erpgo-application", "erpgo-datastores")
TOKEN = "test-responder-token"
LEAKS = 14
POOL_URL = ALERTS["DatabaseConnectionPoolExhausted"].runbook_url
# the labels of a pool alert as Prometheus sends it, and its summary as Alertmanager has it
POOL = {
    "service": "erpgo-api",
    "instance": "10.42.1.17:9091",
    "pool": "primary",
    "summary": "erpgo-api on 10.42.1.17:9091 uses 96% of its primary connection pool",
}


def erpgo_alerts() -> set[str]:
    data = yaml.safe_load((ROOT / "conf/prometheus/alert_rules.yml").read_text())
    return {r["alert"] for g in data["groups"] if g["name"] in ERPGO_GROUPS for r in g["rules"]}


@pytest.fixture(scope="module")
def server(request):
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    labels = [c.label for c in pool.candidates("pg", required=False) if not c.read_only]
    if not labels:
        unavailable("no PostgreSQL server to diagnose (see README)")
    srv = pool.start_private(labels[0])
    try:
        Databases().ensure(srv)
        yield srv
    finally:
        srv.stop()


def environment(srv) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS", "PROM"))}
    env.pop("HANDBOOK_PGBOUNCER_DSN", None)
    return env | srv.env("monitor") | {"PGDATABASE": drill.DATABASE, "COLUMNS": "100"}


def command(env, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "handbook", "respond", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


class Running:
    """``handbook respond`` started on a free port; ``stop()`` sends SIGTERM, as systemd."""

    def __init__(self, env, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "handbook", "respond", f"--port={self.port}", *args],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.token = cleanup.register("handbook respond", self.stop)
        deadline = time.monotonic() + 60
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"handbook respond did not start:\n{self.output}")
            time.sleep(0.1)

    output = ""

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}-/healthy", timeout=2):
                return True
        except OSError:
            return False

    def post(self, body: bytes | dict, token: str | None = TOKEN) -> tuple[int, str]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.output, _ = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            cleanup.end_process(self.process, timeout=5)
        cleanup.unregister(self.token)
        return self.process.returncode


def payload(
    name: str,
    status: str = "firing",
    fingerprint: str = "5a1d0c0ffee15bad",
    summary: str = "",
    **labels: str,
) -> dict:
    """Alertmanager's webhook body (version 4) for one alert of the rules file."""
    alert = ALERTS[name]
    every = alert.notification_labels() | {"environment": "production"} | labels
    annotations = dict(alert.annotations) | {"summary": summary or f"{name} in the test"}
    ends = "2026-12-03T10:20:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    return {
        "version": "4",
        "groupKey": '{}/{alertname=~"..."}:{alertname="' + name + '"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "incident-responder",
        "groupLabels": {"alertname": name},
        "commonLabels": every,
        "commonAnnotations": annotations,
        "externalURL": "http://alertmanager-0.alertmanager.monitoring.svc:9093",
        "alerts": [
            {
                "status": status,
                "labels": every,
                "annotations": annotations,
                "startsAt": "2026-12-03T10:15:00.123456789Z",
                "endsAt": ends,
                "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
                "fingerprint": fingerprint,
            }
        ],
    }


def wait_for_note(directory, name, contains="", timeout=120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in directory.glob(f"*-{name}-*.md"):
            text = path.read_text()
            if contains in text:
                return text
        time.sleep(0.2)
    found = {p.name: p.read_text()[:2000] for p in directory.glob("*.md")}
    pytest.fail(f"no note for {name} containing {contains!r} in {directory}: {found}")


def clean(text: str) -> str:
    """Times and ports vary from run to run: the page shows them as placeholders."""
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<time>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    text = re.sub(r"port \d+", "port <port>", text)
    text = re.sub(r"(/tmp|/var/tmp)/\S+", "<dir>", text)
    return re.sub(r"\(PostgreSQL [^)]*\)", "(PostgreSQL)", text)


def record(request, name: str, text: str) -> None:
    """Compare ``text`` with the recorded output the page shows; rewrite it on request."""
    request.getfixturevalue("recorded_output")(RECORDED / name, text, "docs/reference/respond.md")


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


# -- the route ------------------------------------------------------------------------------


def test_alertmanager_sends_the_erpgo_alerts_to_the_responder_and_still_pages():
    try:
        require_tool("amtool")
    except ToolMissing as exc:
        unavailable(str(exc))
    told = erpgo_alerts()
    assert len(told) == 6, told
    for name, alert in ALERTS.items():
        receivers = amtool_routes(alert.notification_labels())
        if name in told:
            assert receivers[0] == respond.RESPONDER_RECEIVER and len(receivers) == 2, (
                f"{rel(ALERTMANAGER_CONFIG)}: {name} goes to {receivers}: the responder first "
                "(continue: true), then the pager or the chat"
            )
        else:
            assert respond.RESPONDER_RECEIVER not in receivers, (
                f"{rel(ALERTMANAGER_CONFIG)}: meta alert {name} reaches the responder"
            )
    data = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    (receiver,) = [r for r in data["receivers"] if r["name"] == respond.RESPONDER_RECEIVER]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == f"http://{respond.HOST}:{respond.PORT}/", (
        f"{rel(ALERTMANAGER_CONFIG)}: the responder's url must be handbook respond's default "
        f"http://{respond.HOST}:{respond.PORT}/"
    )
    assert hook["send_resolved"] is True, "resolved alerts must reach the notes"


# -- a note, on a real server ----------------------------------------------------------------


def test_a_firing_alert_gets_a_note_naming_the_cause_and_its_resolution(
    request, server, tmp_path, token_file
):
    notes = tmp_path / "notes"
    responder = Running(environment(server), f"--notes-dir={notes}", f"--token-file={token_file}")
    try:
        with drill.sessions(server) as s:
            s.idle(), s.busy()
            for order_id in range(1, LEAKS + 1):
                s.leak(order_id)
            status, body = responder.post(payload("DatabaseConnectionPoolExhausted", **POOL))
            assert status == 200 and "accepted 1 alert" in body, (status, body)
            note = wait_for_note(notes, "DatabaseConnectionPoolExhausted", "## Timeline")
        # the same alert again (Alertmanager repeats): no second diagnosis, no second file
        assert responder.post(payload("DatabaseConnectionPoolExhausted", **POOL))[0] == 200
        resolution = payload("DatabaseConnectionPoolExhausted", "resolved", **POOL)
        assert responder.post(resolution)[0] == 200
        resolved = wait_for_note(notes, "DatabaseConnectionPoolExhausted", "resolved at")
    finally:
        responder.stop()
    files = list(notes.glob("*.md"))
    assert [p.name for p in files] == [
        "20261203T101500Z-DatabaseConnectionPoolExhausted-5a1d0c0ffee15bad.md"
    ], "one note per alert fingerprint and start"
    for expected in (
        "# DatabaseConnectionPoolExhausted: firing",
        "- **Started:** 2026-12-03T10:15:00.123456789Z",
        f"- **Runbook:** [Connection pool exhaustion]({POOL_URL})",
        "| severity | `critical` |",
        f"{LEAKS} session(s) idle in transaction (leaked): erpgo-api",
    ):
        assert expected in note, f"the note lacks {expected!r}:\n{note}"
    assert resolved.startswith(note.rstrip("\n")), "the resolution must be appended, not rewrite"
    assert resolved.count(": firing, noted") == 1, resolved
    assert "resolved at 2026-12-03T10:20:00Z (Alertmanager)" in resolved.splitlines()[-1]
    assert "already noted, still firing" in responder.output, responder.output
    assert "Traceback" not in responder.output, responder.output
    # the page shows the head and the timeline; each step's folded result is left out there
    shown = resolved.split("\n<details>", 1)[0].rstrip() + "\n"
    shown += "\n## Timeline\n" + resolved.split("\n## Timeline\n", 1)[1]
    record(request, "note.md.txt", clean(shown))


def test_notes_can_go_to_an_incident_systems_webhook(server, token_file):
    received: list[dict] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{sink.server_port}/incidents"
    responder = Running(environment(server), f"--forward-url={url}", f"--token-file={token_file}")
    try:
        assert responder.post(payload("PostgreSQLDown"))[0] == 200
        assert responder.post(payload("PostgreSQLDown", "resolved"))[0] == 200
        deadline = time.monotonic() + 120
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        responder.stop()
        sink.shutdown()
        sink.server_close()
    assert [r["event"] for r in received] == ["firing", "resolved"], received
    assert received[0]["alert"] == "PostgreSQLDown" and received[0]["labels"]["severity"]
    assert "### Diagnosis: [Database connectivity]" in received[0]["note"], received[0]["note"]
    assert "Cause found" not in received[0]["note"], "a healthy server names no cause"


# -- errors --------------------------------------------------------------------------------


def test_requests_that_are_not_alertmanagers_are_refused(server, tmp_path, token_file):
    responder = Running(
        environment(server), f"--notes-dir={tmp_path}", f"--token-file={token_file}"
    )
    try:
        assert responder.post(payload("PostgreSQLDown"), token="wrong")[0] == 401
        assert responder.post(payload("PostgreSQLDown"), token=None)[0] == 401
        status, body = responder.post(b"{not json")
        assert status == 400 and "not JSON" in body, body
        status, body = responder.post(payload("PostgreSQLDown") | {"version": "3"})
        assert status == 400 and "payload version '3'" in body, body
        status, body = responder.post({"version": "4"})
        assert status == 400 and "no 'alerts' list" in body, body
    finally:
        responder.stop()
    assert not list(tmp_path.glob("*.md")), "a refused request must write nothing"
    assert "refused a request without the token" in responder.output, responder.output
    assert "Traceback" not in responder.output


def test_an_alert_without_runbook_or_variables_is_noted_with_what_to_do(server, tmp_path):
    env = {k: v for k, v in environment(server).items() if not k.startswith("PG")}
    responder = Running(env, f"--notes-dir={tmp_path}")
    try:
        responder.post(payload("PostgreSQLDown"))
        unknown = payload("PostgreSQLDown", fingerprint="00000000000000aa")
        unknown["alerts"][0]["labels"]["alertname"] = "DiskFillingUp"
        unknown["alerts"][0]["annotations"] = {"summary": "no runbook for this one"}
        responder.post(unknown)
        missing = wait_for_note(tmp_path, "PostgreSQLDown", "## Timeline")
        nobook = wait_for_note(tmp_path, "DiskFillingUp", "## Timeline")
    finally:
        assert responder.stop() == 0, responder.output
    assert "PGHOST or HANDBOOK_PG_DSN is not set" in missing, missing
    assert "unknown runbook or alert 'DiskFillingUp'" in nobook, nobook
    assert "Traceback" not in responder.output


def test_help(request):
    result = command(dict(os.environ, COLUMNS="88"), "--help")
    assert result.returncode == 0, result.stderr
    record(request, "help.txt", result.stdout)


def test_usage_errors_say_what_to_do(request, tmp_path):
    env = dict(os.environ, COLUMNS="100")
    shown = []
    nowhere = command(env)
    assert nowhere.returncode == 2 and "--notes-dir DIR" in nowhere.stderr, nowhere.stderr
    shown.append(("handbook respond", nowhere.stderr))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = command(env, f"--port={port}", f"--notes-dir={tmp_path}")
    assert busy.returncode == 2 and "another program holds the port" in busy.stderr, busy.stderr
    shown.append(("handbook respond --port=<port> --notes-dir=notes", busy.stderr))
    missing = command(env, f"--notes-dir={tmp_path}", f"--token-file={tmp_path / 'nope'}")
    assert missing.returncode == 2 and "cannot read it" in missing.stderr, missing.stderr
    shown.append(("handbook respond --notes-dir=notes --token-file=nope", missing.stderr))
    for result in (nowhere, busy, missing):
        assert "Traceback" not in result.stderr
    text = "".join(f"$ {argv}\n{out}" for argv, out in shown)
    text = text.replace(str(tmp_path / "nope"), "nope").replace(str(tmp_path), "notes")
    record(request, "usage-errors.txt", clean(text))
