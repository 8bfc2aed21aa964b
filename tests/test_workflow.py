"""The branch-name and commit-message checker the workflow page shows.

The checker lives in handbook/guide/workflow.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from handbook.guide import workflow
from handbook.paths import ROOT

GOOD = """fix(pool): close transactions left idle by the report job

The nightly report opened a transaction per page and never ended it.
See https://example.com/a/very/long/link/that/is/allowed/to/run/past/seventy-two/characters

Refs: #123
"""
SNIPPET = "shell/onboarding/check_branch_and_commit.sh"


def rules(violations) -> list[str]:
    return [v.rule for v in violations]


@pytest.mark.parametrize(
    "name",
    ["feat/123-pool-metrics", "fix/7-a", "hotfix/4021-rollback-2026-11", "docs/12-onboarding"],
)
def test_good_branch_names_pass(name):
    assert workflow.check_branch(name) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pool-metrics", ["branch-format"]),
        ("feat/pool", ["branch-format"]),
        ("feature/123-pool", ["branch-type"]),
        ("feat/abc-pool", ["branch-issue"]),
        ("feat/123-Pool_Metrics", ["branch-slug"]),
        ("feat/123-pool--metrics", ["branch-slug"]),
        ("feat/123-" + "x" * 60, ["branch-length"]),
        ("Feat/x1-Pool", ["branch-type", "branch-issue", "branch-slug"]),
    ],
)
def test_bad_branch_names_fail_with_the_rule_they_break(name, expected):
    assert rules(workflow.check_branch(name)) == expected


def test_a_good_commit_message_passes_and_git_comments_are_ignored():
    assert workflow.check_commit(GOOD + "# Please enter the commit message\n#\n") == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", [("commit-subject", 1)]),
        ("\nfix: x\n", [("commit-subject", 1)]),
        ("Fix the pool\n\nRefs: #1\n", [("commit-subject", 1)]),
        ("feature(pool): add x\n\nRefs: #1\n", [("commit-type", 1)]),
        ("fix(Pool Stats): add x\n\nRefs: #1\n", [("commit-scope", 1)]),
        ("fix(pool):  add x\n\nRefs: #1\n", [("commit-summary", 1)]),
        ("fix(pool): Added x\n\nRefs: #1\n", [("commit-summary-case", 1)]),
        ("fix(pool): add x.\n\nRefs: #1\n", [("commit-summary-period", 1)]),
        ("fix(pool): " + "a" * 70 + "\n\nRefs: #1\n", [("commit-subject-length", 1)]),
        ("fix(pool): add x\nbody\n\nRefs: #1\n", [("commit-blank-line", 2)]),
        ("fix(pool): add x\n\n" + "b" * 73 + "\n\nRefs: #1\n", [("commit-body-length", 3)]),
        ("fix(pool): add x\n\nbody\n", [("commit-issue", 3)]),
        ("fix(pool): add x\n\nRefs #1\n", [("commit-issue", 3)]),
    ],
)
def test_bad_commit_messages_fail_with_rule_and_line(message, expected):
    assert [(v.rule, v.line) for v in workflow.check_commit(message)] == expected


def test_violations_render_as_file_line_rule_message():
    (violation,) = workflow.check_commit("fix(pool): add x\n\nbody\n")
    assert violation.render("msg.txt").startswith("msg.txt:3: commit-issue: name the issue")
    (violation,) = workflow.check_branch("feat/abc-x")
    assert violation.render("branch feat/abc-x").startswith("branch feat/abc-x: branch-issue: ")


def test_command_line(tmp_path: Path, capsys):
    assert workflow.main(["branch", "feat/1-x"]) == 0
    assert capsys.readouterr().out == "branch feat/1-x: ok\n"
    assert workflow.main(["branch", "feat/x"]) == 1
    assert "branch feat/x: branch-format: " in capsys.readouterr().err
    message = tmp_path / "msg"
    message.write_text(GOOD)
    assert workflow.main(["commit", str(message)]) == 0
    assert capsys.readouterr().out == f"commit message {message}: ok\n"
    message.write_text("wip\n")
    assert workflow.main(["commit", str(message)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{message}:1: commit-subject: ")
    assert workflow.main(["commit", str(tmp_path / "missing")]) == 2
    assert "cannot read the commit message" in capsys.readouterr().err
    assert workflow.main(["tag", "x"]) == 2
    assert workflow.main([]) == 2
    assert capsys.readouterr().err.count("usage: python -m handbook.guide.workflow") == 2


def test_the_workflow_page_snippet_runs_from_a_checkout():
    """snippets/shell/onboarding/check_branch_and_commit.sh, as the workflow page shows it."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", str(ROOT / "snippets" / SNIPPET)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, (
        f"snippets/{SNIPPET}: exited {result.returncode}:\n{result.stderr}"
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "branch feat/123-pool-metrics: ok"
    assert lines[1].startswith("commit message ") and lines[1].endswith(": ok")


def test_the_workflow_page_quotes_the_real_message():
    (violation,) = workflow.check_commit("fix(pool): add x\n\nbody\n")
    page = ROOT / "docs" / "onboarding" / "workflow.md"
    text = " ".join(page.read_text(encoding="utf-8").split())
    assert f"`{violation.render('msg.txt')}`" in text, (
        f"docs/onboarding/workflow.md: quote the checker's real message: "
        f"`{violation.render('msg.txt')}`"
    )
