"""Guarantee 5: the alerts. Rules, their promtool unit tests, the metric catalogue and
Alertmanager, all checked with the real promtool, amtool and alertmanager.

Without those tools a test is skipped, saying what to install; under CI=true it fails.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from handbook.paths import rel
from handbook.prometheus.alertmanager import (
    ALERTMANAGER_CONFIG,
    amtool_check_config,
    amtool_render,
    amtool_routes,
)
from handbook.prometheus.alerts import (
    EXPECTED_ALERTS,
    RULES_FILE,
    Alert,
    check_alerts,
    load_rules,
    rules_for_base_url,
    split_runbook_url,
)
from handbook.prometheus.metrics import METRIC_TYPES, check_metrics, load_metric_catalogue
from handbook.prometheus.promql import (
    PromQLSyntaxError,
    extract_threshold,
    label_names,
    metric_names,
    parse_duration,
)
from handbook.prometheus.promtool import promtool_check_rules, promtool_test_rules
from handbook.prometheus.ruletests import (
    EQUALITY_CASES,
    THRESHOLD_CASES,
    check_rule_tests,
    required_cases,
    rule_test_files,
)
from handbook.prometheus.tools import ToolMissing, require_tool
from handbook.pytest_plugin import unavailable
from handbook.servers import cleanup
from handbook.site import DEFAULT_BASE_URL
from handbook.yamlfile import ConfigError, report

PAGING_RECEIVER = "pager-critical"
CHAT_RECEIVER = "chat-warnings"
# While PostgreSQL is down these are its symptoms: Alertmanager holds them back.
INHIBITED_BY_POSTGRESQL_DOWN = {
    "HighErrorRate",
    "HighResponseTime",
    "DatabaseConnectionPoolExhausted",
}

ALERTS = load_rules()
BY_NAME = {alert.name: alert for alert in ALERTS}


def need(tool: str) -> str:
    """The tool's path; otherwise a skip saying what to install (a failure under CI=true)."""
    try:
        return require_tool(tool)
    except ToolMissing as exc:
        message = str(exc)
    unavailable(message)


@pytest.fixture
def promtool() -> str:
    return need("promtool")


@pytest.fixture
def amtool() -> str:
    return need("amtool")


def plain_rules() -> dict:
    return yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


def write_rules(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=1000), encoding="utf-8")
    return path


def rule_of(data: dict, name: str) -> dict:
    return next(r for g in data["groups"] for r in g["rules"] if r.get("alert") == name)


# --------------------------------------------------------------------------- the rules


def test_the_rules_file_has_exactly_the_expected_alerts():
    assert sorted(BY_NAME) == sorted(EXPECTED_ALERTS), (
        f"{rel(RULES_FILE)}: the alerts differ from EXPECTED_ALERTS in "
        "handbook/prometheus/alerts.py: add or remove the rule, or the expected entry"
    )
    assert len(ALERTS) == len(BY_NAME), "an alert is defined twice"


def test_every_alert_is_complete():
    assert not check_alerts(ALERTS), report(check_alerts(ALERTS))


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_severity_duration_and_threshold_are_the_expected_ones(name):
    expected = EXPECTED_ALERTS[name]
    severity, duration, op, value = expected.severity, expected.for_, expected.op, expected.value
    alert = BY_NAME[name]
    where = alert.location
    assert alert.severity == severity, f"{where}: {name} severity {alert.severity}, spec {severity}"
    assert alert.for_seconds == parse_duration(duration), f"{where}: {name} for {alert.for_}"
    if op is None:
        assert alert.threshold is None, f"{where}: {name} compares {alert.threshold}"
        return
    assert alert.threshold is not None, f"{where}: {alert.threshold_error}"
    assert (alert.threshold.op, alert.threshold.value) == (op, value), (
        f"{where}: {name} compares {alert.threshold}, the spec says {op} {value}"
    )


@pytest.mark.covers("20.1")
@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_runbook_url_points_at_the_runbook_anchor_in_the_built_site(name):
    alert = BY_NAME[name]
    assert alert.runbook_url.startswith(DEFAULT_BASE_URL), f"{alert.location}: {alert.runbook_url}"
    expected = EXPECTED_ALERTS[name]
    assert alert.runbook_target() == (expected.page, expected.anchor), (
        f"{alert.location}: {alert.runbook_url}"
    )


def test_runbook_urls_move_with_the_published_base_url(tmp_path):
    moved = tmp_path / "rules.yml"
    moved.write_text(rules_for_base_url("https://ops.example.org/erpgo"), encoding="utf-8")
    for alert in load_rules(moved):
        target = alert.runbook_target("https://ops.example.org/erpgo/")
        expected = EXPECTED_ALERTS[alert.name]
        assert target == (expected.page, expected.anchor)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "no runbook_url"),
        ("https://github.com/x/erpgo/blob/main/RUNBOOKS.md#high-error-rate", "base URL"),
        (DEFAULT_BASE_URL + "runbooks/high-error-rate.html", "no '#anchor'"),
        (DEFAULT_BASE_URL + "runbooks/high-error-rate#high-error-rate", "not a page"),
        (DEFAULT_BASE_URL + "#high-error-rate", "not a page"),
    ],
)
def test_a_malformed_runbook_url_says_what_is_wrong(url, problem):
    with pytest.raises(ValueError, match=problem):
        split_runbook_url(url)


def test_a_missing_runbook_url_is_reported_naming_the_alert(tmp_path):
    data = plain_rules()
    del rule_of(data, "LowCacheHitRate")["annotations"]["runbook_url"]
    path = write_rules(tmp_path / "alert_rules.yml", data)
    rules = load_rules(path)
    findings = check_alerts(rules)
    line = next(a.line for a in rules if a.name == "LowCacheHitRate")
    assert [str(f) for f in findings] == [
        f"{path}:{line}: alert LowCacheHitRate has no annotations.runbook_url: add its runbook, "
        f"{DEFAULT_BASE_URL}runbooks/<page>.html#<anchor>"
    ]


def test_a_rule_without_severity_or_threshold_is_reported(tmp_path):
    data = plain_rules()
    rule = rule_of(data, "HighErrorRate")
    rule["labels"]["severity"] = "page"
    rule["expr"] = "sum(rate(erpgo_http_requests_total[5m])) > bool 3"
    findings = report(check_alerts(load_rules(write_rules(tmp_path / "r.yml", data))))
    assert "HighErrorRate: labels.severity is 'page'" in findings
    assert "HighErrorRate: no threshold: 'bool'" in findings


# --------------------------------------------------------------------------- PromQL reading


@pytest.mark.parametrize(
    ("expr", "op", "literal", "lhs"),
    [
        ("pg_up == 0", "==", "0", "pg_up"),
        ("a / (b > 0) > 0.05", ">", "0.05", "a / (b > 0)"),
        ('x{code=~"5.."} < 7e-1', "<", "7e-1", 'x{code=~"5.."}'),
        ("histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m]))) >= -1", ">=", "-1", None),
    ],
)
def test_the_threshold_is_the_literal_right_of_the_top_level_comparison(expr, op, literal, lhs):
    threshold = extract_threshold(expr)
    assert (threshold.op, threshold.literal) == (op, literal)
    if lhs:
        assert threshold.lhs == lhs


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(x[5m])", "the top level is 'rate"),
        ("a > 1 and b > 2", "top level is 'and'"),
        ("a > b", "not a single number"),
        ("a > 2 * 3", "not a single number"),
        ("a > bool 1", "bool"),
        ("(a > 1)", "outside parentheses"),
        ("rate(x[5m)", "cannot parse the expression"),
    ],
)
def test_an_expression_without_a_plain_threshold_is_refused(expr, problem):
    with pytest.raises(ValueError, match=problem):
        extract_threshold(expr)


def test_promtool_judges_what_the_parser_cannot_read():
    """A syntax error is a PromQLSyntaxError (a ValueError): callers that run promtool
    too let it say where the mistake is."""
    with pytest.raises(PromQLSyntaxError, match="unexpected character inside brackets"):
        metric_names("sum(rate(x[5m)))")


def test_durations_are_prometheus_durations():
    assert [parse_duration(d) for d in ("0s", "0m", "90s", "5m", "1h30m", "1d")] == [
        0,
        0,
        90,
        300,
        5400,
        86400,
    ]
    for bad in ("", "5x", "1.5h", "-5m", "5m1h"):
        with pytest.raises(ValueError, match="not a Prometheus duration"):
            parse_duration(bad)


def test_metric_names_are_the_selected_series_only():
    expr = (
        'histogram_quantile(0.95, sum by (service, le) (rate(erpgo_x_bucket{route="/a"}[5m]))'
        " and on (service) (sum without (code) (rate(erpgo_x_count[5m] offset 1h)) > 0))"
        ' / ignoring (pool) group_left (team) max(pg_up) + {__name__="redis_up"} > 1'
    )
    assert metric_names(expr) == {"erpgo_x_bucket", "erpgo_x_count", "pg_up", "redis_up"}
    assert label_names(expr) == {"service", "le", "route", "code", "pool", "team"}


def test_every_metric_is_erpgos_own_or_a_real_exporter_name():
    """ERPGo's metrics and labels are in the catalogue; pg_* and redis_* are the exporters'."""
    catalogue = load_metric_catalogue()
    assert not check_metrics(ALERTS, catalogue), report(check_metrics(ALERTS, catalogue))
    used = {name for alert in ALERTS for name in metric_names(alert.expr)}
    assert {"pg_up", "redis_keyspace_hits_total", "redis_keyspace_misses_total"} <= used


def test_an_undeclared_metric_or_label_is_reported(tmp_path):
    data = plain_rules()
    rule_of(data, "HighErrorRate")["expr"] = (
        "sum by (tenant) (rate(erpgo_http_errors_total[5m])) > 0.05"
    )
    rules = load_rules(write_rules(tmp_path / "r.yml", data))
    findings = report(check_metrics(rules, load_metric_catalogue()))
    assert "uses erpgo_http_errors_total, which is neither in conf/metrics/erpgo.yml" in findings
    assert "names label 'tenant'" in findings


def test_an_exporter_name_no_exporter_exports_is_reported(tmp_path):
    """pg_* is not enough: the name must be one tests/test_exporters.py found exported."""
    data = plain_rules()
    rule_of(data, "PostgreSQLDown")["expr"] = "pg_down == 1"
    rules = load_rules(write_rules(tmp_path / "r.yml", data))
    findings = report(check_metrics(rules, load_metric_catalogue()))
    assert (
        "alert PostgreSQLDown uses pg_down, which is neither in conf/metrics/erpgo.yml nor a "
        "known exporter metric (conf/metrics/exporters.yml)"
    ) in findings


def test_the_metric_catalogue_declares_only_erpgo_metrics():
    catalogue = load_metric_catalogue()
    assert catalogue.metrics, "conf/metrics/erpgo.yml declares no metric"
    for metric in catalogue.metrics.values():
        assert metric.name.startswith("erpgo_")
        assert metric.help and metric.type in METRIC_TYPES
    for name in ("erpgo_db_pool_connections_idle", "erpgo_db_pool_wait_count_total"):
        assert name in catalogue.metrics, f"the pool runbook needs {name}"
    assert "reason" in catalogue.metrics["erpgo_auth_login_failures_total"].labels


def test_a_broken_catalogue_entry_names_its_line(tmp_path):
    path = tmp_path / "erpgo.yml"
    path.write_text(
        "metrics:\n  erpgo_ok_total:\n    type: counter\n    help: fine\n"
        "  erpgo_requests:\n    type: counter\n    help: no _total\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"erpgo.yml:5: erpgo_requests: a counter"):
        load_metric_catalogue(path)


def test_latency_thresholds_are_histogram_bucket_boundaries():
    """histogram_quantile interpolates inside a bucket: the threshold must be a boundary."""
    catalogue = load_metric_catalogue()
    for alert in ALERTS:
        if "histogram_quantile" not in alert.expr:
            continue
        for name in metric_names(alert.expr):
            metric = catalogue.lookup(name)
            if metric and metric.type == "histogram":
                assert alert.threshold.value in metric.buckets, (
                    f"{alert.location}: {alert.name} threshold {alert.threshold.literal} is not "
                    f"a bucket of {metric.name} ({rel(catalogue.path)}:{metric.line})"
                )


# --------------------------------------------------------------------------- promtool


def test_promtool_check_rules_passes(promtool):
    result = promtool_check_rules(RULES_FILE)
    assert result.ok, result.report()


def test_promtool_unit_tests_pass(promtool):
    result = promtool_test_rules(*rule_test_files())
    assert result.ok, result.report()


def test_every_alert_has_every_required_unit_test_case():
    findings = check_rule_tests(ALERTS, rule_test_files())
    assert not findings, report(findings)


def _reduced_tests(tmp_path: Path, change) -> Path:
    """A copy of the rule tests, edited by ``change(data)``, still pointing at the rules."""
    source = rule_test_files()[0]
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["rule_files"] = [str(RULES_FILE)]
    change(data)
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=1000), encoding="utf-8")
    return path


def _group(data: dict, name: str) -> dict:
    return next(g for g in data["tests"] if g["name"] == name)


def _drop(name):
    return lambda data: data["tests"].remove(_group(data, name))


def _wrong_runbook(data):
    check = _group(data, "PostgreSQLDown: fires at the threshold")["alert_rule_test"][0]
    check["exp_alerts"][0]["exp_annotations"]["runbook_url"] = DEFAULT_BASE_URL + "x.html#x"


def _no_silent_step(data):
    group = _group(data, "LowCacheHitRate: silent until for has elapsed")
    group["alert_rule_test"] = [c for c in group["alert_rule_test"] if c["exp_alerts"]]


def _silent_that_fires(data):
    fires = _group(data, "HighResponseTime: fires just past the threshold")
    _group(data, "HighResponseTime: silent on the other side")["alert_rule_test"] = fires[
        "alert_rule_test"
    ]


def _misnamed(data):
    _group(data, "HighErrorRate: silent on the other side")["name"] = "HighErrorRates: healthy"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _drop("HighErrorRate: silent at the threshold"),
            "alert HighErrorRate has no promtool unit test 'silent at the threshold'",
        ),
        (
            _drop("PostgreSQLDown: silent with no traffic"),
            "alert PostgreSQLDown has no promtool unit test 'silent with no traffic'",
        ),
        (_wrong_runbook, "exp_annotations.runbook_url should be"),
        (_no_silent_step, "the 'for' boundary needs exp_alerts: []"),
        (_silent_that_fires, "a 'silent' case must only expect exp_alerts: []"),
        (_misnamed, "'HighErrorRates: healthy' is not named '<Alert>: <case>'"),
    ],
    ids=[
        "missing-case",
        "missing-idle-case",
        "wrong-runbook",
        "no-for-step",
        "silent-fires",
        "name",
    ],
)
def test_the_coverage_check_catches_a_weakened_test_file(tmp_path, change, expected):
    path = _reduced_tests(tmp_path, change)
    findings = check_rule_tests(ALERTS, [path])
    assert findings, "the coverage check accepted a weakened test file"
    assert expected in report(findings)
    for finding in findings:
        assert finding.line, f"no line in {finding}"
        assert finding.path in (str(path), rel(RULES_FILE))


def test_rule_tests_must_load_the_rules_file(tmp_path):
    path = _reduced_tests(tmp_path, lambda data: data.update(rule_files=["missing.yml"]))
    findings = report(check_rule_tests(ALERTS, [path]))
    assert "rule_files does not name conf/prometheus/alert_rules.yml" in findings


def _mutations(alert: Alert):
    """(what, new comparison, new `for` in seconds, case whose unit test must now fail)."""
    op, value = alert.threshold.op, alert.threshold.value
    if op == "==":
        yield "threshold flipped", f"{op} {1 - value:g}", None, "fires"
    else:
        harder, easier = (1.1, 0.9) if op in (">", ">=") else (0.9, 1.1)
        yield "threshold 10% harder to reach", f"{op} {value * harder:.10g}", None, "fires"
        yield "threshold 10% easier to reach", f"{op} {value * easier:.10g}", None, "silent"
    yield "for one evaluation longer", None, alert.for_seconds + 60, "silent until"
    yield "for one evaluation shorter", None, alert.for_seconds - 60, "silent until"


MUTATIONS = [
    (alert.name, *mutation)
    for alert in ALERTS
    if alert.threshold is not None
    for mutation in _mutations(alert)
]


@pytest.mark.parametrize(
    ("name", "what", "comparison", "for_seconds", "case"),
    MUTATIONS,
    ids=[f"{m[0]}-{m[1].replace(' ', '-')}" for m in MUTATIONS],
)
def test_the_unit_tests_fail_when_the_rule_drifts(
    promtool, tmp_path, name, what, comparison, for_seconds, case
):
    """Mutation check: a threshold or `for` moved by a little must break a unit test."""
    alert = BY_NAME[name]
    data = plain_rules()
    rule = rule_of(data, name)
    if comparison:
        rule["expr"] = f"{alert.threshold.lhs} {comparison}"
    if for_seconds is not None:
        rule["for"] = f"{int(for_seconds)}s"
    mutated = write_rules(tmp_path / "alert_rules.yml", data)
    result = promtool_test_rules(*rule_test_files(), rules_file=mutated, only=[name])
    assert not result.ok, f"{name}: the unit tests still pass with the {what}"
    failed = [f for f in result.findings if f'"{name}: ' in f.message]
    assert failed, result.report()
    assert any(f'"{name}: {case}' in f.message for f in failed), result.report()
    for finding in failed:  # the failing group's own line, and the rule's
        assert finding.path.endswith("alert_rules_test.yml") and finding.line, finding
        assert f"rule at {mutated}:" in finding.message, finding


def test_idle_services_measure_no_nan_and_no_inf(promtool, tmp_path):
    """On each alert's idle data ("silent with no traffic"), the measured value (the left
    of the comparison, what $value shows) has no NaN or Inf sample at any time: a ratio
    over no traffic is no series at all, not 0/0."""
    tests = []
    for path in rule_test_files():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in data["tests"]:
            alert, _, case = group["name"].partition(": ")
            if case != "silent with no traffic":
                continue
            lhs = BY_NAME[alert].threshold.lhs
            not_finite = f"({lhs}) unless (abs({lhs}) < +Inf)"
            times = {"1m", "5m", group["alert_rule_test"][0]["eval_time"]}
            tests.append(
                {
                    "name": f"{alert}: measured value when idle",
                    "interval": group.get("interval", "1m"),
                    "input_series": group["input_series"],
                    "promql_expr_test": [
                        {"expr": not_finite, "eval_time": t, "exp_samples": []}
                        for t in sorted(times)
                    ],
                }
            )
    assert len(tests) == sum("silent with no traffic" in required_cases(a) for a in ALERTS)
    path = tmp_path / "idle_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "tests": tests}), encoding="utf-8")
    result = promtool_test_rules(path)
    assert result.ok, result.report()


def test_the_idle_check_sees_a_nan(promtool, tmp_path):
    """The check above would see 0/0: an unguarded ratio on idle data is NaN."""
    lhs = "sum(rate(x[5m])) / sum(rate(y[5m]))"
    test = {
        "interval": "1m",
        "input_series": [{"series": "x", "values": "0x10"}, {"series": "y", "values": "0x10"}],
        "promql_expr_test": [
            {"expr": f"({lhs}) unless (abs({lhs}) < +Inf)", "eval_time": "5m", "exp_samples": []}
        ],
    }
    path = tmp_path / "nan_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "tests": [test]}), encoding="utf-8")
    assert not promtool_test_rules(path).ok


def test_a_broken_expression_fails_naming_file_and_line(promtool, tmp_path):
    text = RULES_FILE.read_text(encoding="utf-8")
    good = "erpgo_http_requests_total[5m])) > 0)"
    assert good in text
    broken = text.replace(good, "erpgo_http_requests_total[5m)) > 0)", 1)
    line = text[: text.index(good)].count("\n") + 1
    path = tmp_path / "alert_rules.yml"
    path.write_text(broken, encoding="utf-8")
    result = promtool_check_rules(path)
    assert not result.ok
    assert [(f.path, f.line) for f in result.findings] == [(str(path), line)], result.report()
    assert "alert HighErrorRate: could not parse expression" in result.findings[0].message
    assert "parse error" in result.findings[0].message
    # and the unit tests run against it say the same, not "no alert fired"
    tested = promtool_test_rules(*rule_test_files(), rules_file=path)
    assert not tested.ok
    assert f"{path}:{line}: alert HighErrorRate" in report(tested.findings)


@pytest.mark.parametrize("style", ["|-", ">-"])
def test_the_line_inside_a_multiline_expression_is_found(promtool, tmp_path, style):
    """promtool says "3:10" inside the expression; the finding names the file's line."""
    path = tmp_path / "rules.yml"
    path.write_text(
        "groups:\n"
        "  - name: g\n"
        "    rules:\n"
        "      - alert: A\n"
        f"        expr: {style}\n"
        "          sum by (job) (rate(x[5m]))\n"
        "            /\n"
        "          (sum by (job) (rate(y[5m)) > 0)\n"
        "          > 0.5\n",
        encoding="utf-8",
    )
    result = promtool_check_rules(path)
    assert [(f.path, f.line) for f in result.findings] == [(str(path), 8)], result.report()


def test_an_invalid_for_is_located(promtool, tmp_path):
    data = plain_rules()
    rule_of(data, "PostgreSQLDown")["for"] = "1x"
    path = write_rules(tmp_path / "alert_rules.yml", data)
    result = promtool_check_rules(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert not result.ok
    finding = result.findings[0]
    assert finding.path == str(path) and "for: 1x" in lines[finding.line - 1], result.report()


def test_a_missing_tool_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("HANDBOOK_PROMTOOL", raising=False)
    with pytest.raises(ToolMissing, match="apt-get install prometheus prometheus-alertmanager"):
        require_tool("promtool")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install"):
        need("promtool")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="apt-get install"):
        need("promtool")


def test_required_cases_follow_the_comparison():
    assert required_cases(BY_NAME["PostgreSQLDown"]) == EQUALITY_CASES
    assert required_cases(BY_NAME["LowCacheHitRate"]) == THRESHOLD_CASES


# --------------------------------------------------------------------------- Alertmanager


def am_config() -> dict:
    return yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))


def test_amtool_check_config_passes(amtool):
    result = amtool_check_config(ALERTMANAGER_CONFIG)
    assert result.ok, result.report()


def test_a_broken_template_is_located(amtool, tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "alertmanager.yml").write_text(
        ALERTMANAGER_CONFIG.read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp_path / "templates" / "bad.tmpl").write_text(
        '{{ define "x" }}\n{{ .Foo \n', encoding="utf-8"
    )
    result = amtool_check_config(tmp_path / "alertmanager.yml")
    assert not result.ok
    assert result.findings[0].path == str(tmp_path / "templates" / "bad.tmpl")
    assert result.findings[0].line == 2, result.report()


def test_the_config_holds_no_secret():
    """Keys, tokens and webhook URLs come from mounted files (*_file), never inline."""
    inline = {"routing_key", "service_key", "api_url", "url", "password", "bearer_token"}

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                templated = isinstance(value, str) and "{{" in value  # a link, not a secret
                # a webhook URL that names a check, its token read from a file
                token_file = key == "url" and "credentials_file" in str(node.get("http_config"))
                assert key not in inline or templated or token_file, (
                    f"{rel(ALERTMANAGER_CONFIG)}: {path}.{key} is inline: use {key}_file"
                )
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    config = am_config()
    walk(config.get("receivers"), "receivers")
    walk(config.get("global"), "global")


def test_the_templates_glob_finds_the_templates():
    config = am_config()
    found = [p for g in config["templates"] for p in ALERTMANAGER_CONFIG.parent.glob(g)]
    assert found, f"{rel(ALERTMANAGER_CONFIG)}: templates {config['templates']} match no file"


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_critical_pages_and_warning_goes_to_chat(amtool, name):
    alert = BY_NAME[name]
    # the incident responder also gets the ERPGo alerts: tests/test_respond.py checks which
    receivers = [r for r in amtool_routes(alert.notification_labels()) if r != "incident-responder"]
    expected = PAGING_RECEIVER if alert.severity == "critical" else CHAT_RECEIVER
    if alert.severity == "none":  # the Watchdog: a heartbeat for the dead man's switch
        expected = "deadmans-switch"
    assert receivers == [expected], f"{alert.location}: {name} ({alert.severity}) -> {receivers}"


def test_the_receivers_are_a_pager_and_a_chat():
    receivers = {r["name"]: r for r in am_config()["receivers"]}
    assert receivers[PAGING_RECEIVER].get("pagerduty_configs"), "the paging receiver must page"
    assert receivers[CHAT_RECEIVER].get("slack_configs"), "the chat receiver must post to chat"


def _notification_data(alert: Alert, receiver: str) -> dict:
    labels = {**alert.notification_labels(), "service": "erpgo-api", "instance": "10.42.1.17:8080"}
    entry = {
        "status": "firing",
        "labels": labels,
        "annotations": alert.annotations,
        "startsAt": "2025-11-25T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "0123456789abcdef",
    }
    return {
        "receiver": receiver,
        "status": "firing",
        "alerts": [entry],
        "groupLabels": {"alertname": alert.name},
        "commonLabels": labels,
        "commonAnnotations": alert.annotations,
        "externalURL": "http://alertmanager:9093",
    }


def _templated_strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _templated_strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _templated_strings(value)]
    return [node] if isinstance(node, str) and "{{" in node else []


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_every_notification_shows_the_runbook_url(amtool, name):
    alert = BY_NAME[name]
    for receiver in am_config()["receivers"]:
        fields = _templated_strings(receiver)
        if not fields and set(receiver) == {"name", "webhook_configs"}:
            continue  # a webhook posts the alerts as JSON, their runbook_url included
        assert fields, f"receiver {receiver['name']} uses no template"
        separator = "\n<<<field>>>\n"
        rendered = amtool_render(separator.join(fields), _notification_data(alert, "x"))
        assert alert.runbook_url in rendered, f"receiver {receiver['name']}:\n{rendered}"
        for text in rendered.split(separator):
            assert text.strip(), f"receiver {receiver['name']}: a template renders empty"
            assert "<no value>" not in text, f"receiver {receiver['name']}: {text}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager on a free loopback port, with the project's config."""
    binary = need("alertmanager")
    port = _free_port()
    log_path = tmp_path / "alertmanager.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={ALERTMANAGER_CONFIG}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"alertmanager did not start:\n{log_path.read_text()}")
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        cleanup.end_process(process, timeout=10)  # then SIGTERM again, then SIGKILL


def _post(url: str, payload: list[dict]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def _states(url: str) -> dict[tuple[str, str], str]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
        listed = json.load(response)
    return {
        (a["labels"]["alertname"], a["labels"].get("environment", "")): a["status"]["state"]
        for a in listed
    }


def test_postgresql_down_holds_back_the_alerts_it_causes(alertmanager):
    """Real Alertmanager, the project's inhibit rules, each alert's labels from the rules."""
    series = {
        "PostgreSQLDown": {"job": "postgres", "instance": "pg-exporter-0:9187"},
        "LowCacheHitRate": {"job": "redis", "instance": "redis-exporter-0:9121"},
    }
    payload = []
    for environment in ("production", "staging"):
        for alert in ALERTS:
            if environment == "staging" and alert.name == "PostgreSQLDown":
                continue  # staging's database is fine
            labels = series.get(alert.name, {"service": "erpgo-api", "instance": "10.42.1.17:8080"})
            payload.append(
                {
                    "labels": {**alert.notification_labels(), **labels, "environment": environment},
                    "annotations": {"runbook_url": alert.runbook_url},
                }
            )
    _post(alertmanager, payload)
    expected = {
        (alert.name, environment): (
            "suppressed"
            if environment == "production" and alert.name in INHIBITED_BY_POSTGRESQL_DOWN
            else "active"
        )
        for environment in ("production", "staging")
        for alert in ALERTS
        if (alert.name, environment) != ("PostgreSQLDown", "staging")
    }
    deadline = time.monotonic() + 10
    while (states := _states(alertmanager)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert states == expected


# --------------------------------------------------------------------------- the rendered header

RUNBOOK_PAGE = "(high-error-rate)=\n# High error rate\n\n```{alert} HighErrorRate\n```\n"
CONF_PY = """\
extensions = ["myst_parser"]


def setup(app):
    from handbook.sphinxext import alerts

    app.setup_extension("handbook.sphinxext.docstore")
    alerts.setup(app)
"""


def render_runbook(root: Path, rules_text: str) -> str:
    """A one-page site with the {alert} header of HighErrorRate, built from these rules."""
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "prometheus").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "conf.py").write_text(CONF_PY, encoding="utf-8")
    (root / "docs" / "index.md").write_text(RUNBOOK_PAGE, encoding="utf-8")
    (root / "conf" / "prometheus" / "alert_rules.yml").write_text(rules_text, encoding="utf-8")
    out = root / "html"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", "-d", str(root / "dt"),
         str(root / "docs"), str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (out / "index.html").read_text(encoding="utf-8")


def test_a_threshold_change_changes_the_header_and_fails_a_unit_test(promtool, tmp_path):
    """Done when: the header is rendered from the rule, and the unit tests pin the rule."""
    text = RULES_FILE.read_text(encoding="utf-8")
    assert "\n          > 0.05\n" in text
    changed = text.replace("\n          > 0.05\n", "\n          > 0.07\n", 1)
    before = render_runbook(tmp_path / "before", text)
    after = render_runbook(tmp_path / "after", changed)
    assert "&gt; 0.05" in before and "&gt; 0.07" not in before
    assert "&gt; 0.07" in after and "&gt; 0.05" not in after, "the header did not follow the rule"
    mutated = tmp_path / "after" / "conf" / "prometheus" / "alert_rules.yml"
    result = promtool_test_rules(*rule_test_files(), rules_file=mutated, only=["HighErrorRate"])
    assert not result.ok, "the unit tests still pass with HighErrorRate at > 0.07"
    assert '"HighErrorRate: fires just past the threshold"' in report(result.findings)


def test_a_runbook_url_whose_anchor_the_built_site_lacks_names_alert_and_url(tmp_path, caplog):
    """The check on the built HTML (after the source checks): names the alert and its URL."""
    from types import SimpleNamespace

    from handbook.sphinxext import alerts as extension

    (tmp_path / "docs").mkdir()
    (tmp_path / "conf" / "prometheus").mkdir(parents=True)
    (tmp_path / "conf" / "prometheus" / "alert_rules.yml").write_text(
        RULES_FILE.read_text(encoding="utf-8"), encoding="utf-8"
    )
    out = tmp_path / "html"
    for alert in ALERTS:
        page, anchor = alert.runbook_target()
        (out / page).parent.mkdir(parents=True, exist_ok=True)
        keep = alert.name != "LowCacheHitRate"
        (out / page).write_text(f'<section id="{anchor if keep else "x"}"></section>')
    env = SimpleNamespace(note_dependency=lambda path: None)
    app = SimpleNamespace(
        confdir=str(tmp_path / "docs"), outdir=str(out), builder=SimpleNamespace(format="html")
    )
    env.app, app.env = app, env
    with caplog.at_level("WARNING"):
        extension.check_built_anchors(app, None)
    warnings = [r.getMessage() for r in caplog.records]
    url = BY_NAME["LowCacheHitRate"].runbook_url
    assert len(warnings) == 1, warnings
    assert f"LowCacheHitRate's runbook_url {url} lands nowhere" in warnings[0]
    assert "no anchor #low-cache-hit-rate in runbooks/low-cache-hit-rate.html" in warnings[0]
