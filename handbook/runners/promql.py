"""Run a PromQL snippet: promtool evaluates it against the synthetic series of its sidecar.

``snippets/promql/<area>/<name>.promql`` holds the expression a reader pastes into
Prometheus; ``<name>.promql.test.yml`` beside it is a promtool unit-test fragment
(``interval``, ``input_series``, ``promql_expr_test`` entries with ``eval_time`` and
``exp_samples``, but no ``expr``: the snippet's body is filled in). The runner
writes a promtool test file, runs ``promtool test rules`` on it and turns what
promtool says into ``file:line: message`` pointing at the snippet or the sidecar.

Before promtool runs, every metric the expression selects must be ERPGo's own
(``conf/metrics/erpgo.yml``) or a name the real exporters export or Prometheus
writes (``conf/metrics/exporters.yml``), and every label of ERPGo's metrics, in the
expression and in the synthetic series, must be one the catalogue declares.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import yaml

from handbook.paths import rel
from handbook.prometheus import metrics, promql, tools
from handbook.runners.base import Outcome, Target, execute, failed, no_variables
from handbook.snippet import Snippet
from handbook.yamlfile import ConfigError, LineMap, plain
from handbook.yamlfile import line as line_of
from handbook.yamlfile import load as load_yaml

SIDECAR_SUFFIX = ".test.yml"
SIDECAR_KEYS = ("interval", "input_series", "promql_expr_test")
EVAL_KEYS = ("eval_time", "exp_samples")
# Appended to each evaluation's copy of the expression (a PromQL comment): promtool
# prints the expression of a failed evaluation, which names the sidecar line.
MARKER = "# handbook-sidecar-line: {}"
MARKER_IN_OUTPUT = re.compile(r"# handbook-sidecar-line: (?P<line>\d+)")
FAILED_EVAL = re.compile(
    r'^\s*expr: "(?P<expr>(?:\\.|[^"\\])*)", time: (?P<time>[^,]+),(?P<rest>.*)$'
)
SERIES = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(?P<labels>.*)\})?$", re.S)
PARSE_ERROR = re.compile(r"err: (?P<line>\d+):(?P<col>\d+): parse error: (?P<msg>.*)$")
SIDECAR_EXAMPLE = """\
# <what the synthetic series represent>
interval: 1m
input_series:
  - series: '<metric>{<labels>}'
    values: '0+6x20'
promql_expr_test:
  - eval_time: 10m
    exp_samples:
      - labels: '{<labels of the result>}'
        value: <expected value>"""


def sidecar_of(snippet: Snippet) -> Path:
    return snippet.path.with_name(snippet.path.name + SIDECAR_SUFFIX)


def unknown_metrics(
    snippet: Snippet,
    catalogue: metrics.MetricCatalogue | None = None,
    known: metrics.KnownNames | None = None,
) -> list[str]:
    """Messages for each metric the snippet selects that exists nowhere (empty when all do)."""
    catalogue = catalogue or metrics.load_metric_catalogue()
    known = known or metrics.load_known_names()
    exists = catalogue.series_names() | known.names()
    body = snippet.body()
    try:
        names = promql.metric_names(body)
    except promql.PromQLSyntaxError:
        return []  # promtool, run next, says what is wrong and on which line
    messages = []
    for name in sorted(names - exists):
        offset = next((i for i, ln in enumerate(body.splitlines()) if name in ln), 0)
        messages.append(
            f"{snippet.name}:{snippet.body_start + offset}: metric {name} is neither ERPGo's "
            f"(in {rel(catalogue.path)}) nor a known exporter or Prometheus series (in "
            f"{rel(known.path)}): fix the name, or declare it in the file it belongs to"
        )
    return messages


def unknown_labels(
    snippet: Snippet, sidecar: Path | None = None, catalogue: metrics.MetricCatalogue | None = None
) -> list[str]:
    """Messages for labels of ERPGo's metrics that the catalogue does not declare: in the
    expression (when it selects only ERPGo's metrics) and in the sidecar's series (so the
    synthetic data looks like what ERPGo exposes)."""
    catalogue = catalogue or metrics.load_metric_catalogue()
    body, messages = snippet.body(), []
    try:
        names = promql.metric_names(body)
    except promql.PromQLSyntaxError:
        names = set()  # promtool, run next, says what is wrong and on which line
    if names and all(catalogue.lookup(name) for name in names):
        available = set().union(*(catalogue.labels_of(name) for name in names))
        for label in sorted(promql.label_names(body) - available):
            offset = next((i for i, ln in enumerate(body.splitlines()) if label in ln), 0)
            messages.append(
                f"{snippet.name}:{snippet.body_start + offset}: label {label!r} is not a label "
                f"of {', '.join(sorted(names))} in {rel(catalogue.path)}: "
                f"use one of {', '.join(sorted(available))}"
            )
    data = load_yaml(sidecar) if sidecar is not None and sidecar.is_file() else None
    series = data.get("input_series") if isinstance(data, LineMap) else None
    for entry in series if isinstance(series, list) else []:
        selector = entry.get("series") if isinstance(entry, LineMap) else None
        match = SERIES.match(str(selector or "").strip())
        if not match or catalogue.lookup(match["name"]) is None:
            continue
        labels = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"', match["labels"] or ""))
        extra = labels - catalogue.labels_of(match["name"])
        if extra:
            messages.append(
                f"{snippet.name}{SIDECAR_SUFFIX}:{line_of(entry)}: {match['name']} has no label "
                f"{', '.join(sorted(extra))} in {rel(catalogue.path)}: synthetic series must "
                "look like what ERPGo exposes"
            )
    return messages


def unit_test_file(snippet: Snippet, sidecar: Path) -> dict:
    """The promtool test file for the snippet; ConfigError (sidecar:line) if malformed."""
    where = snippet.name + SIDECAR_SUFFIX
    data = load_yaml(sidecar)
    if not isinstance(data, LineMap):
        raise ConfigError(f"{where}:1: a mapping is expected; write:\n{SIDECAR_EXAMPLE}")
    for key in data:
        if key not in SIDECAR_KEYS:
            raise ConfigError(
                f"{where}:{line_of(data, key)}: unknown key {key!r}: a sidecar has "
                f"{', '.join(SIDECAR_KEYS)}"
            )
    if not isinstance(data.get("input_series"), list) or not data["input_series"]:
        raise ConfigError(f"{where}:{line_of(data)}: give the synthetic series in 'input_series'")
    checks = data.get("promql_expr_test")
    if not isinstance(checks, list) or not checks:
        raise ConfigError(
            f"{where}:{line_of(data)}: give at least one evaluation in 'promql_expr_test'"
        )
    expressions = []
    body = snippet.body().rstrip("\n")
    for check in checks:
        line = line_of(check) or line_of(data, "promql_expr_test")
        if not isinstance(check, LineMap):
            raise ConfigError(f"{where}:{line}: an evaluation is a mapping: eval_time, exp_samples")
        if "expr" in check:
            raise ConfigError(
                f"{where}:{line_of(check, 'expr')}: remove 'expr': the runner evaluates the "
                f"snippet's own expression ({snippet.name})"
            )
        for key in check:
            if key not in EVAL_KEYS:
                raise ConfigError(
                    f"{where}:{line_of(check, key)}: unknown key {key!r}: an evaluation has "
                    f"{', '.join(EVAL_KEYS)}"
                )
        if "eval_time" not in check or not isinstance(check.get("exp_samples"), list):
            raise ConfigError(
                f"{where}:{line}: an evaluation needs 'eval_time' and 'exp_samples' (a list)"
            )
        expressions.append({"expr": f"{body}\n{MARKER.format(line)}\n", **plain(check)})
    if not any(check["exp_samples"] for check in expressions):
        raise ConfigError(
            f"{where}:{line_of(data, 'promql_expr_test')}: every evaluation expects no sample: "
            "a test that cannot fail; expect the result at least once"
        )
    group = {
        "interval": plain(data.get("interval", "1m")),
        "input_series": plain(data["input_series"]),
        "promql_expr_test": expressions,
    }
    return {"rule_files": [], "evaluation_interval": "1m", "tests": [group]}


def run(snippet: Snippet, target: Target) -> Outcome:
    """Evaluate the snippet with promtool (``tools.find_tool``) in the target's environment;
    ``target.servers`` names it in messages ("promtool 2.42.0 unit test")."""
    refused = no_variables(snippet, target)
    if refused:
        return refused
    try:
        promtool = tools.require_tool("promtool")
    except tools.ToolMissing as exc:
        return failed(snippet, target, 1, str(exc))
    sidecar = sidecar_of(snippet)
    if not sidecar.is_file():
        return Outcome(
            False,
            "",
            f"{snippet.name}:1: no promtool test beside it: write {sidecar.name} with the "
            f"synthetic series and the result the expression must give:\n{SIDECAR_EXAMPLE}",
            None,
        )
    try:
        problems = unknown_metrics(snippet) or unknown_labels(snippet, sidecar)
        data = unit_test_file(snippet, sidecar)
    except ConfigError as exc:
        return Outcome(False, "", str(exc), None)
    if problems:
        return Outcome(False, "", "\n".join(problems), None)
    with tempfile.TemporaryDirectory(prefix="handbook-promql-") as scratch:
        path = Path(scratch) / "snippet_test.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, width=1000), encoding="utf-8")
        result = execute(snippet, target, [promtool, "test", "rules", path.name], cwd=scratch)
    if isinstance(result, Outcome):
        return result
    output = (result.stdout + result.stderr).strip()
    evaluations = len(data["tests"][0]["promql_expr_test"])
    if result.returncode == 0:
        return Outcome(
            True,
            f"{evaluations} evaluation(s) of {snippet.name}{SIDECAR_SUFFIX} passed "
            f"({target.servers})",
        )
    message = failure_message(snippet, result.stderr, target.servers)
    return Outcome(False, output, message, result.returncode)


def failure_message(snippet: Snippet, stderr: str, described: str) -> str:
    """promtool's first complaint as ``file:line: ...``: the snippet for a parse error,
    the sidecar evaluation for a wrong result."""
    sidecar = snippet.name + SIDECAR_SUFFIX
    lines = stderr.splitlines()
    for index, text in enumerate(lines):
        failed = FAILED_EVAL.match(text)
        if not failed:
            continue
        try:
            expr = json.loads(f'"{failed["expr"]}"')
        except ValueError:  # a Go escape JSON does not know: the marker is still in there
            expr = failed["expr"]
        marker = MARKER_IN_OUTPUT.search(expr)
        at = f"{sidecar}:{marker['line']}" if marker else sidecar
        error = PARSE_ERROR.search(failed["rest"])
        if error:
            line = snippet.body_start + int(error["line"]) - 1
            return (
                f"{snippet.name}:{line}: promtool: parse error at column {error['col']}: "
                f"{error['msg']} ({described})"
            )
        if "err:" in failed["rest"]:
            detail = failed["rest"].split("err:", 1)[1].strip()
            return f"{at}: evaluating {snippet.name} at {failed['time']}: {detail} ({described})"
        diff = " ".join(x.strip() for x in lines[index + 1 : index + 3])
        return (
            f"{at}: {snippet.name} at {failed['time']} gave other samples than expected: "
            f"{diff}; fix the expression or the expected samples ({described})"
        )
    detail = " ".join(stderr.replace("FAILED:", "").split()) or "promtool test rules failed"
    return f"{sidecar}:1: {detail} ({described})"
