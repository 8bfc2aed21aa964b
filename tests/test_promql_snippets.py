"""PromQL snippets: each is a test item evaluated by the real promtool against its sidecar.

The snippets themselves run as ``snippets/promql/**/*.promql[promtool]`` items; these
tests show each rule a reader relies on failing when it is broken, with a message
that names the file and line at fault.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from handbook import snippet as snippets
from handbook.paths import SNIPPETS, rel
from handbook.prometheus import metrics, promql, tools
from handbook.pytest_plugin import unavailable
from handbook.runners import Target
from handbook.runners import promql as runner
from handbook.sphinxext.snippets import verification_note

GOOD_BODY = """\
# Requests per second by route
# page: runbooks/high-error-rate.md
sum by (route) (
  rate(erpgo_http_requests_total[5m])
)
"""
EXPECTED = "exp_samples:\n      - labels: '{route=\"/a\"}'\n        value: 1\n"
GOOD_SIDECAR = """\
# One route, 60 requests a minute.
interval: 1m
input_series:
  - series: 'erpgo_http_requests_total{route="/a",code="200"}'
    values: '0+60x20'
promql_expr_test:
  - eval_time: 0m
    exp_samples: []
  - eval_time: 10m
    exp_samples:
      - labels: '{route="/a"}'
        value: 1
"""


@pytest.fixture
def promtool() -> str:
    """The promtool path; a skip saying what to install (a failure under CI=true)."""
    try:
        return tools.require_tool("promtool")
    except tools.ToolMissing as exc:
        message = str(exc)
    unavailable(message)


def write(tmp_path: Path, body: str = GOOD_BODY, sidecar: str | None = GOOD_SIDECAR):
    path = tmp_path / "snippets" / "promql" / "x" / "q.promql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    if sidecar is not None:
        runner.sidecar_of(snippets.parse(path, tmp_path)).write_text(sidecar, encoding="utf-8")
    return snippets.parse(path, tmp_path)


def run(snippet: snippets.Snippet, promtool: str):
    return runner.run(snippet, Target(os.environ, "promtool unit test"))


# --------------------------------------------------------------------------- the real snippets

PROMQL = sorted(SNIPPETS.glob("promql/**/*.promql"))


def test_the_runbooks_have_promql_snippets():
    names = {path.stem for path in PROMQL}
    expected = {"error_rate_by_route", "p95_by_route", "failed_logins_by_reason"}
    assert expected <= names, f"missing PromQL snippets under snippets/promql/: {expected - names}"


@pytest.mark.parametrize("path", PROMQL, ids=lambda p: rel(p, SNIPPETS))
def test_every_promql_snippet_names_only_known_metrics_and_has_a_sidecar(path):
    snippet = snippets.parse(path)
    assert not runner.unknown_metrics(snippet), "\n".join(runner.unknown_metrics(snippet))
    assert runner.sidecar_of(snippet).is_file(), f"{snippet.name}: no sidecar"
    runner.unit_test_file(snippet, runner.sidecar_of(snippet))  # a well-formed sidecar


def test_every_sidecar_belongs_to_a_snippet():
    for sidecar in SNIPPETS.glob("promql/**/*" + runner.SIDECAR_SUFFIX):
        owner = sidecar.with_name(sidecar.name.removesuffix(runner.SIDECAR_SUFFIX))
        assert owner.is_file(), f"{rel(sidecar)}:1: no {owner.name} beside it: delete or rename it"


# --------------------------------------------------------------------------- bad input


def test_a_good_snippet_passes(tmp_path, promtool):
    outcome = run(write(tmp_path), promtool)
    assert outcome.ok, outcome.message
    assert "2 evaluation(s)" in outcome.output


def test_a_missing_sidecar_fails_saying_what_to_write(tmp_path, promtool):
    outcome = run(write(tmp_path, sidecar=None), promtool)
    assert not outcome.ok
    assert outcome.message.startswith("snippets/promql/x/q.promql:1: no promtool test beside it")
    assert "q.promql.test.yml" in outcome.message and "input_series:" in outcome.message


def test_an_unknown_metric_fails_naming_the_snippet_line_and_metric(tmp_path, promtool):
    body = GOOD_BODY.replace("rate(erpgo_http_requests_total", "rate(erpgo_http_request_total")
    outcome = run(write(tmp_path, body), promtool)
    assert not outcome.ok
    assert outcome.message.startswith(
        "snippets/promql/x/q.promql:4: metric erpgo_http_request_total is neither ERPGo's "
        "(in conf/metrics/erpgo.yml) nor a known exporter or Prometheus series "
        "(in conf/metrics/exporters.yml)"
    ), outcome.message


def test_an_exporter_name_that_the_exporter_lacks_is_unknown(tmp_path, promtool):
    body = GOOD_BODY.replace("erpgo_http_requests_total", "pg_stat_activity_count")
    outcome = run(write(tmp_path, body), promtool)
    assert "metric pg_stat_activity_count is neither" in outcome.message


def test_a_label_erpgo_does_not_expose_fails_in_the_expression_and_in_the_series(
    tmp_path, promtool
):
    body = GOOD_BODY.replace("sum by (route)", "sum by (status)")
    outcome = run(write(tmp_path, body), promtool)
    assert outcome.message.startswith(
        "snippets/promql/x/q.promql:3: label 'status' is not a label of "
        "erpgo_http_requests_total in conf/metrics/erpgo.yml: use one of code, instance, job,"
    ), outcome.message
    sidecar = GOOD_SIDECAR.replace('code="200"', 'status="200"')
    outcome = run(write(tmp_path, sidecar=sidecar), promtool)
    assert outcome.message == (
        "snippets/promql/x/q.promql.test.yml:4: erpgo_http_requests_total has no label status "
        "in conf/metrics/erpgo.yml: synthetic series must look like what ERPGo exposes"
    ), outcome.message


def test_a_sidecar_that_is_not_yaml_names_its_line(tmp_path, promtool):
    outcome = run(write(tmp_path, sidecar="input_series: [\n"), promtool)
    assert not outcome.ok and "q.promql.test.yml:2: not valid YAML" in outcome.message, (
        outcome.message
    )


def test_a_parse_error_names_the_snippet_line(tmp_path, promtool):
    body = GOOD_BODY.replace("[5m])", "[5m)")
    outcome = run(write(tmp_path, body), promtool)
    assert not outcome.ok
    assert outcome.message.startswith("snippets/promql/x/q.promql:4: promtool: parse error"), (
        outcome.message
    )


def test_a_wrong_result_names_the_sidecar_evaluation(tmp_path, promtool):
    sidecar = GOOD_SIDECAR.replace("value: 1\n", "value: 2\n")
    outcome = run(write(tmp_path, sidecar=sidecar), promtool)
    assert not outcome.ok
    assert outcome.message.startswith(
        "snippets/promql/x/q.promql.test.yml:9: snippets/promql/x/q.promql at 10m"
    ), outcome.message
    assert 'exp: {route="/a"} 2E+00 got: {route="/a"} 1E+00' in outcome.message


@pytest.mark.parametrize(
    ("change", "line", "problem"),
    [
        (("  - eval_time: 0m\n", "  - eval_time: 0m\n    expr: up\n"), 8, "remove 'expr'"),
        (("interval: 1m\n", "interval: 1m\nrule_files: []\n"), 3, "unknown key 'rule_files'"),
        (("        value: 1\n", "        value: 1\n    alertname: x\n"), 13, "unknown key"),
        ((EXPECTED, "exp_samples: []\n"), 6, "a test that cannot fail"),
        (("input_series:\n", "input_series: []\nx:\n"), 4, "unknown key 'x'"),
    ],
    ids=["expr", "unknown-key", "unknown-eval-key", "cannot-fail", "no-series"],
)  # fmt: skip
def test_a_malformed_sidecar_names_its_line(tmp_path, promtool, change, line, problem):
    sidecar = GOOD_SIDECAR.replace(*change)
    assert sidecar != GOOD_SIDECAR
    outcome = run(write(tmp_path, sidecar=sidecar), promtool)
    assert not outcome.ok
    assert f"q.promql.test.yml:{line}: " in outcome.message and problem in outcome.message, (
        outcome.message
    )


def test_metric_names_ignore_functions_labels_and_keywords():
    expr = 'count by (alertname, severity) (ALERTS{alertstate="firing"}) > 0'
    assert promql.metric_names(expr) == {"ALERTS"}
    assert "ALERTS" in metrics.load_known_names().names()


# --------------------------------------------------------------------------- pytest items


def test_each_snippet_is_a_promtool_item_recorded_in_the_report(pytester, promtool):
    pytester.makeconftest('pytest_plugins = ["handbook.pytest_plugin"]\n')
    for name, text in (("q.promql", GOOD_BODY), ("q.promql.test.yml", GOOD_SIDECAR)):
        path = pytester.path / "snippets" / "promql" / "x" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (pytester.path / "snippets" / "promql" / "x" / "bad.promql").write_text(GOOD_BODY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "-v")
    out = result.stdout.str()
    assert "snippets/promql/x/q.promql::promtool PASSED" in out, out
    assert "snippets/promql/x/bad.promql:1: no promtool test beside it" in out, out
    report = json.loads((pytester.path / "build" / "verification.json").read_text())
    entry = report["entries"]["snippets/promql/x/q.promql[promtool]"]
    assert entry["outcome"] == "passed"
    assert entry["server"] == f"promtool {tools.version('promtool')} unit test"
    snippet = snippets.parse(pytester.path / "snippets/promql/x/q.promql", pytester.path)
    note = verification_note(snippet, report)
    assert note.startswith("Evaluated in a promtool ") and "unit test against the" in note


def test_without_promtool_the_item_fails_under_ci_saying_what_to_install(pytester, monkeypatch):
    """Outside CI the same item skips with this message (the pattern of every tool check)."""
    pytester.makeconftest('pytest_plugins = ["handbook.pytest_plugin"]\n')
    path = pytester.path / "snippets" / "promql" / "q.promql"
    path.parent.mkdir(parents=True)
    path.write_text(GOOD_BODY)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    monkeypatch.delenv("HANDBOOK_PROMTOOL", raising=False)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "snippets/promql/q.promql: promtool not found" in out
    assert "apt-get install prometheus" in out


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# Nothing\n# page: x.md\n\n", "x.promql:3: no PromQL expression after the header"),
        (
            "# Server\n# page: x.md\n# needs: pg\nup\n",
            "x.promql:3: a PromQL snippet has no 'needs:'",
        ),
    ],
)
def test_a_promql_snippet_header_that_cannot_apply_is_refused(tmp_path, text, problem):
    path = tmp_path / "x.promql"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(snippets.SnippetError, match=re.escape(problem)):
        snippets.parse(path, tmp_path)
