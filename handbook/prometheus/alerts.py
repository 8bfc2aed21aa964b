"""The alert rules of ``conf/prometheus/alert_rules.yml`` as objects, and what each needs.

The Sphinx side renders an alert's expression, threshold and duration from the rules
file through :func:`load_rules`; :func:`check_alerts` holds every rule to the policy
(severity, annotations, a runbook_url into the built site, a threshold) and
:data:`EXPECTED_ALERTS` lists the alerts the handbook promises, with their runbooks.

Their promtool unit tests are :mod:`handbook.prometheus.ruletests`; the metric names
they use are checked by :func:`handbook.prometheus.metrics.check_metrics`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import promql_parser

from handbook.paths import CONF, rel
from handbook.prometheus.promql import (
    PromQLSyntaxError,
    Threshold,
    extract_threshold,
    parse,
    parse_duration,
)
from handbook.site import DEFAULT_BASE_URL
from handbook.yamlfile import ConfigError, Finding, LineMap
from handbook.yamlfile import line as line_of
from handbook.yamlfile import load as load_yaml

RULES_FILE = CONF / "prometheus" / "alert_rules.yml"
SEVERITIES = ("critical", "warning", "none")  # none: the Watchdog, routed to no person
# Alerts that need no threshold, recognised by their syntax tree: a missing series
# (absent(), or several joined by 'or') and the Watchdog (vector(1)), which fires at
# every evaluation.
ABSENT_FUNCTIONS = ("absent", "absent_over_time")


def _only_absent(node: promql_parser.Expr) -> bool:
    if isinstance(node, promql_parser.ParenExpr):
        return _only_absent(node.expr)
    if isinstance(node, promql_parser.BinaryExpr) and str(node.op) == "or":
        return _only_absent(node.lhs) and _only_absent(node.rhs)
    return isinstance(node, promql_parser.Call) and node.func.name in ABSENT_FUNCTIONS


def kind_without_threshold(expr: str) -> str | None:
    """``"absent"`` or ``"always"`` for an alert that needs no threshold, else None."""
    try:
        tree = parse(expr)
    except PromQLSyntaxError:
        return None  # promtool check rules says what is wrong, and where
    if _only_absent(tree):
        return "absent"
    if isinstance(tree, promql_parser.Call) and tree.func.name == "vector":
        return "always"
    return None


@dataclass(frozen=True)
class ExpectedAlert:
    """What the handbook promises about one alert: severity, duration, threshold, runbook."""

    severity: str
    for_: str  # the rule's 'for', e.g. "5m"
    op: str | None  # the top-level comparison; None for an alert without a threshold
    value: float | None  # the threshold's number
    page: str  # the runbook's page in the built site: "runbooks/high-error-rate.html"
    anchor: str  # the runbook's explicit anchor on that page: "high-error-rate"


# The alerts the handbook promises, in the rules file's order. To add an alert: a line
# here, the rule in conf/prometheus/alert_rules.yml, its unit tests and its runbook.
EXPECTED_ALERTS = {
    "HighErrorRate": ExpectedAlert(
        "critical", "5m", ">", 0.05, "runbooks/high-error-rate.html", "high-error-rate"
    ),
    "PostgreSQLDown": ExpectedAlert(
        "critical", "1m", "==", 0, "runbooks/database-connectivity.html", "database-connectivity"
    ),
    "HighResponseTime": ExpectedAlert(
        "warning", "5m", ">", 1, "runbooks/high-latency.html", "high-latency"
    ),
    "HighFailedLoginRate": ExpectedAlert(
        "warning", "5m", ">", 10,
        "runbooks/authentication-failures.html", "authentication-failures",
    ),
    "DatabaseConnectionPoolExhausted": ExpectedAlert(
        "critical", "5m", ">", 0.9,
        "runbooks/connection-pool-exhaustion.html", "connection-pool-exhaustion",
    ),
    "LowCacheHitRate": ExpectedAlert(
        "warning", "10m", "<", 0.7, "runbooks/low-cache-hit-rate.html", "low-cache-hit-rate"
    ),
    # Meta-monitoring: the alerts that keep the six above honest (issue 15).
    "TargetDown": ExpectedAlert(
        "warning", "5m", "==", 0, "runbooks/target-down.html", "target-down"
    ),
    "ExporterSeriesAbsent": ExpectedAlert(
        "critical", "5m", None, None,
        "runbooks/exporter-series-absent.html", "exporter-series-absent",
    ),
    "Watchdog": ExpectedAlert("none", "0s", None, None, "runbooks/watchdog.html", "watchdog"),
    "AlertmanagerNotificationsFailing": ExpectedAlert(
        "critical", "5m", ">", 0.01,
        "runbooks/alertmanager-notifications-failing.html", "alertmanager-notifications-failing",
    ),
}  # fmt: skip


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
        if alert.threshold is None and not kind_without_threshold(alert.expr):
            add(f"alert {alert.name}: no threshold: {alert.threshold_error}", alert.expr_line)
        try:
            alert.for_seconds  # noqa: B018 - parse it
        except ValueError as exc:
            add(f"alert {alert.name}: 'for': {exc}")
    return findings
