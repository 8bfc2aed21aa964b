"""conf/pgbouncer boots Debian's PgBouncer, and the pooler behaves as the pages say.

Every production client reaches PostgreSQL through PgBouncer. Here the production file
runs in front of each local test server (only handbook/servers/pgbouncer.py OVERRIDES
differ): ERPGo's login roles get in with the password PostgreSQL stores (auth_query),
as themselves; the monitoring user may read the admin console and nothing else; and
when the pool is exhausted, the pool runbook's diagnostic shows the clients waiting.

The pooler's exporter runs as conf/pgbouncer/deployment.yaml's sidecar does, from the
image ``python -m handbook.servers.images build`` makes (a Docker engine is needed; without
one those tests skip saying so, and fail under ``CI=true``): it must read the pooler as
erpgo_monitor and serve every ``pgbouncer_*`` name conf/metrics/exporters.yml lists and
conf/ and the snippets use, where the ``pgbouncer`` job of conf/prometheus/prometheus.yml
scrapes it. This is the one place those names meet the real exporter.
"""

from __future__ import annotations

import re
import subprocess
import threading

import psycopg
import pytest

from handbook import yamlfile
from handbook.confcheck import pgconf
from handbook.drills import common as drill
from handbook.paths import rel
from handbook.prometheus import exporters, metrics, monitoring, pgbouncer_exporter
from handbook.pytest_plugin import DATABASES, POOL, REPORT, unavailable
from handbook.servers import accounts, images, pgbouncer
from handbook.servers.base import Server

POOLS = drill.snippet("shell/pool/pgbouncer_pools.sh")
DIAGNOSE = drill.snippet("shell/connectivity/diagnose_connection.sh")
EXHAUSTED = {"default_pool_size": "3", "reserve_pool_size": "0", "min_pool_size": "0"}
SIDECAR = pgbouncer_exporter.sidecar()
# SHOW STATS per database, and SHOW POOLS: what Debian 12's exporter never got to read.
READ_BY_DEBIAN_12_NEVER = (
    "pgbouncer_stats_queries_pooled_total",
    "pgbouncer_pools_client_waiting_connections",
    "pgbouncer_pools_server_active_connections",
)


def need_pgbouncer() -> None:
    if pgbouncer.find() is None:
        unavailable("pgbouncer is not installed (apt-get install pgbouncer)")


@pytest.fixture
def pooler(pg_server, request):
    need_pgbouncer()
    request.config.stash[DATABASES].ensure(pg_server)
    started = pgbouncer.LocalPgBouncer(pg_server, "erpgo").start()
    try:
        yield started
    finally:
        started.stop()


def query(
    env: dict[str, str], sql: str, database: str | None = None
) -> subprocess.CompletedProcess:
    extra = {"PGDATABASE": database} if database else {}
    return subprocess.run(
        ["psql", "-X", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env | extra, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def client_env(server: Server, pooler: pgbouncer.LocalPgBouncer, user: str) -> dict[str, str]:
    return server.env(user) | pooler.env(user)


# -- static ------------------------------------------------------------------------------


def test_ini_parses_and_every_override_is_a_key_of_the_file():
    sections = pgbouncer.parse()
    keys = set(sections["pgbouncer"])
    stale = sorted((set(pgbouncer.OVERRIDES) | set(pgbouncer.NO_SSL)) - keys)
    assert not stale, f"{pgbouncer.HERE} OVERRIDES names keys {rel(pgbouncer.INI)} lacks: {stale}"
    assert pgbouncer.DATABASE in sections["databases"]
    assert sections["pgbouncer"]["auth_type"][0] == "scram-sha-256"
    assert sections["pgbouncer"]["pool_mode"][0] == "transaction"


def test_the_pooler_logs_in_as_roles_that_roles_sql_creates():
    ini = {k: v for k, (v, _) in pgbouncer.parse()["pgbouncer"].items()}
    roles = accounts.pg_roles()
    for key in ("auth_user", "stats_users"):
        assert ini[key] in roles, f"{rel(pgbouncer.INI)}: {key} = {ini[key]} is not in roles.sql"
    assert "pgbouncer.get_auth" in ini["auth_query"]
    assert "pgbouncer.get_auth" in accounts.ROLES_SQL.read_text()


def test_budget_is_pooler_pods_times_their_server_connections():
    budget = pgconf.pooler_budget()
    assert budget["server_connections_max"] == (
        budget["pooler_pods"] * budget["max_db_connections_per_pooler"]
    )
    assert budget["max_db_connections_per_pooler"] >= budget["default_pool_size"]
    # Every API pod's pool fits on the poolers, and PostgreSQL keeps room for the others.
    clients = budget["pooler_pods"] * budget["max_client_conn_per_pooler"]
    assert budget["client_connections_max"] <= clients, budget
    assert budget["left_for_other_clients"] > 0, (
        f"{rel(pgbouncer.INI)}: the poolers may open more server connections than "
        f"PostgreSQL's max_connections leaves: {budget}"
    )


# -- on real servers ------------------------------------------------------------------------


def test_the_pooler_runs_the_file_as_written(pg_server, pooler):
    monitor = client_env(pg_server, pooler, accounts.MONITOR)
    result = query(monitor, "SHOW CONFIG", pgbouncer.CONSOLE)
    assert result.returncode == 0, result.stderr
    running = {row.split("|")[0]: row.split("|")[1] for row in result.stdout.splitlines()}
    skipped = set(pgbouncer.OVERRIDES) | set(pgbouncer.NO_SSL)
    for key, (value, line) in pgbouncer.parse()["pgbouncer"].items():
        if key in skipped or key not in running:
            continue
        assert running[key] == value, (
            f"{rel(pgbouncer.INI)}:{line}: {key} = {value}, but pgbouncer runs with "
            f"{running[key]!r}: fix the value in the file"
        )


def test_the_application_logs_in_through_the_pooler_as_itself(pg_server, pooler):
    app = client_env(pg_server, pooler, "erpgo_app_blue")
    result = query(app, "SELECT current_user, count(*) > 0 FROM orders")
    assert result.returncode == 0, f"{result.stderr}\n{pooler.log()}"
    assert result.stdout.strip() == "erpgo_app_blue|t"
    # A wrong password is refused by the pooler itself, against PostgreSQL's verifier, in
    # its own words; the connection check calls it a refused login.
    wrong = app | {"PGPASSWORD": "not-the-password"}
    refused = query(wrong, "SELECT 1")
    assert "SASL authentication failed" in refused.stderr, refused.stderr
    verdict = drill.run(DIAGNOSE, pg_server, wrong)
    assert verdict.returncode == 3 and "verdict: login refused" in verdict.output, verdict.report()


def test_the_monitoring_user_reads_the_console_and_nothing_else(pg_server, pooler):
    monitor = client_env(pg_server, pooler, accounts.MONITOR)
    assert query(monitor, "SHOW POOLS", pgbouncer.CONSOLE).returncode == 0
    for command in ("PAUSE", "RELOAD", "SHUTDOWN", "KILL erpgo"):
        result = query(monitor, command, pgbouncer.CONSOLE)
        assert "admin access needed" in result.stderr, (command, result.stderr)
    # The pooler serves ERPGo's own logins only (roles.sql's pgbouncer.get_auth).
    result = query(monitor, "SELECT 1")
    assert result.returncode != 0, "erpgo_monitor got through the pooler to the database"


def test_an_exhausted_pool_shows_its_waiting_clients(pg_server, request):
    need_pgbouncer()
    databases = request.config.stash[DATABASES]
    databases.ensure(pg_server)
    pooler = pgbouncer.LocalPgBouncer(pg_server, "erpgo", EXHAUSTED).start()
    held: list[psycopg.Connection] = []
    try:
        app = client_env(pg_server, pooler, "erpgo_app_blue")
        for _ in range(3):  # every server connection of the pool, each in a transaction
            conn = drill.connect(app, "erpgo-api")
            conn.execute("SELECT 1")
            held.append(conn)
        waiting = threading.Thread(
            target=query, args=(app | {"PGAPPNAME": "erpgo-api-waiting"}, "SELECT 1")
        )
        waiting.start()
        monitor = client_env(pg_server, pooler, POOLS.user)

        def queued() -> bool:
            return "1 client(s) waiting" in drill.output(POOLS, pg_server, monitor)

        drill.wait_for(queued, f"{POOLS.name} showing the client queued behind a full pool")
        out = drill.output(POOLS, pg_server, monitor)
        pools = drill.table(out)
        mine = [r for r in pools if r["database"] == "erpgo" and r["user"] == "erpgo_app_blue"]
        assert mine and mine[0]["cl_waiting"] == "1" and mine[0]["sv_active"] == "3", out
        assert "waiting: erpgo_app_blue@erpgo from 127.0.0.1:" in out, out
        assert "(erpgo-api-waiting)" in out, out
        for conn in held:  # the transactions end: the waiting client gets its connection
            conn.close()
        waiting.join(timeout=30)
        assert not waiting.is_alive()
        assert "0 client(s) waiting" in drill.output(POOLS, pg_server, monitor)
    finally:
        for conn in held:
            conn.close()
        pooler.stop()


def test_a_stopped_server_behind_the_pooler_is_named_by_the_connection_check(pg_server, request):
    need_pgbouncer()
    pool = request.config.stash[POOL]
    private = pool.start_private(pg_server.label)
    try:
        request.config.stash[DATABASES].ensure(private)
        # The login waits 2 s, not 30, for the pooler's first failed server login.
        pooler = pgbouncer.LocalPgBouncer(private, "erpgo", {"query_wait_timeout": "2"}).start()
        try:
            env = client_env(private, pooler, "erpgo_app_blue")
            ok = drill.run(DIAGNOSE, private, env)
            assert ok.ok and "connected to erpgo as erpgo_app_blue" in ok.output, ok.report()
            private.stop()
            first = drill.run(DIAGNOSE, private, env)  # queued until query_wait_timeout
            assert first.returncode == 4 and "verdict: PgBouncer full" in first.output, (
                first.report()
            )
            down = drill.run(DIAGNOSE, private, env)  # the pooler now knows its logins fail
            assert down.returncode == 2, down.report()
            assert "verdict: PgBouncer cannot reach PostgreSQL" in down.output, down.output
        finally:
            pooler.stop()
    finally:
        private.stop()


# -- the pooler's exporter -------------------------------------------------------------
# Debian 12's prometheus-pgbouncer-exporter (1.7, Python) is another program: it reads SHOW
# STATS columns PgBouncer 1.8 renamed (KeyError: 'total_requests'), so production runs
# prometheus-community's pgbouncer_exporter 0.10.2 (Debian trixie's package, the image
# handbook/pgbouncer-exporter:0.10-trixie) as conf/pgbouncer/deployment.yaml's sidecar.


def test_the_scrape_job_asks_for_the_port_and_path_the_exporter_serves():
    problems = pgbouncer_exporter.scrape_job_problems()
    assert not problems, "\n".join(problems)


def test_ci_builds_the_exporter_image_production_runs():
    """.ci/run's `python -m handbook.servers.images build` (no labels) builds it; it is no
    server label for the Docker provider; its pinned package is the sidecar's version."""
    image = images.PGBOUNCER_EXPORTER
    assert image in images.select([]), "handbook/servers/images.py: build() must build it"
    assert image.label not in images.mapping(), "a program, not a server the provider maps"
    assert image.tag == f"handbook/{image.context}:{image.version}-{image.suite}"
    dockerfile = images.IMAGES_DIR / image.context / "Dockerfile"
    pinned = re.search(r"^ARG EXPORTER_VERSION=\d+:(\S+)-\d+$", dockerfile.read_text(), re.M)
    assert pinned and pinned[1].startswith(image.version + "."), (
        f"{rel(dockerfile)}: pin the Debian version of the exporter the tag names ({image.tag})"
    )
    assert SIDECAR.image.endswith(":" + pinned[1]), (
        f"{SIDECAR.where('image')}: production runs {SIDECAR.image}, the tests "
        f"pgbouncer_exporter {pinned[1]}: run the version the tests verify"
    )
    # conf/metrics/exporters.yml says which version its pgbouncer_* names were checked on.
    entry = yamlfile.load(metrics.EXPORTER_NAMES)["exporters"][pgbouncer_exporter.EXPORTER]
    listed = str(entry.get("version"))
    assert listed == image.version, (
        f"{rel(metrics.EXPORTER_NAMES)}:{yamlfile.line(entry, 'version')}: its names are checked "
        f"against pgbouncer_exporter {image.version} ({image.tag}), not {listed!r}: say "
        f'version: "{image.version}"'
    )


def test_the_scrape_job_check_fails_when_prometheus_looks_elsewhere(tmp_path, monkeypatch):
    """The check above reads the files it names: a job on another port fails it."""
    conf = tmp_path / "prometheus.yml"
    text = monitoring.PROMETHEUS_CONF.read_text(encoding="utf-8")
    conf.write_text(text.replace("port: 9127", "port: 9187"), encoding="utf-8")
    monkeypatch.setattr(monitoring, "PROMETHEUS_CONF", conf)
    problems = pgbouncer_exporter.scrape_job_problems()
    assert any("scrapes port 9187, but the exporter listens on 9127" in p for p in problems)


def test_the_exporter_reads_the_pooler_and_serves_every_pgbouncer_metric_conf_uses(request):
    """The sidecar's own arguments (only pgbouncer_exporter.OVERRIDES differ) against a
    pooler booted from conf/pgbouncer/, as erpgo_monitor with its real password."""
    need_pgbouncer()
    try:
        pgbouncer_exporter.require_image()
    except exporters.ExporterMissing as exc:
        unavailable(str(exc))
    pool = request.config.stash[POOL]
    # One server is enough (the exporter reads the pooler, not PostgreSQL): a local one first.
    candidates = [c for c in pool.candidates("pg", required=False) if not c.read_only]
    if not candidates:
        unavailable("no PostgreSQL server to put PgBouncer in front of (see README)")
    server = pool.get(min(candidates, key=lambda c: c.provider != "local").label)
    request.config.stash[DATABASES].ensure(server)
    pooler = pgbouncer.LocalPgBouncer(server, "erpgo").start()
    exporter = None
    try:
        app = client_env(server, pooler, "erpgo_app_blue")
        assert query(app, "SELECT 1").returncode == 0, pooler.log()  # a pool with a query
        password = server.account(accounts.MONITOR)["PGPASSWORD"]
        tls = pgbouncer.client_has_ssl(server.bindir)  # else the pooler runs NO_SSL
        exporter = pgbouncer_exporter.start(pooler, password, tls)
        text = exporter.scrape()
        names = exporters.sample_names(text)
        up = pgbouncer_exporter.samples(text, "pgbouncer_up")
        assert up and up[0][1] == 1, (
            f"{exporter.describe()} cannot read the pooler's admin console as "
            f"{accounts.MONITOR} ({SIDECAR.where(pgbouncer_exporter.CONNECTION_FLAG)}):"
            f"\n{exporter.log()}\n{pooler.log()}"
        )
        # What Debian 12's exporter could not read: SHOW STATS, per database, and the pools.
        for name in READ_BY_DEBIAN_12_NEVER:
            databases = {
                labels.get("database") for labels, _ in pgbouncer_exporter.samples(text, name)
            }
            assert pgbouncer.DATABASE in databases, (
                f"{name} has no series for {pgbouncer.DATABASE}: {exporter.describe()}\n"
                f"{exporter.log()}"
            )
        # Every name conf/metrics/exporters.yml lists for it, and every name a rule, a
        # dashboard or a PromQL snippet uses: each missing one names its file:line.
        missing = exporters.missing(pgbouncer_exporter.expected_names(), names, exporter)
        assert not missing, "\n".join(missing)
        # The versions the names were checked on: the exporter's build and the pooler's.
        build = pgbouncer_exporter.samples(text, "pgbouncer_exporter_build_info")
        pooled = pgbouncer_exporter.samples(text, "pgbouncer_version_info")
        built = build[0][0].get("version", "?") if build else "?"
        against = pooled[0][0].get("version", "PgBouncer") if pooled else "PgBouncer"
        request.config.stash[REPORT].exporters[f"{pgbouncer_exporter.EXPORTER}@{server.label}"] = (
            f"pgbouncer_exporter {built} ({exporter.image}) against {against}"
        )
    finally:
        if exporter is not None:
            exporter.stop()
        pooler.stop()
