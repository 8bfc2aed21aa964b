"""The alert rules, their promtool unit tests, the metric catalogue and Alertmanager.

The Sphinx side renders an alert's expression, threshold and duration from
``conf/prometheus/alert_rules.yml`` through :func:`load_rules`; the test suite
checks the same objects against the spec, ``promtool`` and ``amtool``. Nothing in
here imports pytest: a tool that is missing raises :class:`ToolMissing` and the
caller decides whether that is a skip or a failure.

Every problem is a :class:`Finding` that prints as ``file:line: what is wrong and
what to do``, with the file relative to the repository root.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from handbook.paths import CONF, rel

RULES_FILE = CONF / "prometheus" / "alert_rules.yml"
RULE_TESTS_DIR = CONF / "prometheus" / "tests"
METRIC_CATALOGUE = CONF / "metrics" / "erpgo.yml"
ALERTMANAGER_CONFIG = CONF / "alertmanager" / "alertmanager.yml"

DEFAULT_BASE_URL = "https://docs.erpgo.com/handbook/"
SEVERITIES = ("critical", "warning")
# Metrics that are not ERPGo's own come from these exporters, under their real names.
EXPORTER_PREFIXES = {"pg_": "postgres_exporter", "redis_": "redis_exporter"}
# Labels Prometheus attaches to every scraped series, exporters' included.
SCRAPE_LABELS = frozenset({"job", "instance"})

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

INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager"
TOOLS = {
    # name: (environment override, candidate executables, Debian package)
    "promtool": ("HANDBOOK_PROMTOOL", ("promtool",), "prometheus"),
    "amtool": ("HANDBOOK_AMTOOL", ("amtool",), "prometheus-alertmanager"),
    "alertmanager": (
        "HANDBOOK_ALERTMANAGER",
        ("alertmanager", "prometheus-alertmanager"),
        "prometheus-alertmanager",
    ),
}
TOOL_TIMEOUT = 60  # seconds


# --------------------------------------------------------------------------- findings


class ConfigError(ValueError):
    """A rules, rule-test or catalogue file that cannot be used: ``file:line: ...``."""


class ToolMissing(RuntimeError):
    """promtool, amtool or alertmanager is not installed; the message says what to install."""


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the repository root when inside it
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


def report(findings: Iterable[Finding]) -> str:
    """One finding per line, for an assertion message."""
    return "\n".join(str(f) for f in findings)


# --------------------------------------------------------------------------- YAML with lines


class _Map(dict):
    """A YAML mapping that remembers where it and each of its keys are (1-based lines)."""

    line: int = 0
    key_lines: dict
    value_nodes: dict


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map(loader.construct_pairs(node, deep=True))
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.value_nodes = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            result.key_lines[key_node.value] = key_node.start_mark.line + 1
            result.value_nodes[key_node.value] = value_node
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def _load_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{rel(path)}: file not found") from None
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else "?"
        raise ConfigError(f"{rel(path)}:{line}: not valid YAML: {exc.problem}") from None


def _line(mapping: object, key: str | None = None) -> int:
    if not isinstance(mapping, _Map):
        return 0
    return mapping.key_lines.get(key, mapping.line) if key else mapping.line


# --------------------------------------------------------------------------- PromQL

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<comment>\#[^\n]*)
    |(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    |(?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
    |(?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?
        |(?i:inf|nan))(?![\w:]))
    |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    |(?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=,(){}\[\]@:])
    """,
    re.VERBOSE,
)
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
SET_OPERATORS = ("and", "or", "unless")
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_AGGREGATORS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
_KEYWORDS = _GROUPING | _AGGREGATORS | set(SET_OPERATORS) | {"bool", "offset", "atan2"}
_OPEN = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokens(expr: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise ValueError(f"cannot read the expression at {expr[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        if kind not in ("ws", "comment"):
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _depths(tokens: list[_Token]) -> list[int]:
    """For each token, how deep inside (), [] and {} it is (a closing bracket counts as inside)."""
    depth, out = 0, []
    for token in tokens:
        if token.kind == "op" and token.text in _OPEN:
            out.append(depth)
            depth += 1
        elif token.kind == "op" and token.text in _OPEN.values():
            depth -= 1
            out.append(depth)
        else:
            out.append(depth)
    return out


def _skip_group(tokens: list[_Token], start: int) -> int:
    """Index after the bracket group opening at ``start``."""
    depth = 0
    for index in range(start, len(tokens)):
        text = tokens[index].text if tokens[index].kind == "op" else ""
        if text in _OPEN:
            depth += 1
        elif text in _OPEN.values():
            depth -= 1
            if depth == 0:
                return index + 1
    return len(tokens)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, as scraped: ``{"erpgo_x_bucket", "pg_up"}``.

    Function and aggregation names, label names (in ``{}`` and in ``by``/``on``
    clauses), durations and keywords are not metric names. ``{__name__="x"}`` is.
    """
    tokens, names, index = _tokens(expr), set(), 0
    while index < len(tokens):
        token = tokens[index]
        nxt = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.kind == "op" and token.text == "{":
            end = _skip_group(tokens, index)
            inner = tokens[index + 1 : end - 1]
            for i in range(len(inner) - 2):
                if inner[i].text == "__name__" and inner[i + 1].text == "=":
                    names.add(inner[i + 2].text[1:-1])
            index = end
            continue
        if token.kind == "ident" and token.text in _GROUPING:
            index += 1
            if index < len(tokens) and tokens[index].text == "(":
                index = _skip_group(tokens, index)
            continue
        is_call = nxt is not None and nxt.kind == "op" and nxt.text == "("
        if token.kind == "ident" and token.text not in _KEYWORDS and not is_call:
            names.add(token.text)
        index += 1
    return names


def label_names(expr: str) -> set[str]:
    """Every label name an expression mentions: in matchers and in by/without/on/ignoring."""
    tokens, labels, index = _tokens(expr), set(), 0
    while index < len(tokens):
        token = tokens[index]
        if token.kind == "op" and token.text == "{":
            end = _skip_group(tokens, index)
            inner = tokens[index + 1 : end - 1]
            for i, inner_token in enumerate(inner[:-1]):
                matcher = inner[i + 1].text in ("=", "!=", "=~", "!~")
                if inner_token.kind == "ident" and matcher and inner_token.text != "__name__":
                    labels.add(inner_token.text)
            index = end
            continue
        opens = index + 1 < len(tokens) and tokens[index + 1].text == "("
        if token.kind == "ident" and token.text in _GROUPING and opens:
            end = _skip_group(tokens, index + 1)
            labels.update(t.text for t in tokens[index + 2 : end - 1] if t.kind == "ident")
            index = end
            continue
        index += 1
    return labels


@dataclass(frozen=True)
class Threshold:
    op: str  # the top-level comparison: ">", "<", "==", ...
    literal: str  # the number as written: "0.05"
    lhs: str  # the measured value, without the comparison: what $value is

    @property
    def value(self) -> float:
        return float(self.literal)

    def __str__(self) -> str:
        return f"{self.op} {self.literal}"


def extract_threshold(expr: str) -> Threshold:
    """The comparison at the top level of ``expr`` and the literal on its right.

    Raises ``ValueError`` (saying how to write the expression) when the top level is
    not ``<measured value> <op> <number>``.
    """
    tokens = _tokens(expr)
    depths = _depths(tokens)
    top = [(i, t) for i, (t, d) in enumerate(zip(tokens, depths, strict=True)) if d == 0]
    for _, token in top:
        if token.kind == "ident" and token.text in SET_OPERATORS:
            raise ValueError(
                f"the top level is '{token.text}', not a comparison: put the filter in "
                "parentheses and end with '<measured value> <op> <number>'"
            )
    comparisons = [(i, t) for i, t in top if t.kind == "op" and t.text in COMPARISONS]
    if len(comparisons) != 1:
        raise ValueError(
            f"expected exactly one comparison outside parentheses, found {len(comparisons)}: "
            "end the expression with '<measured value> <op> <number>'"
        )
    index, op = comparisons[0]
    rhs = tokens[index + 1 :]
    if rhs and rhs[0].kind == "ident" and rhs[0].text == "bool":
        raise ValueError("'bool' turns the comparison into 0/1 and the alert would always fire")
    literal = "".join(t.text for t in rhs)
    numbers = [t for t in rhs if t.kind == "number"]
    signs = [t for t in rhs if t.kind == "op" and t.text in "+-"]
    if len(numbers) != 1 or len(rhs) != len(numbers) + len(signs) or len(signs) > 1:
        raise ValueError(
            f"the right of '{op.text}' is {literal!r}, not a single number: write the "
            "threshold as one literal, e.g. '... > 0.05'"
        )
    lhs = expr[: op.pos].strip()
    if not lhs:
        raise ValueError(f"nothing on the left of '{op.text}'")
    return Threshold(op=op.text, literal=literal, lhs=lhs)


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration: ``"5m"`` -> 300.0, ``"1h30m"`` -> 5400.0."""
    text = str(text).strip()
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r} (write e.g. 5m, 90s, 1h30m)")
    return float(sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


# --------------------------------------------------------------------------- alerts


@dataclass
class _ScalarSource:
    """Where a scalar's text is in its file, to turn a position inside it into a file line."""

    line: int  # 1-based line of the value (the '>-' of a block scalar)
    style: str | None
    lines: list[str]  # the file's lines

    def file_line(self, value: str, line: int, column: int) -> int:
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

    def expr_file_line(self, line: int, column: int) -> int:
        """The file line of a position promtool reports inside the expression (``3:63``)."""
        if self._expr_source is None:
            return self.expr_line
        return self._expr_source.file_line(self.expr, line, column)

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
    data = _load_yaml(path)
    where = rel(path)
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise ConfigError(f"{where}:1: a rules file is a mapping with a 'groups' list")
    lines = path.read_text(encoding="utf-8").splitlines()
    alerts = []
    for group in data["groups"]:
        if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
            raise ConfigError(f"{where}:{_line(group)}: a group needs a name and a 'rules' list")
        for rule in group["rules"]:
            if not isinstance(rule, dict):
                raise ConfigError(f"{where}:{_line(group, 'rules')}: a rule is a mapping")
            if "record" in rule:
                continue
            name = rule.get("alert")
            expr = rule.get("expr")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}:{_line(rule)}: a rule needs 'alert' (or 'record')")
            if not isinstance(expr, str) or not expr.strip():
                raise ConfigError(f"{where}:{_line(rule)}: alert {name} has no 'expr'")
            for key in ("labels", "annotations"):
                value = rule.get(key) or {}
                if not isinstance(value, dict) or not all(
                    isinstance(v, str) for v in value.values()
                ):
                    raise ConfigError(
                        f"{where}:{_line(rule, key)}: alert {name}: '{key}' must map names "
                        "to strings (quote numbers)"
                    )
            node = rule.value_nodes.get("expr") if isinstance(rule, _Map) else None
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
                    line=_line(rule),
                    expr_line=_line(rule, "expr"),
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
    data = _load_yaml(path)
    where = rel(path)
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise ConfigError(f"{where}:1: a promtool test file is a mapping with a 'tests' list")
    groups = []
    for group in data["tests"]:
        if not isinstance(group, dict):
            raise ConfigError(f"{where}:{_line(data, 'tests')}: a test group is a mapping")
        name = str(group.get("name") or "")
        alert, _, case = name.partition(": ")
        checks = []
        for check in group.get("alert_rule_test") or []:
            try:
                eval_time = parse_duration(check.get("eval_time", ""))
            except ValueError as exc:
                raise ConfigError(f"{where}:{_line(check)}: eval_time: {exc}") from None
            checks.append(
                (eval_time, str(check.get("alertname", "")), check.get("exp_alerts") or [])
            )
        groups.append(RuleTestGroup(path, _line(group), name, alert, case, checks))
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
                    _line(data, "rule_files") or 1,
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


# --------------------------------------------------------------------------- metric catalogue

METRIC_TYPES = ("counter", "gauge", "histogram", "summary")


@dataclass
class Metric:
    name: str
    type: str
    help: str
    labels: dict[str, str]
    line: int
    unit: str = ""
    buckets: tuple[float, ...] = ()

    def series_names(self) -> set[str]:
        """The names Prometheus scrapes: a histogram's ``_bucket``, ``_sum`` and ``_count``."""
        if self.type == "histogram":
            return {f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"}
        if self.type == "summary":
            return {self.name, f"{self.name}_sum", f"{self.name}_count"}
        return {self.name}


@dataclass
class MetricCatalogue:
    path: Path
    metrics: dict[str, Metric]
    target_labels: dict[str, str]
    common_labels: dict[str, str]

    def lookup(self, series_name: str) -> Metric | None:
        """The metric a scraped name belongs to (``x_bucket`` -> histogram ``x``)."""
        for metric in self.metrics.values():
            if series_name in metric.series_names():
                return metric
        return None

    def series_names(self) -> set[str]:
        return {name for metric in self.metrics.values() for name in metric.series_names()}

    def labels_of(self, series_name: str) -> set[str]:
        """Every label a scraped series of that name has (``le`` on a ``_bucket``)."""
        metric = self.lookup(series_name)
        if metric is None:
            return set()
        labels = set(metric.labels) | set(self.common_labels) | set(self.target_labels)
        if series_name.endswith("_bucket") and metric.type == "histogram":
            labels.add("le")
        if metric.type == "summary" and series_name == metric.name:
            labels.add("quantile")
        return labels


def load_metric_catalogue(path: Path | str = METRIC_CATALOGUE) -> MetricCatalogue:
    """ERPGo's own metrics; ConfigError naming file:line for an entry that breaks the rules."""
    path = Path(path)
    data = _load_yaml(path)
    where = rel(path)
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ConfigError(f"{where}:1: the catalogue is a mapping with a 'metrics' mapping")
    metrics = {}
    for name, entry in data["metrics"].items():
        line = _line(data["metrics"], name)
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}:{line}: {name}: give type, help and labels")
        if not re.fullmatch(r"erpgo_[a-z0-9_]+", name):
            raise ConfigError(
                f"{where}:{line}: {name}: only ERPGo's own metrics belong here, named erpgo_*"
            )
        kind = entry.get("type")
        if kind not in METRIC_TYPES:
            raise ConfigError(f"{where}:{line}: {name}: type must be one of {METRIC_TYPES}")
        if kind == "counter" and not name.endswith("_total"):
            raise ConfigError(f"{where}:{line}: {name}: a counter is exposed as <name>_total")
        if kind != "counter" and name.endswith("_total"):
            raise ConfigError(f"{where}:{line}: {name}: only counters end in _total")
        if not str(entry.get("help") or "").strip():
            raise ConfigError(f"{where}:{line}: {name}: say what it measures in 'help'")
        labels = entry.get("labels") or {}
        if not isinstance(labels, dict):
            raise ConfigError(f"{where}:{line}: {name}: labels maps each label to its meaning")
        buckets = tuple(float(b) for b in entry.get("buckets") or ())
        if kind == "histogram" and (not buckets or list(buckets) != sorted(set(buckets))):
            raise ConfigError(f"{where}:{line}: {name}: a histogram lists its increasing buckets")
        metrics[name] = Metric(
            name=name,
            type=kind,
            help=" ".join(str(entry["help"]).split()),
            labels={str(k): " ".join(str(v).split()) for k, v in labels.items()},
            line=line,
            unit=str(entry.get("unit") or ""),
            buckets=buckets,
        )
    return MetricCatalogue(
        path=path,
        metrics=metrics,
        target_labels=dict(data.get("target_labels") or {}),
        common_labels=dict(data.get("common_labels") or {}),
    )


def check_metrics(alerts: list[Alert], catalogue: MetricCatalogue) -> list[Finding]:
    """Each metric an alert uses is ERPGo's (in the catalogue) or an exporter's (pg_, redis_);
    each label it names exists on those metrics."""
    findings = []
    known = catalogue.series_names()
    for alert in alerts:
        names = metric_names(alert.expr)
        available: set[str] = set()
        for name in sorted(names):
            if name in known:
                available |= catalogue.labels_of(name)
            elif name.startswith(tuple(EXPORTER_PREFIXES)):
                available |= SCRAPE_LABELS
            else:
                findings.append(
                    Finding(
                        rel(alert.source),
                        alert.expr_line,
                        f"alert {alert.name} uses {name}, which is neither in "
                        f"{rel(catalogue.path)} nor an exporter metric "
                        f"({', '.join(p + '*' for p in EXPORTER_PREFIXES)}): declare it there",
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


# --------------------------------------------------------------------------- tools


def find_tool(name: str) -> str | None:
    """The executable for promtool, amtool or alertmanager, or None."""
    env, candidates, _ = TOOLS[name]
    override = os.environ.get(env)
    if override:
        return override
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def require_tool(name: str) -> str:
    """Like :func:`find_tool`, but raises :class:`ToolMissing` saying what to install."""
    found = find_tool(name)
    if not found:
        env, candidates, package = TOOLS[name]
        raise ToolMissing(
            f"{name} not found ({' or '.join(candidates)} on PATH, or ${env}): "
            f"install it with `{INSTALL_HINT}` (package {package})"
        )
    return found


@dataclass
class ToolResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.findings

    def report(self) -> str:
        """``file:line: message`` per finding, then what the tool printed."""
        head = report(self.findings) or f"{self.argv[0]} exited with {self.returncode}"
        command = " ".join(str(a) for a in self.argv)
        output = "\n".join(x for x in (self.stdout.strip(), self.stderr.strip()) if x)
        return f"{head}\n--- {command}\n{output}"


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )


_RULE_ERROR = re.compile(
    r'^(?P<file>[^\s:][^:]*): (?P<line>\d+):(?P<col>\d+): group "(?P<group>[^"]*)", '
    r'rule (?P<index>\d+), "(?P<rule>[^"]*)": (?P<message>.*)$'
)
_EXPR_POS = re.compile(r"could not parse expression: (?P<line>\d+):(?P<col>\d+):")
_FILE_ERROR = re.compile(r"^(?P<file>[^\s:][^:]*): (?P<message>.*)$")
_YAML_LINE = re.compile(r"\bline (?P<line>\d+)\b")


def _rules_finding(printed: str, message: str, line: int | None, cwd: Path) -> Finding:
    return Finding(rel(cwd / printed), line, message)


def _findings_from_rule_errors(text: str, cwd: Path) -> list[Finding]:
    """promtool's messages about a rules file, each pointed at the file line at fault."""
    findings, seen = [], set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line in seen:
            continue
        seen.add(line)
        match = _RULE_ERROR.match(line)
        if match:
            path = cwd / match["file"]
            file_line = int(match["line"])
            position = _EXPR_POS.search(match["message"])
            if position:
                try:
                    rule = next(a for a in load_rules(path) if a.name == match["rule"])
                    file_line = rule.expr_file_line(int(position["line"]), int(position["col"]))
                except (ConfigError, StopIteration):
                    pass
            findings.append(
                _rules_finding(
                    match["file"], f"alert {match['rule']}: {match['message']}", file_line, cwd
                )
            )
            continue
        match = _FILE_ERROR.match(line)
        if match and (cwd / match["file"]).is_file():
            path = cwd / match["file"]
            found = _YAML_LINE.search(match["message"])
            file_line = int(found["line"]) if found else _line_of_quoted(path, match["message"])
            findings.append(_rules_finding(match["file"], match["message"], file_line, cwd))
    return findings


def _line_of_quoted(path: Path, message: str) -> int | None:
    """The first line of ``path`` holding a value the message quotes (``"5x"``), if any."""
    for quoted in re.findall(r'"([^"]+)"', message):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if quoted in text:
                return number
    return None


def promtool_check_rules(*paths: Path | str, cwd: Path | None = None) -> ToolResult:
    """``promtool check rules`` on the rules files (default: the project's)."""
    promtool = require_tool("promtool")
    cwd = Path(cwd or Path.cwd())
    files = [str(p) for p in (paths or (RULES_FILE,))]
    done = _run([promtool, "check", "rules", *files], cwd=cwd)
    result = ToolResult(
        [promtool, "check", "rules", *files], done.returncode, done.stdout, done.stderr
    )
    result.findings = _findings_from_rule_errors(done.stdout + "\n" + done.stderr, cwd)
    if done.returncode != 0 and not result.findings:
        result.findings.append(
            Finding(rel(files[0]), None, done.stderr.strip() or "promtool failed")
        )
    return result


_TEST_FAILURE = re.compile(r"^\s{4}name: (?P<name>.*),\s*$", re.MULTILINE)
_ALERT_CHECK = re.compile(r"alertname: (?P<alert>[^,]+), time: (?P<time>[^,]+),")
_EXPR_CHECK = re.compile(r'expr: (?P<expr>".*"), time: (?P<time>[^,]+),')


def promtool_test_rules(
    *test_files: Path | str,
    rules_file: Path | str | None = None,
    only: Iterable[str] | None = None,
    cwd: Path | None = None,
) -> ToolResult:
    """``promtool test rules``, one run per test file (so every failure has its file).

    With ``rules_file``, each test file is run against that rules file instead of
    its own ``rule_files``; with ``only``, just the groups of those alerts run.
    Both work on a copy in a temporary directory: how a mutated or broken copy of
    the rules is tested. Findings always name the original test file, the line of
    the failing group and the alert's line in the rules file.
    """
    promtool = require_tool("promtool")
    cwd = Path(cwd or Path.cwd())
    files = [Path(p) for p in (test_files or rule_test_files())]
    results = []
    with tempfile.TemporaryDirectory(prefix="promtool-") as tmp:
        for number, original in enumerate(files):
            data, groups = load_rule_tests(original)
            run_file, rules = (
                original,
                [(original.parent / str(p)) for p in data.get("rule_files") or []],
            )
            if rules_file is not None or only is not None:
                if rules_file is not None:
                    rules = [Path(rules_file).resolve()]
                copy = dict(data)
                copy["rule_files"] = [str(path.resolve()) for path in rules]
                if only is not None:
                    names = set(only)
                    copy["tests"] = [
                        group
                        for group in data["tests"]
                        if str(group.get("name", "")).partition(": ")[0] in names
                    ]
                run_file = Path(tmp) / f"{number}-{original.name}"
                run_file.write_text(yaml.safe_dump(_plain(copy), sort_keys=False), encoding="utf-8")
            argv = [promtool, "test", "rules", str(run_file)]
            done = _run(argv, cwd=cwd)
            results.append((original, groups, rules, done))
    argv = [promtool, "test", "rules", *(str(f) for f in files)]
    result = ToolResult(argv, 0, "", "")
    for original, groups, rules, done in results:
        result.returncode = max(result.returncode, done.returncode)
        result.stdout += done.stdout
        result.stderr += done.stderr
        result.findings.extend(_findings_from_test_run(original, groups, rules, done, cwd))
    return result


def _plain(value: object) -> object:
    """Loaded YAML (with line-tracking mappings) back to plain dicts and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _findings_from_test_run(
    test_file: Path,
    groups: list[RuleTestGroup],
    rules_files: list[Path],
    done: subprocess.CompletedProcess[str],
    cwd: Path,
) -> list[Finding]:
    where = rel(test_file)
    output = done.stdout + "\n" + done.stderr
    findings = _findings_from_rule_errors(output, cwd)
    for match in re.finditer(r"WARNING: no file match pattern (?P<pattern>\S+)", output):
        findings.append(
            Finding(
                where,
                None,
                f"rule_files entry {match['pattern']!r} matches no file: promtool then tests "
                "no rules at all (paths are relative to the test file)",
            )
        )
    alert_lines: dict[str, str] = {}
    for path in rules_files:
        with contextlib.suppress(ConfigError):
            alert_lines.update({a.name: a.location for a in load_rules(path)})
    group_lines = {group.name: group.line for group in groups}
    blocks = list(_TEST_FAILURE.finditer(done.stderr))
    for index, match in enumerate(blocks):
        end = blocks[index + 1].start() if index + 1 < len(blocks) else len(done.stderr)
        body = done.stderr[match.end() : end]
        name = match["name"]
        check = _ALERT_CHECK.search(body)
        if check:
            alert = check["alert"].strip()
            compact = "".join(body.split())
            if "exp:[]" in compact:
                what = "fired, expected silence"
            elif "got:[]" in compact:
                what = "stayed silent, expected it to fire"
            else:
                what = "fired with other labels or annotations than expected"
            rule = alert_lines.get(alert, "the rules file")
            message = (
                f'test group "{name}": {alert} {what} at {check["time"].strip()} '
                f"(rule at {rule}); fix the rule or the test, "
                f"`promtool test rules {where}` shows the full diff"
            )
        else:
            expr = _EXPR_CHECK.search(body)
            what = f"expression {expr['expr']} at {expr['time']}" if expr else "a check"
            message = (
                f'test group "{name}": {what} failed; `promtool test rules {where}` shows the diff'
            )
        findings.append(Finding(where, group_lines.get(name), message))
    if done.returncode != 0 and not findings:
        text = done.stderr.replace("FAILED:", "").strip() or "promtool test rules failed"
        found = _YAML_LINE.search(text)
        findings.append(
            Finding(where, int(found["line"]) if found else None, " ".join(text.split()))
        )
    return findings


def amtool_check_config(path: Path | str = ALERTMANAGER_CONFIG) -> ToolResult:
    """``amtool check-config``: the config and the templates it loads."""
    amtool = require_tool("amtool")
    path = Path(path)
    argv = [amtool, "check-config", str(path)]
    done = _run(argv)
    result = ToolResult(argv, done.returncode, done.stdout, done.stderr)
    if done.returncode != 0:
        text = done.stdout + "\n" + done.stderr
        template = re.search(r"template: (?P<file>[^:\s]+):(?P<line>\d+): (?P<msg>.*)", text)
        if template:
            candidates = list(path.parent.rglob(template["file"]))
            file = rel(candidates[0]) if candidates else template["file"]
            # "unclosed action started at x.tmpl:2": the line where the mistake starts
            started = re.search(r"started at [^:\s]+:(?P<line>\d+)", template["msg"])
            line = int((started or template)["line"])
            result.findings.append(Finding(file, line, template["msg"]))
        else:
            lines = [int(n) for n in re.findall(r"\bline (\d+)\b", text)]
            message = " ".join(text.split("FAILED:", 1)[-1].split())
            result.findings.append(Finding(rel(path), lines[0] if lines else None, message))
    return result


def amtool_routes(labels: Mapping[str, str], path: Path | str = ALERTMANAGER_CONFIG) -> list[str]:
    """The receivers Alertmanager would notify for an alert with these labels."""
    amtool = require_tool("amtool")
    argv = [amtool, "config", "routes", "test", f"--config.file={path}"]
    argv += [f"{k}={v}" for k, v in labels.items()]
    done = _run(argv)
    if done.returncode != 0:
        raise ConfigError(
            f"{rel(path)}: amtool could not route {dict(labels)}: {done.stderr.strip()}"
        )
    return [name for name in done.stdout.strip().split(",") if name]


def amtool_render(
    template_text: str, data: Mapping[str, object], config: Path | str = ALERTMANAGER_CONFIG
) -> str:
    """Render ``template_text`` with the config's templates and Alertmanager ``data``."""
    amtool = require_tool("amtool")
    config = Path(config)
    loaded = _load_yaml(config)
    globs = loaded.get("templates") or [] if isinstance(loaded, dict) else []
    with tempfile.TemporaryDirectory(prefix="amtool-") as tmp:
        data_file = Path(tmp) / "data.json"
        data_file.write_text(json.dumps(data), encoding="utf-8")
        argv = [amtool, "template", "render", f"--template.text={template_text}"]
        argv += [f"--template.glob={config.parent / g}" for g in globs]
        argv += [f"--template.data={data_file}"]
        done = _run(argv)
    if done.returncode != 0:
        raise ConfigError(f"{rel(config)}: amtool template render failed: {done.stderr.strip()}")
    return done.stdout
