"""Metric existence against the REAL exporters.

Debian's postgres_exporter and redis_exporter are started against each test
PostgreSQL and Redis server (its monitoring role) on free loopback ports, and
their /metrics output must show every ``pg_*`` / ``redis_*`` name the alert rules,
the PromQL snippets and conf/metrics/exporters.yml use. Every other name must be
ERPGo's own (conf/metrics/erpgo.yml) or a series Prometheus writes (ALERTS, up).

The exporter and server versions land in build/verification.json ("exporters").
A missing exporter is a skip saying what to install; under CI=true a failure.

The exporters that do not run against a test server are scraped where their program
runs: PgBouncer's (``pgbouncer_*``, the pooler pod's sidecar) in tests/test_pgbouncer.py,
Alertmanager's own in tests/test_meta_monitoring.py. :data:`LIVE_CHECKS` names that one
test per exporter of conf/metrics/exporters.yml, and a test here holds it complete.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from handbook import yamlfile
from handbook.paths import ROOT, rel
from handbook.prometheus import exporters, metrics
from handbook.pytest_plugin import REPORT, unavailable
from handbook.servers.base import Server

KNOWN = metrics.load_known_names()
CATALOGUE = metrics.load_metric_catalogue()
USED = exporters.used_names()
# Each exporter of conf/metrics/exporters.yml -> the one test that scrapes the real program
# for its names (Alertmanager's: the names the rules and snippets use).
LIVE_CHECKS = {
    "postgres_exporter": (
        "tests/test_exporters.py", "test_postgres_exporter_exports_every_pg_name_used"
    ),
    "redis_exporter": (
        "tests/test_exporters.py", "test_redis_exporter_exports_every_redis_name_used"
    ),
    "alertmanager": (
        "tests/test_meta_monitoring.py", "test_alertmanagers_own_metric_names_exist"
    ),
    "pgbouncer_exporter": (
        "tests/test_pgbouncer.py",
        "test_the_exporter_reads_the_pooler_and_serves_every_pgbouncer_metric_conf_uses",
    ),
}  # fmt: skip


def expected_names(exporter: str) -> dict[str, list[str]]:
    """The names this exporter must export -> who relies on them."""
    prefix = next(p for p, name in metrics.EXPORTER_PREFIXES.items() if name == exporter)
    expected = {
        name: [f"{rel(KNOWN.path)}:{line}"]
        for name, line in KNOWN.exporters.get(exporter, {}).items()
    }
    for name, where in USED.items():
        if name.startswith(prefix):
            expected.setdefault(name, []).extend(where)
    return expected


def start(name: str, server: Server, workaround: bool = True) -> exporters.Running:
    try:
        return exporters.start(name, server, workaround)
    except exporters.ExporterMissing as exc:
        message = str(exc)
    unavailable(message)


def scraped(
    name: str, server: Server, request: pytest.FixtureRequest, workaround: bool = True
) -> tuple[str, dict, exporters.Running]:
    running = start(name, server, workaround)
    try:
        text = running.scrape()
    finally:
        running.stop()
    if workaround:
        request.config.stash[REPORT].exporters[f"{name}@{server.label}"] = running.describe()
    return text, exporters.sample_names(text), running


def test_every_name_is_erpgos_an_exporters_or_prometheus_own():
    """Names outside the exporters' prefixes must be in the catalogue or Prometheus' own."""
    own = CATALOGUE.series_names() | set(KNOWN.prometheus)
    prefixes = tuple(metrics.EXPORTER_PREFIXES)
    stray = {
        name: where
        for name, where in USED.items()
        if not name.startswith(prefixes) and name not in own
    }
    assert not stray, "\n".join(
        f"{'; '.join(where)}: {name} is neither in {rel(CATALOGUE.path)} nor "
        f"Prometheus' own series ({rel(KNOWN.path)}): declare it or fix the name"
        for name, where in sorted(stray.items())
    )
    exporter_names = {n for n in USED if n.startswith(prefixes)}
    assert {"pg_up", "redis_keyspace_hits_total"} <= exporter_names, "the rules use them"


def test_every_exporter_has_the_one_test_that_scrapes_it():
    """An exporter listed in conf/metrics/exporters.yml (or given a prefix in
    handbook/prometheus/metrics.py) without a live check would go unverified."""
    entries = yamlfile.load(KNOWN.path)["exporters"]
    problems = [
        f"{rel(KNOWN.path)}:{yamlfile.line(entries, exporter)}: {exporter} has no live check: "
        "name the test that scrapes the real exporter in LIVE_CHECKS (tests/test_exporters.py)"
        for exporter in sorted(set(KNOWN.exporters) | set(metrics.EXPORTER_PREFIXES.values()))
        if exporter not in LIVE_CHECKS
    ]
    for exporter, (path, name) in sorted(LIVE_CHECKS.items()):
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        if name not in defined:
            here = Path(__file__).read_text(encoding="utf-8").splitlines()
            at = next((n for n, row in enumerate(here, 1) if f'"{name}"' in row), 1)
            problems.append(
                f"{rel(Path(__file__))}:{at}: LIVE_CHECKS names {path}::{name} for {exporter}, "
                f"which {path} does not define: name the test that scrapes it"
            )
    assert not problems, "\n".join(problems)


def test_postgres_exporter_exports_every_pg_name_used(pg_server, request):
    text, names, running = scraped("postgres_exporter", pg_server, request)
    assert exporters.value_of(text, "pg_up") == 1, (
        f"{running.describe()} reports pg_up != 1: it could not reach the server"
    )
    problems = exporters.missing(expected_names("postgres_exporter"), names, running)
    assert not problems, "\n".join(problems)
    assert not exporters.failed_collectors(text), f"{running.describe()}: collectors failed"
    if pg_server.major[0] < exporters.BGWRITER_BROKEN_FROM:
        assert "pg_stat_bgwriter_buffers_alloc_total" in names, "the bgwriter collector ran"
    else:
        assert running.notes and "bgwriter collector disabled" in running.notes[0]


def test_the_bgwriter_collector_fails_where_the_workaround_turns_it_off(pg_server, request):
    """Why the workaround exists: postgres_exporter 0.11 reads pg_stat_bgwriter columns
    that PostgreSQL 17 moved; from 17 on, its bgwriter collector fails on every scrape."""
    text, _, running = scraped("postgres_exporter", pg_server, request, workaround=False)
    broken = pg_server.major[0] >= exporters.BGWRITER_BROKEN_FROM
    assert exporters.failed_collectors(text) == (["bgwriter"] if broken else []), (
        f"{running.describe()}: revisit BGWRITER_BROKEN_FROM in handbook/prometheus/exporters.py"
    )


def test_redis_exporter_exports_every_redis_name_used(redis_server, request):
    text, names, running = scraped("redis_exporter", redis_server, request)
    assert exporters.value_of(text, "redis_up") == 1, (
        f"{running.describe()} reports redis_up != 1: it could not reach the server"
    )
    problems = exporters.missing(expected_names("redis_exporter"), names, running)
    assert not problems, "\n".join(problems)


def test_a_name_the_exporter_lacks_is_reported_with_its_user_and_a_suggestion():
    running = exporters.Running(
        "redis_exporter", "x", "1.45.0", "Redis 7.0.15, local", "http://127.0.0.1:1/metrics"
    )
    expected = {"redis_keyspace_hit_total": ["snippets/promql/cache/hit_rate.promql:3"]}
    scraped_names = {"redis_keyspace_hits_total": 1, "redis_up": 1}
    assert exporters.missing(expected, scraped_names, running) == [
        "snippets/promql/cache/hit_rate.promql:3: redis_keyspace_hit_total is not exported by "
        "redis_exporter 1.45.0 against Redis 7.0.15, local: did you mean "
        "redis_keyspace_hits_total?"
    ]


def test_sample_names_are_what_a_selector_names():
    text = (
        "# HELP pg_up Whether the last scrape was able to connect.\n"
        "# TYPE pg_up gauge\npg_up 1\n"
        'pg_stat_database_numbackends{datid="5",datname="postgres"} 3\n'
        'x_bucket{le="+Inf"} 2\n'
    )
    assert exporters.sample_names(text) == {
        "pg_up": 1,
        "pg_stat_database_numbackends": 1,
        "x_bucket": 1,
    }
    assert exporters.value_of(text, "pg_stat_database_numbackends") == 3
