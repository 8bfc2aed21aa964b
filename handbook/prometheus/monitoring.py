"""The monitoring stack's files: conf/prometheus/prometheus.yml, conf/grafana/, conf/jaeger/.

Prometheus has real checkers: ``promtool check config`` and Prometheus itself, which
``boot_prometheus()`` starts from the file on a free loopback port (with its storage in
a temp dir, the only flags it gets). Grafana and Jaeger are not installed on the test
machine, so ``grafana_problems()`` and ``jaeger_problems()`` check the structure their
loaders read, and the references between the files (data source uids, ports,
pipeline components), each problem naming the file and line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from handbook.paths import CONF, rel
from handbook.prometheus import promql
from handbook.prometheus.tools import ToolMissing
from handbook.servers import cleanup, scratch
from handbook.servers.base import ServerStartError
from handbook.servers.ports import HOST, free_port
from handbook.yamlfile import line as yaml_line
from handbook.yamlfile import load as load_yaml

PROMETHEUS_CONF = CONF / "prometheus" / "prometheus.yml"
GRAFANA = CONF / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards"
DASHBOARDS = GRAFANA / "dashboards"
JAEGER_CONF = CONF / "jaeger" / "config.yaml"
PRODUCTION_ENV = CONF / "erpgo" / "production.env"
START_TIMEOUT = 30


def find_prometheus() -> str:
    found = os.environ.get("HANDBOOK_PROMETHEUS") or shutil.which("prometheus")
    if not found:
        raise ToolMissing(
            "prometheus not found (on PATH, or $HANDBOOK_PROMETHEUS): install it with "
            "`apt-get install prometheus`"
        )
    return found


@dataclass
class Prometheus:
    """A Prometheus started from a config file; ``api()`` reads its HTTP API."""

    directory: Path
    port: int
    proc: subprocess.Popen | None = None
    _token: int | None = field(default=None, repr=False)

    def api(self, path: str) -> object:
        with urllib.request.urlopen(f"http://{HOST}:{self.port}{path}", timeout=10) as reply:
            body = json.load(reply)
        if body.get("status") != "success":
            raise RuntimeError(f"GET {path}: {body}")
        return body["data"]

    def log(self) -> str:
        with contextlib.suppress(OSError):
            lines = (self.directory / "prometheus.log").read_text(errors="replace").splitlines()
            return "\n".join("    " + line for line in lines[-15:])
        return "    (no log)"

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()  # Prometheus shuts down cleanly on SIGTERM
                cleanup.end_process(self.proc, timeout=10)
        finally:
            scratch.remove(self.directory)
            cleanup.unregister(self._token)
            self._token = None


def boot_prometheus(config: Path = PROMETHEUS_CONF, flags: tuple[str, ...] = ()) -> Prometheus:
    """Start Prometheus from ``config`` as it is (plus ``flags``); returns once it is ready."""
    binary = find_prometheus()
    directory = scratch.make("prometheus")
    server = Prometheus(directory, free_port())
    server._token = cleanup.register(f"Prometheus in {directory}", server.stop)
    try:
        with (directory / "prometheus.log").open("ab") as log:
            server.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
                 f"--web.listen-address={HOST}:{server.port}", *flags],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=directory, start_new_session=True,
            )  # fmt: skip
        scratch.record(directory, server_pid=server.proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and server.proc.poll() is None:
            with contextlib.suppress(OSError, urllib.error.URLError):
                url = f"http://{HOST}:{server.port}/-/ready"
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return server
            time.sleep(0.1)
        raise ServerStartError(
            f"Prometheus ({binary}) did not become ready with {rel(config)}; its log:\n"
            f"{server.log()}\nFix what the log names in the file."
        )
    except BaseException:
        server.stop()
        raise


# ---------------------------------------------------------------------------
# Grafana


def _yaml_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])


def datasource_uids() -> dict[str, str]:
    """{uid: type} of every provisioned data source."""
    found = {}
    for path in _yaml_files(DATASOURCES):
        for source in load_yaml(path).get("datasources") or []:
            found[str(source.get("uid"))] = str(source.get("type"))
    return found


def dashboard_queries() -> list[tuple[Path, str, str]]:
    """(file, panel title, PromQL) of every Prometheus target of every dashboard."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text()).get("panels", []):
            for target in panel.get("targets", []):
                if "expr" in target:
                    queries.append((path, panel.get("title", "?"), target["expr"]))
    return queries


def grafana_problems(known_metrics: set[str]) -> list[str]:
    """Provisioning files Grafana would reject or that point nowhere, and dashboard
    panels that use a data source that is not provisioned or an unknown metric."""
    problems = []
    for path in _yaml_files(DATASOURCES) + _yaml_files(DASHBOARD_PROVIDERS):
        data = load_yaml(path)
        if data.get("apiVersion") != 1:
            problems.append(f"{rel(path)}:1: provisioning files need `apiVersion: 1`")
    sources = datasource_uids()
    defaults = [
        source.get("uid")
        for path in _yaml_files(DATASOURCES)
        for source in load_yaml(path)["datasources"]
        if source.get("isDefault")
    ]
    if len(defaults) != 1:
        problems.append(f"{rel(DATASOURCES)}: exactly one data source must be the default")
    for path in _yaml_files(DATASOURCES):
        for source in load_yaml(path)["datasources"]:
            where = f"{rel(path)}:{yaml_line(source)}"
            for key in ("name", "uid", "type", "url"):
                if not source.get(key):
                    problems.append(f"{where}: data source without {key}")
            if not urlparse(str(source.get("url"))).scheme.startswith("http"):
                problems.append(f"{where}: url must be http(s)")
    for path in _yaml_files(DASHBOARD_PROVIDERS):
        for provider in load_yaml(path).get("providers") or []:
            where = f"{rel(path)}:{yaml_line(provider)}"
            if provider.get("type") != "file" or not (provider.get("options") or {}).get("path"):
                problems.append(f"{where}: a file provider needs type: file and options.path")
    for path in sorted(DASHBOARDS.glob("*.json")):
        data = json.loads(path.read_text())
        for key in ("uid", "title", "panels"):
            if not data.get(key):
                problems.append(f"{rel(path)}: dashboard without {key}")
        for panel in data.get("panels", []):
            uid = (panel.get("datasource") or {}).get("uid")
            if uid not in sources:
                problems.append(
                    f"{rel(path)}: panel {panel.get('title')!r} uses data source uid {uid!r}, "
                    f"which is not provisioned ({', '.join(sources)})"
                )
    for path, title, expr in dashboard_queries():
        unknown = sorted(promql.metric_names(expr) - known_metrics)
        if unknown:
            problems.append(
                f"{rel(path)}: panel {title!r} queries {', '.join(unknown)}, which neither "
                "ERPGo (conf/metrics/erpgo.yml) nor the exporters (conf/metrics/exporters.yml) "
                "expose: fix the name or declare the metric"
            )
    return problems


def dashboard_rules_file(directory: Path) -> Path:
    """Every dashboard query as a recording rule, so that ``promtool check rules``
    parses each one with Prometheus's own PromQL parser."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": expr}
        for index, (_, _, expr) in enumerate(dashboard_queries())
    ]
    path = directory / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}, indent=1))
    return path


# ---------------------------------------------------------------------------
# Jaeger


def _port(endpoint: str) -> int | None:
    with contextlib.suppress(ValueError):
        return int(str(endpoint).rsplit(":", 1)[1])
    return None


def env_value(name: str, path: Path = PRODUCTION_ENV) -> tuple[str, int] | None:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1], number
    return None


def jaeger_problems() -> list[str]:
    """What the Collector refuses at start (a pipeline naming an unconfigured component,
    an extension listed but not configured) and ports the other files rely on."""
    config = load_yaml(JAEGER_CONF)
    where = rel(JAEGER_CONF)
    problems = []
    service = config.get("service") or {}
    for extension in service.get("extensions") or []:
        if extension not in (config.get("extensions") or {}):
            problems.append(
                f"{where}:{yaml_line(service)}: extension {extension} is not configured"
            )
    for name, pipeline in (service.get("pipelines") or {}).items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind) or []:
                if component not in (config.get(kind) or {}):
                    problems.append(
                        f"{where}:{yaml_line(pipeline, kind)}: pipeline {name} names {kind[:-1]} "
                        f"{component}, which is not configured under {kind}:"
                    )
    backends = config["extensions"]["jaeger_storage"]["backends"]
    for ref in (
        config["extensions"]["jaeger_query"]["storage"]["traces"],
        config["exporters"]["jaeger_storage_exporter"]["trace_storage"],
    ):
        if ref not in backends:
            problems.append(f"{where}: storage {ref!r} is not a jaeger_storage backend")
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    endpoint = env_value("ERPGO_TRACING_ENDPOINT")
    if endpoint is None:
        problems.append(f"{rel(PRODUCTION_ENV)}: no ERPGO_TRACING_ENDPOINT")
    elif urlparse(endpoint[0]).port != _port(http):
        problems.append(
            f"{rel(PRODUCTION_ENV)}:{endpoint[1]}: ERPGO_TRACING_ENDPOINT {endpoint[0]} does not "
            f"use the OTLP/HTTP port of {where} ({http})"
        )
    metrics_port = service["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"][
        "port"
    ]
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_CONF)["scrape_configs"]}
    targets = [t for c in jobs.get("jaeger", {}).get("static_configs", []) for t in c["targets"]]
    if not targets or any(_port(t) != metrics_port for t in targets):
        problems.append(
            f"{rel(PROMETHEUS_CONF)}: job jaeger must scrape port {metrics_port}, where "
            f"{where} serves its metrics (targets: {targets})"
        )
    return problems
