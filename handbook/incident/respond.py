"""``handbook respond``: Alertmanager's webhook receiver, writing an incident note per alert.

It listens on 127.0.0.1 (``--port``, :data:`PORT` unless told) for Alertmanager's webhook
(the JSON payload, version 4). For each *firing* alert it finds the runbook (the alert's
``runbook_url`` annotation, else its name), runs ``handbook diagnose`` for it against the
servers the environment names (the same variables as diagnose: ``PG*`` or
``HANDBOOK_PG_DSN``, ``REDIS_URL``, ``PROMETHEUS_URL``, ``HANDBOOK_PGBOUNCER_DSN``) and
writes an incident note in markdown: the alert, its labels, when it started, the runbook
link and the diagnosis. The note goes to ``--notes-dir`` (one file per alert fingerprint
and start time) or is POSTed to ``--forward-url`` (an incident system's webhook). A
resolved alert appends a resolution line to its note.

Alertmanager gets its answer at once; the diagnoses run one after the other in a worker
thread, so a slow step never times Alertmanager's request out. With ``--token-file``, a
request without that bearer token (Alertmanager's ``http_config.authorization``) is
refused. Every error is a message saying what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import re
import signal
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from handbook.incident import diagnose
from handbook.incident.runbooks import Runbook, UnknownRunbook, find, runbooks
from handbook.site import base_url

HOST = "127.0.0.1"  # loopback only: it runs beside Alertmanager (conf/alertmanager/)
PORT = 9095  # conf/alertmanager/alertmanager.yml's incident-responder webhook
RESPONDER_RECEIVER = "incident-responder"  # that receiver's name
PAYLOAD_VERSION = "4"  # Alertmanager's webhook payload version
FORWARD_TIMEOUT = 10.0
RUNBOOK_PAGE = re.compile(r"runbooks/(?P<page>[\w-]+)\.html")


class UsageError(Exception):
    """The command line or the environment is wrong; exit code 2, the message says why."""


class PayloadError(ValueError):
    """A request that is not Alertmanager's webhook payload; answered with 400."""


@dataclass
class Alert:
    """One alert of a webhook payload."""

    status: str  # "firing" or "resolved"
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str
    generator_url: str = ""
    receiver: str = ""

    @property
    def key(self) -> str:
        """The note's name: the start (UTC, to the second), the alert and its fingerprint."""
        start = re.sub(r"[^0-9T]", "", self.starts_at[:19]) or "unknown-start"
        name = re.sub(r"[^\w.-]", "_", self.name) or "alert"
        fingerprint = re.sub(r"[^\w]", "", self.fingerprint) or "nofingerprint"
        return f"{start}Z-{name}-{fingerprint}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_payload(body: bytes) -> list[Alert]:
    """The alerts of an Alertmanager webhook body; PayloadError saying what is wrong."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PayloadError(f"the body is not JSON ({exc}): send Alertmanager's webhook") from exc
    if not isinstance(data, dict) or not isinstance(data.get("alerts"), list):
        raise PayloadError(
            "no 'alerts' list: this endpoint takes Alertmanager's webhook payload "
            "(a webhook_configs url in alertmanager.yml)"
        )
    version = str(data.get("version", ""))
    if version != PAYLOAD_VERSION:
        raise PayloadError(
            f"payload version {version!r}, expected {PAYLOAD_VERSION!r}: an Alertmanager "
            "this responder does not know; upgrade the handbook"
        )
    alerts = []
    for index, item in enumerate(data["alerts"]):
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            raise PayloadError(f"alerts[{index}] has no labels")
        labels = {str(k): str(v) for k, v in item["labels"].items()}
        alerts.append(
            Alert(
                status=str(item.get("status", data.get("status", ""))),
                name=labels.get("alertname", ""),
                labels=labels,
                annotations={str(k): str(v) for k, v in (item.get("annotations") or {}).items()},
                starts_at=str(item.get("startsAt", "")),
                ends_at=str(item.get("endsAt", "")),
                fingerprint=str(item.get("fingerprint", "")),
                generator_url=str(item.get("generatorURL", "")),
                receiver=str(data.get("receiver", "")),
            )
        )
    return alerts


def runbook_for(alert: Alert) -> Runbook:
    """The runbook of ``alert``: its ``runbook_url``'s page, else its name (UnknownRunbook)."""
    found = RUNBOOK_PAGE.search(alert.annotations.get("runbook_url", ""))
    if found and found["page"] in runbooks():
        return runbooks()[found["page"]]
    return find(alert.name)


# -- the note ------------------------------------------------------------------------------


def note_head(alert: Alert, link: str, title: str, received: str) -> list[str]:
    severity = alert.labels.get("severity", "no severity")
    summary = " ".join(alert.annotations.get("summary", "").split())
    lines = [f"# {alert.name}: firing", ""]
    lines.append(f"- **Alert:** {alert.name} ({severity})")
    if summary:
        lines.append(f"- **Summary:** {summary}")
    lines += [
        f"- **Started:** {alert.starts_at}",
        f"- **Runbook:** [{title}]({link})" if link else "- **Runbook:** none found",
        f"- **Received:** {received} (Alertmanager receiver {alert.receiver or '?'})",
    ]
    return lines


def labels_table(alert: Alert) -> list[str]:
    lines = ["", "| Label | Value |", "|---|---|"]
    for key, value in sorted(alert.labels.items()):
        lines.append(f"| {key} | `{value.replace('|', '/')}` |")
    return lines


@dataclass
class Responder:
    """What to run and where the notes go; ``submit()`` queues, the worker writes."""

    env: dict[str, str]
    notes_dir: Path | None = None
    forward_url: str | None = None
    prometheus: str | None = None
    step_timeout: float = diagnose.STEP_TIMEOUT
    console: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))
    work: queue.Queue = field(default_factory=queue.Queue)
    seen: set[str] = field(default_factory=set)

    # -- the worker ------------------------------------------------------------------

    def submit(self, alerts: list[Alert], received: str) -> None:
        for alert in alerts:
            self.work.put((alert, received))

    def run_worker(self) -> None:
        while True:
            item = self.work.get()
            try:
                if item is None:
                    return
                alert, received = item
                try:
                    self.handle(alert, received)
                except Exception as exc:  # one alert's failure must not stop the responder
                    self.console.print(
                        f"[red]{escape(alert.name)}: could not write its note: "
                        f"{escape(type(exc).__name__)}: {escape(str(exc))}[/red]",
                        highlight=False,
                    )
            finally:
                self.work.task_done()

    def handle(self, alert: Alert, received: str) -> None:
        if alert.status == "resolved":
            self.resolve(alert, received)
        elif alert.status == "firing":
            if alert.key in self.seen or self._note_path(alert, exists=True):
                self.console.print(f"{alert.name} {alert.fingerprint}: already noted, still firing")
                return
            self.seen.add(alert.key)
            self.fire(alert, received)
        else:
            self.console.print(f"{escape(alert.name)}: unknown status {alert.status!r}: ignored")

    def fire(self, alert: Alert, received: str) -> None:
        link = alert.annotations.get("runbook_url", "").strip()
        self.console.print(
            f"[bold red]FIRING[/bold red] {escape(alert.name)} "
            f"({escape(alert.labels.get('severity', '?'))}) since {alert.starts_at}: diagnosing",
            highlight=False,
        )
        try:
            book = runbook_for(alert)
        except UnknownRunbook as exc:
            body = [
                "",
                "## Diagnosis not run",
                "",
                f"No runbook with investigation steps for this alert: {exc}",
            ]
            lines = note_head(alert, link, "its runbook_url", received) + labels_table(alert)
            self.deliver(alert, lines + body, f"no runbook ({alert.name})")
            return
        link = link or book.url(base_url())
        problems = diagnose.missing(book, self.env)
        if problems:
            body = ["", "## Diagnosis not run", "", "The responder's environment lacks:", ""]
            body += [f"- {problem}" for problem in problems]
            outcome = "not diagnosed: " + problems[0]
        else:
            quiet = Console(file=io.StringIO())  # the steps' progress stays out of the log
            result = diagnose.diagnose(book, self.env, self.prometheus, self.step_timeout, quiet)
            markdown = diagnose.markdown(result).replace(
                f"]({result.url})", f"]({link})", 1
            )  # the alert's own link: the site it names
            body = ["", *markdown.rstrip("\n").splitlines()]
            outcome = diagnose.summary(result)
        lines = note_head(alert, link, book.title, received)
        lines.append(f"- **Diagnosed:** {now()} (handbook diagnose {book.name})")
        self.deliver(alert, lines + labels_table(alert) + body, outcome)

    def deliver(self, alert: Alert, lines: list[str], outcome: str) -> None:
        text = "\n".join([*lines, "", "## Timeline", "", f"- {now()}: firing, noted", ""])
        if self.forward_url:
            self.forward(alert, "firing", text)
            where = self.forward_url
        else:
            path = self._note_path(alert)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            where = str(path)
        self.console.print(
            f"  {escape(alert.name)}: {escape(outcome)} -> {escape(where)}", highlight=False
        )

    def resolve(self, alert: Alert, received: str) -> None:
        line = f"- {received}: resolved at {alert.ends_at} (Alertmanager)\n"
        self.console.print(
            f"[bold green]RESOLVED[/bold green] {escape(alert.name)} at {alert.ends_at}",
            highlight=False,
        )
        if self.forward_url:
            self.forward(alert, "resolved", line)
            return
        path = self._note_path(alert)
        if not path.exists():  # the firing notification came before this responder started
            head = note_head(alert, alert.annotations.get("runbook_url", ""), "runbook", received)
            path.write_text(
                "\n".join([*head, *labels_table(alert), "", "## Timeline", "", ""]),
                encoding="utf-8",
            )
        with path.open("a", encoding="utf-8") as note:
            note.write(line)
        self.console.print(f"  {escape(alert.name)}: resolution added to {escape(str(path))}")

    def forward(self, alert: Alert, event: str, text: str) -> None:
        payload = {
            "event": event,
            "alert": alert.name,
            "fingerprint": alert.fingerprint,
            "startsAt": alert.starts_at,
            "labels": alert.labels,
            "note": text,
        }
        request = urllib.request.Request(
            self.forward_url or "",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT):
                pass
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            self.console.print(
                f"[red]{escape(alert.name)}: --forward-url {escape(str(self.forward_url))} "
                f"refused the note ({escape(str(reason))}): check the URL and that the "
                "incident system is up; the note is lost for this notification[/red]",
                highlight=False,
            )

    def _note_path(self, alert: Alert, exists: bool = False) -> Path | None:
        if self.notes_dir is None:
            return None
        path = self.notes_dir / f"{alert.key}.md"
        return path if not exists or path.exists() else None


# -- the HTTP side -------------------------------------------------------------------------


def handler(responder: Responder, token: str | None) -> type[BaseHTTPRequestHandler]:
    class Webhook(BaseHTTPRequestHandler):
        server_version = "handbook-respond"

        def _answer(self, code: int, message: str) -> None:
            body = (json.dumps({"message": message}) + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path in ("/-/healthy", "/-/ready"):
                self._answer(200, "ok")
            else:
                self._answer(404, "POST Alertmanager's webhook here; GET /-/healthy")

        def do_POST(self) -> None:
            received = now()
            if token is not None and self.headers.get("Authorization", "") != f"Bearer {token}":
                self._answer(401, "no or wrong bearer token: see --token-file")
                responder.console.print(
                    "[red]refused a request without the token of --token-file: set "
                    "http_config.authorization.credentials_file to the same file[/red]"
                )
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                alerts = parse_payload(self.rfile.read(length))
            except (PayloadError, ValueError) as exc:
                self._answer(400, str(exc))
                responder.console.print(f"[red]refused a request: {escape(str(exc))}[/red]")
                return
            responder.submit(alerts, received)
            self._answer(200, f"accepted {len(alerts)} alert(s)")

        def log_message(self, format: str, *args: object) -> None:
            pass  # the responder prints what it does with each alert instead

    return Webhook


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="handbook respond",
        description=(
            "Receive Alertmanager's webhook on 127.0.0.1 and, for each firing alert, run "
            "handbook diagnose for its runbook against the servers the environment names "
            "(PG* or HANDBOOK_PG_DSN, REDIS_URL, PROMETHEUS_URL, HANDBOOK_PGBOUNCER_DSN) "
            "and write an incident note; a resolved alert adds a line to its note."
        ),
    )
    p.add_argument("--port", type=int, default=PORT, help=f"port on 127.0.0.1 (default {PORT})")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--notes-dir", type=Path, help="write one markdown note per alert here")
    where.add_argument("--forward-url", help="POST each note as JSON to this URL instead")
    p.add_argument(
        "--token-file",
        type=Path,
        help="refuse requests without this file's bearer token (Alertmanager's credentials_file)",
    )
    diagnose.add_target_options(p)
    return p


def configure(args: argparse.Namespace) -> tuple[Responder, str | None]:
    """The responder the arguments describe; UsageError saying what to fix."""
    if not args.notes_dir and not args.forward_url:
        raise UsageError(
            "say where the notes go: --notes-dir DIR (a file per alert) or --forward-url URL "
            "(an incident system's webhook)"
        )
    if args.forward_url and not re.match(r"https?://", args.forward_url):
        raise UsageError(f"--forward-url {args.forward_url!r} is not an http(s) URL")
    if args.notes_dir:
        try:
            args.notes_dir.mkdir(parents=True, exist_ok=True)
            probe = args.notes_dir / ".handbook-respond-probe"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UsageError(
                f"--notes-dir {args.notes_dir}: cannot write there ({exc.strerror}): "
                "choose a directory this user can write"
            ) from exc
    token = None
    if args.token_file:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(
                f"--token-file {args.token_file}: cannot read it ({exc.strerror}): give the "
                "file Alertmanager's credentials_file names"
            ) from exc
        if not token:
            raise UsageError(f"--token-file {args.token_file} is empty: put the token in it")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: give a port between 1 and 65535")
    env = diagnose.environment(dict(os.environ), args.statement_timeout)
    if args.pgbouncer:
        env[diagnose.PGBOUNCER_VAR] = args.pgbouncer
    responder = Responder(
        env,
        notes_dir=args.notes_dir,
        forward_url=args.forward_url,
        prometheus=args.prometheus,
        step_timeout=args.step_timeout,
    )
    return responder, token


def targets(responder: Responder) -> list[str]:
    """What the diagnoses will reach, and what they will not, for the start-up message."""
    env = responder.env
    said = [
        diagnose.describe("pg", env, None) if env.get("PGHOST") else "no PostgreSQL (PGHOST)",
        diagnose.describe("redis", env, None) if env.get("REDIS_URL") else "no Redis (REDIS_URL)",
        f"Prometheus at {responder.prometheus}"
        if responder.prometheus
        else "no Prometheus (PROMETHEUS_URL)",
    ]
    return said


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; exit 0 then, 2 on a usage error."""
    args = parser().parse_args(argv)
    err = Console(stderr=True, soft_wrap=True)
    try:
        responder, token = configure(args)
        try:
            server = ThreadingHTTPServer((HOST, args.port), handler(responder, token))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {HOST}:{args.port} ({exc.strerror}): another program holds "
                "the port; stop it or pass --port (and change the url in alertmanager.yml)"
            ) from exc
    except UsageError as exc:
        err.print(f"handbook respond: error: {escape(str(exc))}", highlight=False)
        return 2
    worker = threading.Thread(target=responder.run_worker, name="diagnoses", daemon=True)
    worker.start()

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    where = args.forward_url or str(args.notes_dir)
    err.print(
        f"handbook respond: listening on http://{HOST}:{server.server_port}/ for Alertmanager; "
        f"notes to {escape(where)}; diagnoses reach {escape(', '.join(targets(responder)))}",
        highlight=False,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        responder.work.put(None)  # finish the diagnoses already queued, then stop
        with contextlib.suppress(RuntimeError):
            worker.join(timeout=args.step_timeout * 10)
    err.print("handbook respond: stopped")
    return 0
