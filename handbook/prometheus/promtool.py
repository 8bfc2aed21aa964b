"""``promtool check rules`` and ``promtool test rules``, their messages pointed at the
rules file line or the test group at fault.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import yaml

from handbook.paths import rel
from handbook.prometheus.alerts import RULES_FILE, load_rules
from handbook.prometheus.ruletests import RuleTestGroup, load_rule_tests, rule_test_files
from handbook.prometheus.tools import ToolResult, require_tool, run
from handbook.yamlfile import ConfigError, Finding, plain

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
                    file_line = rule.expr_fileline_of(int(position["line"]), int(position["col"]))
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
    done = run([promtool, "check", "rules", *files], cwd=cwd)
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
                run_file.write_text(yaml.safe_dump(plain(copy), sort_keys=False), encoding="utf-8")
            argv = [promtool, "test", "rules", str(run_file)]
            done = run(argv, cwd=cwd)
            results.append((original, groups, rules, done))
    argv = [promtool, "test", "rules", *(str(f) for f in files)]
    result = ToolResult(argv, 0, "", "")
    for original, groups, rules, done in results:
        result.returncode = max(result.returncode, done.returncode)
        result.stdout += done.stdout
        result.stderr += done.stderr
        result.findings.extend(_findings_from_test_run(original, groups, rules, done, cwd))
    return result


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
