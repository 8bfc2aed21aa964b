"""The real Prometheus exporters, started against the test servers, and what they export.

The alert rules and PromQL snippets name ``pg_*`` and ``redis_*`` metrics; those
names must be what Debian's ``prometheus-postgres-exporter`` (0.11) and
``prometheus-redis-exporter`` (1.45) really expose. :func:`start` runs one exporter
against a running :class:`~handbook.servers.base.Server` on a free loopback port,
:meth:`Running.scrape` fetches ``/metrics`` and :func:`sample_names` lists the
names a PromQL selector can use. Credentials go through the environment, never
the command line.

postgres_exporter 0.11's ``bgwriter`` collector reads ``pg_stat_bgwriter`` columns
that PostgreSQL 17 moved to ``pg_stat_checkpointer``: against PostgreSQL 17 and
later the collector is switched off (``--no-collector.bgwriter``), and its
``pg_stat_bgwriter_*`` names are only checked against older servers.

Nothing here imports pytest: a missing exporter raises :class:`ExporterMissing`.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from handbook import snippet as snippets
from handbook.paths import SNIPPETS
from handbook.prometheus import alerts, promql
from handbook.servers.base import Server
from handbook.servers.ports import HOST, free_port

START_TIMEOUT = 15  # seconds until /metrics must answer
BGWRITER_BROKEN_FROM = 17  # postgres_exporter 0.11's bgwriter collector fails from here on


@dataclass(frozen=True)
class Kind:
    name: str  # "postgres_exporter"
    server_kind: str  # "pg" or "redis"
    env: str  # override: the binary's path
    binaries: tuple[str, ...]
    package: str  # the Debian package


KINDS = {
    "postgres_exporter": Kind(
        "postgres_exporter",
        "pg",
        "HANDBOOK_POSTGRES_EXPORTER",
        ("prometheus-postgres-exporter", "postgres_exporter"),
        "prometheus-postgres-exporter",
    ),
    "redis_exporter": Kind(
        "redis_exporter",
        "redis",
        "HANDBOOK_REDIS_EXPORTER",
        ("prometheus-redis-exporter", "redis_exporter"),
        "prometheus-redis-exporter",
    ),
}


class ExporterMissing(RuntimeError):
    """The exporter binary is not installed; the message says what to install."""


class ExporterFailed(RuntimeError):
    """The exporter did not start or did not answer; the message holds its log."""


def find(name: str) -> str:
    """The exporter's executable, or ExporterMissing saying what to install."""
    kind = KINDS[name]
    override = os.environ.get(kind.env)
    if override:
        return override
    for binary in kind.binaries:
        found = shutil.which(binary)
        if found:
            return found
    raise ExporterMissing(
        f"{name} not found ({' or '.join(kind.binaries)} on PATH, or ${kind.env}): "
        f"install it with `apt-get install {kind.package}`"
    )


def version(binary: str) -> str:
    """``"0.11.1"`` from ``--version`` (both exporters print it differently)."""
    done = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    text = done.stdout + done.stderr
    match = re.search(r"version (\d+\.\d+\.\d+)", text) or re.search(
        r"Exporter (?:v)?(\d+\.\d+\.\d+)", text
    )
    return match[1] if match else "unknown version"


@dataclass
class Running:
    name: str
    binary: str
    version: str
    server: str  # "PostgreSQL 15.20, local"
    url: str  # http://127.0.0.1:port/metrics
    notes: list[str] = field(default_factory=list)  # e.g. "bgwriter collector disabled"
    process: subprocess.Popen | None = field(default=None, repr=False)
    log: Path | None = None

    def describe(self) -> str:
        extra = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"{self.name} {self.version} against {self.server}{extra}"

    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            return response.read().decode("utf-8")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log else ""

    def stop(self) -> None:
        """Stop the exporter and remove its log (read :meth:`output` before)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.log is not None:
            self.log.unlink(missing_ok=True)


def _arguments(
    name: str, server: Server, port: int, workaround: bool = True
) -> tuple[list[str], dict[str, str], list]:
    """Command-line flags, environment and notes for one exporter against one server."""
    env = server.env("monitor")
    listen = f"{HOST}:{port}"
    if name == "postgres_exporter":
        # Production's exporter role (conf/postgresql/roles.sql), over TLS where the build has it.
        env = server.env(name if name in server.accounts else "monitor")
        user, password = quote(env["PGUSER"], safe=""), quote(env["PGPASSWORD"], safe="")
        dsn = f"postgresql://{user}:{password}@{env['PGHOST']}:{env['PGPORT']}/postgres"
        env["DATA_SOURCE_NAME"] = (
            f"{dsn}?sslmode={'require' if 'ssl' in server.features else 'disable'}"
        )
        flags, notes = [f"--web.listen-address={listen}"], []
        if workaround and server.major[0] >= BGWRITER_BROKEN_FROM:
            flags.append("--no-collector.bgwriter")
            notes.append(f"bgwriter collector disabled: it fails on PostgreSQL {server.major[0]}")
        return flags, env, notes
    # redis_exporter reads REDIS_ADDR, REDIS_USER and REDIS_PASSWORD from the environment.
    match = re.match(r"redis://(?P<user>[^:@]*):(?P<pw>[^@]*)@(?P<addr>[^/]+)", env["REDIS_URL"])
    if not match:
        raise ExporterFailed(f"cannot read REDIS_URL of {server.describe()}")
    env.update(
        REDIS_ADDR=f"redis://{match['addr']}", REDIS_USER=match["user"], REDIS_PASSWORD=match["pw"]
    )
    return [f"-web.listen-address={listen}"], env, []


def start(name: str, server: Server, workaround: bool = True, port: int | None = None) -> Running:
    """Start exporter ``name`` against ``server`` (its monitoring role); ready to scrape.

    ``workaround=False`` keeps the collectors known to fail on this server version;
    ``port`` restarts an exporter where Prometheus already scrapes it (a drill).

    Raises ExporterMissing when it is not installed, ExporterFailed (with its log)
    when it does not answer on ``/metrics`` in time. Call ``stop()`` in ``finally``.
    """
    binary = find(name)
    port = port or free_port()
    flags, env, notes = _arguments(name, server, port, workaround)
    handle, log_name = tempfile.mkstemp(prefix=f"handbook-{name}-", suffix=".log")
    os.close(handle)
    log = Path(log_name)
    with log.open("w") as out:
        process = subprocess.Popen(
            [binary, *flags], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent
        )
    running = Running(
        name, binary, version(binary), server.describe(), f"http://{HOST}:{port}/metrics",
        notes, process, log,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(OSError, urllib.error.URLError):
            running.scrape()
            return running
        if process.poll() is not None or time.monotonic() > deadline:
            output = running.output()[-2000:]
            running.stop()
            raise ExporterFailed(
                f"{name} ({binary}) did not answer on {running.url} within {START_TIMEOUT} s "
                f"(exit code {process.returncode}):\n{output}"
            )
        time.sleep(0.05)


_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{.*\})?\s+\S+", re.M)


def sample_names(text: str) -> dict[str, int]:
    """Each sample name of a /metrics page (what a PromQL selector names) and its count."""
    names: dict[str, int] = {}
    for match in _SAMPLE.finditer(text):
        names[match["name"]] = names.get(match["name"], 0) + 1
    return names


def failed_collectors(text: str) -> list[str]:
    """postgres_exporter's collectors whose last run failed (``pg_scrape_collector_success 0``)."""
    pattern = r'^pg_scrape_collector_success\{collector="([^"]+)"\}\s+0(?:\.0*)?$'
    return re.findall(pattern, text, re.M)


def value_of(text: str, name: str) -> float | None:
    """The value of the first sample of ``name`` (labels ignored), or None."""
    match = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+(\S+)", text, re.M)
    return float(match[1]) if match else None


def used_names() -> dict[str, list[str]]:
    """Every metric name the alert rules and PromQL snippets select -> where (file:line)."""
    used: dict[str, list[str]] = {}
    for alert in alerts.load_rules():
        for name in promql.metric_names(alert.expr):
            used.setdefault(name, []).append(f"{alert.location} (alert {alert.name})")
    for path in sorted(SNIPPETS.glob("promql/**/*.promql")):
        snippet = snippets.parse(path)
        for name in promql.metric_names(snippet.body()):
            used.setdefault(name, []).append(f"{snippet.name}:{snippet.body_start}")
    return used


def missing(expected: dict[str, list[str]], scraped: dict[str, int], running: Running) -> list:
    """A message per expected metric that the exporter's /metrics lacks, naming who uses it."""
    messages = []
    for metric, where in sorted(expected.items()):
        if metric in scraped:
            continue
        close = difflib.get_close_matches(metric, list(scraped), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "use a name its /metrics shows"
        messages.append(
            f"{'; '.join(where)}: {metric} is not exported by {running.describe()}: {hint}"
        )
    return messages
