"""PgBouncer's exporter as conf/pgbouncer/deployment.yaml runs it, and what conf/ expects of it.

Each postgres-pooler pod runs prometheus-community's ``pgbouncer_exporter`` beside
PgBouncer (the deployment's ``exporter`` container): it reads the pod's admin console as
the stats user of pgbouncer.ini and serves ``/metrics`` on port 9127, where the
``pgbouncer`` job of conf/prometheus/prometheus.yml scrapes it.

- :func:`sidecar` reads that container: its flags and the variables it takes.
- :func:`scrape_job_problems` checks that the scrape job asks for the port and path the
  sidecar serves, and that the sidecar logs in as pgbouncer.ini's stats user.
- :func:`used_names` lists every ``pgbouncer_*`` metric name conf/ uses (rules,
  dashboards) and the PromQL snippets select, each with where it is used;
  :func:`expected_names` adds the names conf/metrics/exporters.yml lists for the
  exporter (``EXPORTER``): all of them must be on the real exporter's /metrics.
- :func:`start` runs the exporter, from the image ``python -m handbook.servers.images
  build`` makes of Debian trixie's package (``images.PGBOUNCER_EXPORTER``: Debian 12's
  prometheus-pgbouncer-exporter is another program, which cannot read PgBouncer 1.18's
  SHOW STATS), on the host's network against a test pooler, with the sidecar's own
  arguments; only :data:`OVERRIDES` differ, each with its reason.

Nothing here imports pytest: a missing engine or image raises :class:`ExporterMissing`.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from handbook import snippet as snippets
from handbook.paths import CONF, SNIPPETS, rel
from handbook.prometheus import metrics, monitoring, promql
from handbook.prometheus.exporters import ExporterFailed, ExporterMissing
from handbook.servers import cleanup, dockerengine, images, pgbouncer
from handbook.servers.ports import HOST, free_port
from handbook.yamlfile import line, load

DEPLOYMENT = pgbouncer.DEPLOYMENT
CONTAINER = "exporter"  # the sidecar's name in the deployment
JOB = "pgbouncer"  # its scrape job in prometheus.yml
PREFIX = "pgbouncer_"
EXPORTER = metrics.EXPORTER_PREFIXES[PREFIX]  # its entry in conf/metrics/exporters.yml
CONNECTION_FLAG = "--pgBouncer.connectionString"
LISTEN_FLAG = "--web.listen-address"
PATH_FLAG = "--web.telemetry-path"
DEFAULT_PATH = "/metrics"  # the exporter's own default for --web.telemetry-path
HERE = "handbook/prometheus/pgbouncer_exporter.py"
# What a test run changes in the sidecar's arguments, and why.
OVERRIDES = {
    "port of the connection string": "the test pooler listens on a free port "
    "(handbook/servers/pgbouncer.py OVERRIDES listen_port), not 5432",
    "sslmode of the connection string": "only where the test pooler has client TLS off "
    "(handbook/servers/pgbouncer.py NO_SSL: the server build's psql has no SSL)",
    LISTEN_FLAG: "127.0.0.1 and a free port on the host's network, not :9127 on the pod's",
}
START_TIMEOUT = 30  # seconds until /metrics must answer
RULE_FILES = CONF / "prometheus"


@dataclass(frozen=True)
class Sidecar:
    """The deployment's exporter container: its flags (``--flag=value``) and variables."""

    flags: dict[str, str]
    env: dict[str, str]  # name -> where it comes from ("secret postgres-pooler/key")
    image: str
    port: int  # containerPort
    lines: dict[str, int]  # flag or "image"/"port" -> line in DEPLOYMENT

    @property
    def connection(self) -> str:
        return self.flags.get(CONNECTION_FLAG, "")

    @property
    def listen_port(self) -> int | None:
        value = self.flags.get(LISTEN_FLAG, ":9127")
        with contextlib.suppress(ValueError):
            return int(value.rsplit(":", 1)[1])
        return None

    @property
    def path(self) -> str:
        return self.flags.get(PATH_FLAG, DEFAULT_PATH)

    def where(self, key: str) -> str:
        return f"{rel(DEPLOYMENT)}:{self.lines.get(key, 1)}"


def sidecar(path: Path = DEPLOYMENT) -> Sidecar:
    """The exporter container of the postgres-pooler deployment."""
    data = load(path)
    containers = data["spec"]["template"]["spec"]["containers"]
    found = next((c for c in containers if c.get("name") == CONTAINER), None)
    if found is None:
        raise ValueError(f"{rel(path)}: no container named {CONTAINER!r} beside pgbouncer")
    flags, lines = {}, {"image": line(found, "image")}
    text = path.read_text(encoding="utf-8").splitlines()
    for arg in found.get("args") or []:
        flag, _, value = str(arg).partition("=")
        flags[flag] = value
        at = line(found, "args")  # the argument's own line, after `args:` and its comments
        lines[flag] = next((n for n, row in enumerate(text, 1) if n > at and str(arg) in row), at)
    env = {}
    for variable in found.get("env") or []:
        ref = (variable.get("valueFrom") or {}).get("secretKeyRef") or {}
        env[variable["name"]] = f"secret {ref.get('name')}/{ref.get('key')}" if ref else "value"
    ports = found.get("ports") or [{}]
    lines["port"] = line(ports[0], "containerPort") or line(found, "ports")
    return Sidecar(flags, env, str(found.get("image", "")), int(ports[0].get("containerPort", 0)),
                   lines)  # fmt: skip


def scrape_job_problems(car: Sidecar | None = None) -> list[str]:
    """Where the ``pgbouncer`` job of prometheus.yml and the sidecar disagree, or the sidecar
    and pgbouncer.ini (its user, the admin console), each naming file:line and the fix."""
    car = car or sidecar()
    conf = load(monitoring.PROMETHEUS_CONF)
    where = rel(monitoring.PROMETHEUS_CONF)
    jobs = {job["job_name"]: job for job in conf["scrape_configs"]}
    problems = []
    job = jobs.get(JOB)
    if job is None:
        return [f"{where}: no scrape job {JOB!r}: the pooler's exporter is never scraped"]
    path = job.get("metrics_path", DEFAULT_PATH)
    if path != car.path:
        problems.append(
            f"{where}:{line(job, 'metrics_path') or line(job)}: job {JOB} scrapes {path}, but "
            f"the exporter serves {car.path} ({car.where(PATH_FLAG)}): make them agree"
        )
    ports = [(int(sd["port"]), line(sd, "port")) for sd in job.get("dns_sd_configs") or []]
    for static in job.get("static_configs") or []:
        ports += [(int(t.rsplit(":", 1)[1]), line(static)) for t in static.get("targets", [])]
    if not ports:
        problems.append(f"{where}:{line(job)}: job {JOB} has no target")
    for port, number in ports:
        if port != car.listen_port:
            problems.append(
                f"{where}:{number}: job {JOB} scrapes port {port}, but the exporter listens on "
                f"{car.listen_port} ({car.where(LISTEN_FLAG)}): make them agree"
            )
    if car.port != car.listen_port:
        problems.append(
            f"{car.where('port')}: containerPort {car.port} is not the port the exporter "
            f"listens on ({car.listen_port}, {car.where(LISTEN_FLAG)})"
        )
    dsn = urlsplit(car.connection)
    ini = pgbouncer.parse()["pgbouncer"]
    stats_users = [u.strip() for u in ini["stats_users"][0].split(",")]
    if dsn.username not in stats_users:
        problems.append(
            f"{car.where(CONNECTION_FLAG)}: the exporter logs in as {dsn.username!r}, not as a "
            f"stats user of {rel(pgbouncer.INI)}:{ini['stats_users'][1]} ({', '.join(stats_users)})"
        )
    if dsn.path.lstrip("/") != pgbouncer.CONSOLE or dsn.hostname not in ("127.0.0.1", "localhost"):
        problems.append(
            f"{car.where(CONNECTION_FLAG)}: the exporter must read its own pod's admin console "
            f"(127.0.0.1, database {pgbouncer.CONSOLE}), not {dsn.hostname}/{dsn.path.lstrip('/')}"
        )
    if dsn.port != int(ini["listen_port"][0]):
        problems.append(
            f"{car.where(CONNECTION_FLAG)}: port {dsn.port} is not PgBouncer's listen_port "
            f"({rel(pgbouncer.INI)}:{ini['listen_port'][1]})"
        )
    if dsn.password:
        problems.append(
            f"{car.where(CONNECTION_FLAG)}: a password on the command line shows in every "
            "process list: give it as PGPASSWORD from the secret"
        )
    return problems


# -- the names conf/ and the snippets use ---------------------------------------------


def used_names(prefix: str = PREFIX) -> dict[str, list[str]]:
    """Every ``prefix*`` metric name selected by a rule of conf/prometheus/ (alerting or
    recording), a Grafana dashboard panel or a PromQL snippet -> where (file:line)."""
    used: dict[str, list[str]] = {}

    def add(expr: str, where: str) -> None:
        for name in promql.metric_names(expr):
            if name.startswith(prefix):
                used.setdefault(name, []).append(where)

    for path in sorted([*RULE_FILES.glob("*.yml"), *RULE_FILES.glob("*.yaml")]):
        data = load(path)
        for group in (data.get("groups") or []) if isinstance(data, dict) else []:
            for rule in group.get("rules") or []:
                name = rule.get("alert") or rule.get("record")
                add(str(rule.get("expr", "")), f"{rel(path)}:{line(rule, 'expr')} ({name})")
    for path, title, expr in monitoring.dashboard_queries():
        add(expr, f"{rel(path)} (panel {title!r})")
    for path in sorted(SNIPPETS.glob("**/*.promql")):
        snippet = snippets.parse(path)
        body = snippet.body().splitlines()
        for name in sorted(promql.metric_names(snippet.body())):
            if name.startswith(prefix):  # the line that names it, not the body's first
                word = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])")
                at = next((i for i, row in enumerate(body) if word.search(row)), 0)
                used.setdefault(name, []).append(f"{snippet.name}:{snippet.body_start + at}")
    return used


def expected_names(known: metrics.KnownNames | None = None) -> dict[str, list[str]]:
    """What the exporter must serve -> who relies on it: the names conf/metrics/exporters.yml
    lists for it (file:line) and every name :func:`used_names` finds."""
    known = known or metrics.load_known_names()
    expected = {
        name: [f"{rel(known.path)}:{at}"] for name, at in known.exporters.get(EXPORTER, {}).items()
    }
    for name, where in used_names().items():
        expected.setdefault(name, []).extend(where)
    return expected


# -- running it ----------------------------------------------------------------------


def connection_for_test(car: Sidecar, port: int, tls: bool) -> str:
    """The sidecar's connection string, with the test pooler's port (and sslmode=disable
    where that pooler has client TLS off): the OVERRIDES above, nothing else."""
    parts = urlsplit(car.connection)
    query = dict(parse_qsl(parts.query))
    if not tls:
        query["sslmode"] = "disable"
    netloc = f"{parts.username}@{parts.hostname}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))


@dataclass
class Running:
    image: str
    url: str  # http://127.0.0.1:port/metrics
    container: object = field(repr=False)
    _token: int | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"pgbouncer_exporter {images.PGBOUNCER_EXPORTER.version} ({self.image})"

    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            return response.read().decode("utf-8")

    def log(self) -> str:
        with contextlib.suppress(Exception):
            text = self.container.logs().decode(errors="replace")  # type: ignore[attr-defined]
            return "\n".join("    " + ln for ln in text.strip().splitlines()[-15:])
        return "    (no log)"

    def stop(self) -> None:
        container, self.container = self.container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True)  # type: ignore[attr-defined]
        cleanup.unregister(self._token)
        self._token = None


def _client():
    """A Docker client, or ExporterMissing saying how to get an engine."""
    from handbook.servers import docker as provider

    if not dockerengine.engine_available():
        raise ExporterMissing(
            "no Docker engine answers (DOCKER_HOST), and pgbouncer_exporter 0.10 runs from "
            f"the image {images.PGBOUNCER_EXPORTER.tag}: start one (as root: "
            "`images/engine.sh start`, as .ci/run does), export the DOCKER_HOST it prints "
            f"and build the image (`{provider.BUILD_COMMAND}`)"
        )
    if not dockerengine.host_network():
        raise ExporterMissing(
            "the Docker engine cannot share this machine's network (not a local Linux engine): "
            "pgbouncer_exporter must reach the test pooler on 127.0.0.1"
        )
    return provider, dockerengine.engine_client()


def require_image() -> str:
    """The exporter's image tag; ExporterMissing when no engine answers or it lacks the image."""
    import docker

    provider, client = _client()
    image = images.PGBOUNCER_EXPORTER.tag
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ExporterMissing(
            f"the Docker engine lacks {image} (pgbouncer_exporter 0.10): build it with "
            f"`{provider.BUILD_COMMAND}` (.ci/run does)"
        ) from None
    finally:
        client.close()
    return image


def start(pooler: pgbouncer.LocalPgBouncer, password: str, tls: bool) -> Running:
    """The sidecar's exporter against ``pooler``'s admin console, as the sidecar logs in
    (``password`` in PGPASSWORD); ready to scrape. Call ``stop()`` in ``finally``."""
    image = require_image()
    _, client = _client()
    try:
        car = sidecar()
        assert pooler.port is not None
        port = free_port()
        flags = {**car.flags, CONNECTION_FLAG: connection_for_test(car, pooler.port, tls),
                 LISTEN_FLAG: f"{HOST}:{port}"}  # fmt: skip
        env = {name: password for name in car.env if name == "PGPASSWORD"}
        container = client.containers.run(
            image, command=[f"{k}={v}" for k, v in flags.items()], environment=env,
            network_mode="host", labels=dockerengine.owner_labels("pgbouncer-exporter"),
            detach=True,
        )  # fmt: skip
    finally:
        client.close()
    running = Running(image, f"http://{HOST}:{port}{car.path}", container)
    running._token = cleanup.register(f"container {image}", running.stop)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(OSError, urllib.error.URLError):
            running.scrape()
            return running
        container.reload()
        if container.status == "exited" or time.monotonic() > deadline:
            log = running.log()
            running.stop()
            raise ExporterFailed(
                f"pgbouncer_exporter ({image}) did not answer on {running.url} within "
                f"{START_TIMEOUT} s (container {container.status}); its log:\n{log}"
            )
        time.sleep(0.1)


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of ``name`` on a /metrics page."""
    found = []
    for row in text.splitlines():
        if not row.startswith(name) or row.startswith("#"):
            continue
        head, _, value = row.rpartition(" ")
        metric, _, labels = head.partition("{")
        if metric != name:
            continue
        pairs = {}
        for item in labels.rstrip("}").split(",") if labels else []:
            key, _, raw = item.partition("=")
            pairs[key] = json.loads(raw) if raw.startswith('"') else raw
        found.append((pairs, float(value)))
    return found
