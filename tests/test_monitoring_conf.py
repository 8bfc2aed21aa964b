"""The monitoring stack's configs: Prometheus for real, Grafana and Jaeger by structure.

prometheus.yml passes ``promtool check config`` and boots a real Prometheus that loads
the ERPGo alerts and knows both Alertmanagers. Grafana and Jaeger are not installed on
the test machine: their files are checked for what their loaders require and for the
references between files (data source uids, metric names, ports); every dashboard
query is parsed by promtool.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from handbook.paths import rel
from handbook.prometheus import alerts, metrics, monitoring
from handbook.prometheus.tools import ToolMissing, require_tool
from handbook.pytest_plugin import unavailable
from handbook.yamlfile import load as load_yaml

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [pytest.mark.covers("20.4")]


def _tool(get):
    try:
        return get()
    except ToolMissing as exc:
        unavailable(str(exc))


def test_promtool_check_config_passes():
    promtool = _tool(lambda: require_tool("promtool"))
    done = subprocess.run(
        [promtool, "check", "config", str(monitoring.PROMETHEUS_CONF)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{rel(monitoring.PROMETHEUS_CONF)}:\n{done.stdout}{done.stderr}"
    groups = load_yaml(alerts.RULES_FILE)["groups"]
    rules = sum(len(group["rules"]) for group in groups)  # it loaded every rule of the file
    assert f"SUCCESS: {rules} rules found" in done.stdout, done.stdout


def test_prometheus_loads_the_rules_and_alertmanagers():
    _tool(monitoring.find_prometheus)
    config = load_yaml(monitoring.PROMETHEUS_CONF)
    server = monitoring.boot_prometheus()
    try:
        groups = server.api("/api/v1/rules")["groups"]
        loaded = {rule["name"] for group in groups for rule in group["rules"]}
        assert loaded == {a.name for a in alerts.load_rules()}, loaded
        assert all(g["file"].endswith("alert_rules.yml") for g in groups)
        wanted = {
            f"http://{target}/api/v2/alerts"
            for am in config["alerting"]["alertmanagers"]
            for sc in am["static_configs"]
            for target in sc["targets"]
        }
        active: set[str] = set()
        deadline = time.monotonic() + 20  # discovery runs in the background: wait for it
        while time.monotonic() < deadline and active != wanted:
            data = server.api("/api/v1/alertmanagers")
            active = {am["url"] for am in data["activeAlertmanagers"]}
            time.sleep(0.2)
        assert active == wanted, f"{rel(monitoring.PROMETHEUS_CONF)}: alerting: {active}"
    finally:
        server.stop()


def test_scrape_jobs_cover_what_the_alerts_and_catalogue_need():
    config = load_yaml(monitoring.PROMETHEUS_CONF)
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    # conf/metrics/erpgo.yml: the API pods are job "erpgo"; the exporters feed pg_* and redis_*.
    assert {"erpgo", "postgres", "redis", "alertmanager"} <= jobs, jobs
    assert config["rule_files"] == ["alert_rules.yml"]
    assert (monitoring.PROMETHEUS_CONF.parent / "alert_rules.yml") == alerts.RULES_FILE


def test_grafana_provisioning_and_dashboards_are_consistent():
    known = metrics.load_metric_catalogue().series_names() | metrics.load_known_names().names()
    problems = monitoring.grafana_problems(known)
    assert not problems, "\n".join(problems)
    assert set(monitoring.datasource_uids()) == {"prometheus", "jaeger", "alertmanager"}
    assert len(monitoring.dashboard_queries()) >= 6


def test_grafana_check_catches_an_unknown_metric():
    problems = monitoring.grafana_problems(known_metrics=set())
    assert any("erpgo_http_requests_total" in p for p in problems), problems


def test_every_dashboard_query_parses_in_promtool(tmp_path):
    promtool = _tool(lambda: require_tool("promtool"))
    rules = monitoring.dashboard_rules_file(tmp_path)
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    queries = monitoring.dashboard_queries()
    assert done.returncode == 0, (
        f"{rel(monitoring.DASHBOARDS)}: a panel query is not valid PromQL "
        f"(query_N is the N-th of {[(rel(p), t) for p, t, _ in queries]}):\n{done.stdout}"
        f"{done.stderr}"
    )
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_jaeger_pipeline_and_ports_match_the_other_files():
    problems = monitoring.jaeger_problems()
    assert not problems, "\n".join(problems)
