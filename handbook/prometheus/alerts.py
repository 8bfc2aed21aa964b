"""The alert rules and their promtool unit tests, as objects the pages and tests share.

The Sphinx side renders an alert's expression, threshold and duration from
``conf/prometheus/alert_rules.yml`` through :func:`load_rules`; the test suite
checks the same objects against the spec (:func:`check_alerts`), the unit-test
coverage (:func:`check_rule_tests`) and the metric names (:func:`check_metrics`).

Related modules: :mod:`handbook.prometheus.promql` (reading expressions),
:mod:`handbook.prometheus.metrics` (which metric names exist),
:mod:`handbook.prometheus.promtool` and :mod:`handbook.prometheus.alertmanager`
(the real tools), :mod:`handbook.yamlfile` (findings that name ``file:line``). The
names they define that callers used from here are re-exported below.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from handbook.paths import CONF, rel
from handbook.prometheus.metrics import (  # noqa: F401 - re-exported
    EXPORTER_PREFIXES,
    METRIC_CATALOGUE,
    METRIC_TYPES,
    SCRAPE_LABELS,
    KnownNames,
    Metric,
    MetricCatalogue,
    load_known_names,
    load_metric_catalogue,
)
from handbook.prometheus.promql import (  # noqa: F401 - re-exported
    COMPARISONS,
    SET_OPERATORS,
    Threshold,
    extract_threshold,
    label_names,
    metric_names,
    parse_duration,
)
from handbook.prometheus.tools import ToolMissing, require_tool  # noqa: F401 - re-exported
from handbook.yamlfile import ConfigError, Finding, LineMap, report  # noqa: F401
from handbook.yamlfile import line as line_of
from handbook.yamlfile import load as load_yaml

RULES_FILE = CONF / "prometheus" / "alert_rules.yml"
RULE_TESTS_DIR = CONF / "prometheus" / "tests"

DEFAULT_BASE_URL = "https://docs.erpgo.com/handbook/"
SEVERITIES = ("critical", "warning")

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


@dataclass
class _ScalarSource:
    """Where a scalar's text is in its file, to turn a position inside it into a file line."""

    line: int  # 1-based line of the value (the '>-' of a block scalar)
    style: str | None
    lines: list[str]  # the file's lines

    def fileline_of(self, value: str, line: int, column: int) -> int:
        """File line of ``line:column`` (1-based) inside ``value``; the value's line if unsure."""
        if self.style not in (">", "|"):
            return self.line
        body, start = [], self.line  # self.line is 1-based: the content starts on the next line
        indent = None
        for raw in self.lines[start:]:
            stripped = raw.strip()
            width = len(raw) - len(raw.lstrip(" "))
            if stripped and indent is None:
                indent = width
            if stripped and indent is not None and width < indent:
                break
            body.append(raw[indent or 0 :] if stripped else "")
        while body and not body[-1]:
            body.pop()
        text, owners = self._fold(body) if self.style == ">" else ("\n".join(body), None)
        if text != value.rstrip("\n"):
            return self.line
        lines = text.split("\n")
        if line < 1 or line > len(lines):
            return self.line
        offset = sum(len(x) + 1 for x in lines[: line - 1]) + max(column - 1, 0)
        if owners is None:
            return self.line + line
        return self.line + 1 + owners[min(offset, len(owners) - 1)]

    @staticmethod
    def _fold(body: list[str]) -> tuple[str, list[int]]:
        """A folded block scalar's value and, per character, which body line it came from."""
        out: list[str] = []
        owners: list[int] = []
        previous, empties = None, 0
        for number, text in enumerate(body):
            if not text:
                empties += 1
                continue
            kind = "more" if text[0] in " \t" else "normal"
            if previous is not None:
                if previous == "normal" and kind == "normal":
                    sep = " " if empties == 0 else "\n" * empties
                else:
                    sep = "\n" * (empties + 1)
                out.append(sep)
                owners.extend([number] * len(sep))
            out.append(text)
            owners.extend([number] * len(text))
            previous, empties = kind, 0
        return "".join(out), owners


@dataclass
class Alert:
    name: str
    group: str
    expr: str
    for_: str  # as written, "0s" when the rule has none
    labels: dict[str, str]
    annotations: dict[str, str]
    source: Path
    line: int  # the rule's "- alert:" line
    expr_line: int
    threshold: Threshold | None
    threshold_error: str = ""
    _expr_source: _ScalarSource | None = field(default=None, repr=False, compare=False)

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "")

    @property
    def description(self) -> str:
        return self.annotations.get("description", "")

    @property
    def runbook_url(self) -> str:
        return self.annotations.get("runbook_url", "")

    @property
    def for_seconds(self) -> float:
        return parse_duration(self.for_)

    @property
    def location(self) -> str:
        return f"{rel(self.source)}:{self.line}"

    def runbook_target(self, base_url: str = DEFAULT_BASE_URL) -> tuple[str, str]:
        """``("runbooks/high-error-rate.html", "high-error-rate")``; ValueError if malformed."""
        return split_runbook_url(self.runbook_url, base_url)

    def expr_fileline_of(self, line: int, column: int) -> int:
        """The file line of a position promtool reports inside the expression (``3:63``)."""
        if self._expr_source is None:
            return self.expr_line
        return self._expr_source.fileline_of(self.expr, line, column)

    def notification_labels(self) -> dict[str, str]:
        """The labels every notification of this alert carries, whatever the series."""
        return {"alertname": self.name, **self.labels}


def load_rules(path: Path | str = RULES_FILE) -> list[Alert]:
    """Every alerting rule of a Prometheus rules file, in file order (recording rules skipped).

    Raises :class:`ConfigError` naming ``file:line`` when the file is not a rules
    file. Policy (severity, annotations, runbook_url, threshold) is checked by
    :func:`check_alerts`, so one bad rule does not hide the others.
    """
    path = Path(path)
    data = load_yaml(path)
    where = rel(path)
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise ConfigError(f"{where}:1: a rules file is a mapping with a 'groups' list")
    lines = path.read_text(encoding="utf-8").splitlines()
    alerts = []
    for group in data["groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
            raise ConfigError(f"{where}:{line_of(group)}: a group needs a name and a 'rules' list")
        for rule in group["rules"]:
            if not isinstance(rule, dict):
                raise ConfigError(f"{where}:{line_of(group, 'rules')}: a rule is a mapping")
            if "record" in rule:
                continue
            name = rule.get("alert")
            expr = rule.get("expr")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}:{line_of(rule)}: a rule needs 'alert' (or 'record')")
            if not isinstance(expr, str) or not expr.strip():
                raise ConfigError(f"{where}:{line_of(rule)}: alert {name} has no 'expr'")
            for key in ("labels", "annotations"):
                value = rule.get(key) or {}
                if not isinstance(value, dict) or not all(
                    isinstance(v, str) for v in value.values()
                ):
                    raise ConfigError(
                        f"{where}:{line_of(rule, key)}: alert {name}: '{key}' must map names "
                        "to strings (quote numbers)"
                    )
            node = rule.value_nodes.get("expr") if isinstance(rule, LineMap) else None
            source = None
            if node is not None:
                source = _ScalarSource(node.start_mark.line + 1, node.style, lines)
            try:
                threshold, error = extract_threshold(expr), ""
            except ValueError as exc:
                threshold, error = None, str(exc)
            alerts.append(
                Alert(
                    name=name,
                    group=str(group.get("name", "")),
                    expr=expr.strip(),
                    for_=str(rule.get("for", "0s")),
                    labels=dict(rule.get("labels") or {}),
                    annotations=dict(rule.get("annotations") or {}),
                    source=path,
                    line=line_of(rule),
                    expr_line=line_of(rule, "expr"),
                    threshold=threshold,
                    threshold_error=error,
                    _expr_source=source,
                )
            )
    return alerts


def base_url() -> str:
    """Where the handbook is published: ``$HANDBOOK_BASE_URL`` or :data:`DEFAULT_BASE_URL`."""
    url = os.environ.get("HANDBOOK_BASE_URL") or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


_ANCHOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PAGE = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\.html")


def split_runbook_url(url: str, base_url: str = DEFAULT_BASE_URL) -> tuple[str, str]:
    """``base + "runbooks/x.html#x"`` -> ``("runbooks/x.html", "x")``.

    Raises ``ValueError`` saying what is wrong: another base, no page, no anchor.
    """
    if not url:
        raise ValueError("no runbook_url")
    if not url.startswith(base_url):
        raise ValueError(f"{url!r} is not under the handbook's base URL {base_url!r}")
    page, sep, anchor = url[len(base_url) :].partition("#")
    if not sep or not _ANCHOR.fullmatch(anchor):
        raise ValueError(f"{url!r} has no '#anchor' naming the runbook's section")
    if not _PAGE.fullmatch(page):
        raise ValueError(f"{url!r}: {page!r} is not a page of the built site ('<path>.html')")
    return page, anchor


def rules_for_base_url(new_base_url: str, path: Path | str = RULES_FILE) -> str:
    """The rules file's text with every runbook_url moved to another published base URL."""
    new_base_url = new_base_url if new_base_url.endswith("/") else new_base_url + "/"
    text = Path(path).read_text(encoding="utf-8")
    return text.replace(DEFAULT_BASE_URL, new_base_url)


def check_alerts(alerts: list[Alert], base_url: str = DEFAULT_BASE_URL) -> list[Finding]:
    """What an alert needs before it may page anyone; one finding per problem."""
    findings: list[Finding] = []
    seen: dict[str, Alert] = {}
    for alert in alerts:
        where = rel(alert.source)

        def add(message: str, line: int = alert.line, where: str = where) -> None:
            findings.append(Finding(where, line, message))

        if alert.name in seen:
            add(f"alert {alert.name} is defined twice (first at {seen[alert.name].location})")
        seen.setdefault(alert.name, alert)
        if alert.severity not in SEVERITIES:
            add(
                f"alert {alert.name}: labels.severity is {alert.severity!r}; "
                f"use one of {', '.join(SEVERITIES)} (Alertmanager routes on it)"
            )
        for key in ("summary", "description"):
            if not alert.annotations.get(key, "").strip():
                add(f"alert {alert.name} has no annotations.{key}: add one")
        if not alert.runbook_url:
            add(
                f"alert {alert.name} has no annotations.runbook_url: add its runbook, "
                f"{base_url}runbooks/<page>.html#<anchor>"
            )
        else:
            try:
                split_runbook_url(alert.runbook_url, base_url)
            except ValueError as exc:
                add(f"alert {alert.name}: annotations.runbook_url: {exc}")
        if alert.threshold is None:
            add(f"alert {alert.name}: no threshold: {alert.threshold_error}", alert.expr_line)
        try:
            alert.for_seconds  # noqa: B018 - parse it
        except ValueError as exc:
            add(f"alert {alert.name}: 'for': {exc}")
    return findings


def required_cases(alert: Alert) -> tuple[str, ...]:
    """The unit-test cases the alert needs (see the header of the rule tests)."""
    if alert.threshold is not None and alert.threshold.op in ("==", "!="):
        return EQUALITY_CASES
    return THRESHOLD_CASES


# --------------------------------------------------------------------------- rule tests


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


def check_metrics(
    alerts: list[Alert], catalogue: MetricCatalogue, exporters: KnownNames | None = None
) -> list[Finding]:
    """Each metric an alert uses is ERPGo's (in the catalogue) or a name the real exporters
    export (conf/metrics/exporters.yml); each label it names exists on those metrics."""
    findings = []
    known = catalogue.series_names()
    exporters = exporters or load_known_names()
    for alert in alerts:
        names = metric_names(alert.expr)
        available: set[str] = set()
        for name in sorted(names):
            if name in known:
                available |= catalogue.labels_of(name)
            elif name in exporters.names():
                available |= SCRAPE_LABELS
            else:
                findings.append(
                    Finding(
                        rel(alert.source),
                        alert.expr_line,
                        f"alert {alert.name} uses {name}, which is neither in "
                        f"{rel(catalogue.path)} nor a known exporter metric "
                        f"({rel(exporters.path)}): declare it in one of them",
                    )
                )
        exporter_only = all(n.startswith(tuple(EXPORTER_PREFIXES)) for n in names)
        for label in sorted(label_names(alert.expr) - available):
            if exporter_only and label not in SCRAPE_LABELS:
                continue  # exporter labels are checked against the real exporters
            findings.append(
                Finding(
                    rel(alert.source),
                    alert.expr_line,
                    f"alert {alert.name} names label {label!r}, which none of its metrics "
                    f"({', '.join(sorted(names))}) has according to {rel(catalogue.path)}",
                )
            )
    return findings
