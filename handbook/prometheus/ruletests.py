"""The promtool unit tests of the alert rules (``conf/prometheus/tests/``) as objects,
and whether they cover every alert: each case of :func:`required_cases`, testing what
its name says.

A test group is named ``"<Alert>: <case>"``; a "fires" case expects the alert with the
rule's labels and runbook_url, a "silent" case expects nothing, and the ``for`` boundary
case expects silence one evaluation interval before the alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from handbook.paths import CONF, rel
from handbook.prometheus.alerts import RULES_FILE, Alert, kind_without_threshold
from handbook.prometheus.promql import parse_duration
from handbook.yamlfile import ConfigError, Finding
from handbook.yamlfile import line as line_of
from handbook.yamlfile import load as load_yaml

RULE_TESTS_DIR = CONF / "prometheus" / "tests"

# The promtool unit-test groups every alert needs, named "<Alert>: <case>".
THRESHOLD_CASES = (
    "fires just past the threshold",
    "silent at the threshold",
    "silent on the other side",
    "silent until for has elapsed",
    "silent with no traffic",
)
# For an equality (pg_up == 0) there is no "just past": the value is the threshold.
EQUALITY_CASES = (
    "fires at the threshold",
    "silent on the other side",
    "silent until for has elapsed",
    "silent with no traffic",
)
FOR_BOUNDARY_CASE = "silent until for has elapsed"
# A missing series (absent()) has two sides, absent and present; a series that reports 0
# (a server that is down, with its exporter up) is present.
ABSENCE_CASES = (
    "fires when the series is absent",
    "silent while the series is present",
    "silent when the series is 0",
    "silent until for has elapsed",
)
# The Watchdog fires at every evaluation, whatever else there is.
ALWAYS_CASES = ("fires at every evaluation",)


def required_cases(alert: Alert) -> tuple[str, ...]:
    """The unit-test cases the alert needs (see the header of the rule tests)."""
    kind = kind_without_threshold(alert.expr) if alert.threshold is None else None
    if kind == "absent":
        return ABSENCE_CASES
    if kind == "always":
        return ALWAYS_CASES
    if alert.threshold is not None and alert.threshold.op in ("==", "!="):
        return EQUALITY_CASES
    return THRESHOLD_CASES


def rule_test_files(directory: Path = RULE_TESTS_DIR) -> list[Path]:
    return sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])


@dataclass
class RuleTestGroup:
    file: Path
    line: int
    name: str
    alert: str  # the part before ": "
    case: str  # the part after it
    # (eval_time in seconds, alertname, expected alerts) per alert_rule_test entry
    checks: list[tuple[float, str, list[dict]]]


def load_rule_tests(path: Path) -> tuple[dict, list[RuleTestGroup]]:
    """A promtool test file and its named groups; ConfigError (file:line) if malformed."""
    data = load_yaml(path)
    where = rel(path)
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise ConfigError(f"{where}:1: a promtool test file is a mapping with a 'tests' list")
    groups = []
    for group in data["tests"]:
        if not isinstance(group, dict):
            raise ConfigError(f"{where}:{line_of(data, 'tests')}: a test group is a mapping")
        name = str(group.get("name") or "")
        alert, _, case = name.partition(": ")
        checks = []
        for check in group.get("alert_rule_test") or []:
            try:
                eval_time = parse_duration(check.get("eval_time", ""))
            except ValueError as exc:
                raise ConfigError(f"{where}:{line_of(check)}: eval_time: {exc}") from None
            checks.append(
                (eval_time, str(check.get("alertname", "")), check.get("exp_alerts") or [])
            )
        groups.append(RuleTestGroup(path, line_of(group), name, alert, case, checks))
    return data, groups


def check_rule_tests(
    alerts: list[Alert],
    test_files: Iterable[Path] | None = None,
    rules_file: Path | None = None,
) -> list[Finding]:
    """Does every alert have every case of :func:`required_cases`, and does each case test it?

    A case "fires ..." must expect the alert with its severity and its runbook_url; a
    case "silent ..." must expect no alert; the ``for`` boundary case must expect
    silence one evaluation interval before it expects the alert.
    """
    test_files = list(rule_test_files() if test_files is None else test_files)
    rules_file = Path(rules_file or (alerts[0].source if alerts else RULES_FILE)).resolve()
    by_name = {alert.name: alert for alert in alerts}
    found: dict[tuple[str, str], RuleTestGroup] = {}
    findings: list[Finding] = []
    if not test_files:
        findings.append(Finding(rel(RULE_TESTS_DIR), None, "no promtool test files (*.yml)"))
    for path in test_files:
        data, groups = load_rule_tests(path)
        where = rel(path)
        resolved = {(path.parent / str(p)).resolve() for p in data.get("rule_files") or []}
        if rules_file not in resolved:
            findings.append(
                Finding(
                    where,
                    line_of(data, "rule_files") or 1,
                    f"rule_files does not name {rel(rules_file)} (paths are relative to the "
                    "test file; promtool only warns when a path matches nothing)",
                )
            )
        interval = parse_duration(data.get("evaluation_interval", "1m"))
        for group in groups:
            findings.extend(_check_group(group, by_name, interval, found))
    for alert in alerts:
        for case in required_cases(alert):
            if (alert.name, case) not in found:
                findings.append(
                    Finding(
                        rel(alert.source),
                        alert.line,
                        f"alert {alert.name} has no promtool unit test '{case}': add a group "
                        f'named "{alert.name}: {case}" to {rel(RULE_TESTS_DIR)}/',
                    )
                )
    return findings


def _check_group(
    group: RuleTestGroup,
    alerts: dict[str, Alert],
    interval: float,
    found: dict[tuple[str, str], RuleTestGroup],
) -> list[Finding]:
    where, line = rel(group.file), group.line
    if group.alert not in alerts or not group.case:
        return [
            Finding(
                where,
                line,
                f"test group {group.name!r} is not named '<Alert>: <case>' for an alert of "
                f"the rules file ({', '.join(alerts)})",
            )
        ]
    alert = alerts[group.alert]
    findings = []
    if (alert.name, group.case) in found:
        other = found[(alert.name, group.case)]
        findings.append(
            Finding(
                where, line, f"duplicate test group name (first at {rel(other.file)}:{other.line})"
            )
        )
    found.setdefault((alert.name, group.case), group)
    own = [check for check in group.checks if check[1] == alert.name]
    for _, alertname, _ in group.checks:
        if alertname != alert.name:
            findings.append(
                Finding(where, line, f"group {group.name!r} tests alertname {alertname!r}")
            )
    firing = [(t, exp) for t, _, exp in own if exp]
    silent = [t for t, _, exp in own if not exp]
    for _, expected in firing:
        for exp_alert in expected:
            labels = exp_alert.get("exp_labels") or {}
            annotations = exp_alert.get("exp_annotations") or {}
            for key, value in alert.labels.items():
                if str(labels.get(key)) != value:
                    findings.append(
                        Finding(where, line, f"exp_labels.{key} should be {value!r} (the rule's)")
                    )
            if annotations.get("runbook_url") != alert.runbook_url:
                findings.append(
                    Finding(
                        where,
                        line,
                        f"exp_annotations.runbook_url should be {alert.runbook_url!r} "
                        f"(the rule's, {alert.location})",
                    )
                )
    if group.case == FOR_BOUNDARY_CASE:
        pairs = [(t, s) for t, _ in firing for s in silent if t - s == interval]
        if not pairs:
            findings.append(
                Finding(
                    where,
                    line,
                    f"the 'for' boundary needs exp_alerts: [] at one eval_time and the firing "
                    f"alert {interval:g}s (one evaluation_interval) later",
                )
            )
    elif group.case.startswith("fires"):
        if not firing:
            findings.append(
                Finding(where, line, f"a 'fires' case must expect {alert.name} to fire")
            )
    elif group.case.startswith("silent") and (not silent or firing):
        findings.append(
            Finding(
                where, line, f"a 'silent' case must only expect exp_alerts: [] for {alert.name}"
            )
        )
    if not own:
        findings.append(Finding(where, line, f"no alert_rule_test for alertname {alert.name}"))
    return findings
