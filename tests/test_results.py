"""Results tied to content: a page shows a result only for the content that produced it.

Each test writes a small project, runs pytest on it in a child process with the real
plugin and servers, then reads the note the page would show for a snippet, edits the
snippet and reads it again, as rebuilding only the site after an edit would.
"""

from __future__ import annotations

import json
import textwrap

import childrun
import pytest

from handbook import report as verification
from handbook import snippet as snippets
from handbook.sphinxext.snippets import verification_note

SQL = """\
-- How many sessions there are
-- page: x.md
-- user: erpgo_monitor
SELECT count(*) FROM pg_stat_activity;
"""
LINT_ONLY = """\
# Something only its own test can run
# page: x.md
# lint-only: it needs a setup of its own
# verified-by: tests/test_own.py
set -euo pipefail
echo done
"""
OWN_TEST = """\
import subprocess

def test_runs_it():
    # runs snippets/shell/own.sh, as the verified-by header says
    result = subprocess.run(["bash", "snippets/shell/own.sh"], capture_output=True, text=True)
    assert result.stdout == "done\\n"
    assert {verdict}
"""


def project(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    pytester.makeconftest('pytest_plugins = ["handbook.pytest_plugin"]\n')
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def run(pytester: pytest.Pytester, *args: str) -> tuple[dict, str]:
    result = childrun.run_pytester(pytester, "-rA", *args)
    report = json.loads((pytester.path / "build" / "verification.json").read_text())
    return report, result.stdout.str()


def note(pytester: pytest.Pytester, name: str, report: dict) -> str:
    return verification_note(snippets.parse(pytester.path / name, pytester.path), report)


def test_entries_record_run_time_and_hash_of_what_ran(pytester):
    project(pytester, {"snippets/sql/count.sql": SQL})
    report, out = run(pytester, "--pg", "local", *childrun.one_pg(), "snippets")
    entries = [e for e in report["entries"].values() if e["snippet"] == "snippets/sql/count.sql"]
    assert entries, out
    for entry in entries:
        assert entry["run"] == report["run"] and entry["time"]
        path = pytester.path / entry["snippet"]
        assert entry["hash"] == verification.content_hash(path, entry["server"])
        assert verification.is_current(entry, pytester.path)
    started = report["runs"][report["run"]]["started"]
    assert started <= entries[0]["time"] <= report["generated"]


def test_editing_a_snippet_after_the_run_makes_its_note_say_so(pytester):
    project(pytester, {"snippets/sql/count.sql": SQL})
    report, out = run(pytester, "--pg", "local", *childrun.one_pg(), "snippets")
    before = note(pytester, "snippets/sql/count.sql", report)
    assert before.startswith("Ran on PostgreSQL "), (before, out)
    assert f"run {report['run']} (" in before
    path = pytester.path / "snippets/sql/count.sql"
    path.write_text(SQL.replace("count(*)", "count(*) AS sessions"))
    after = note(pytester, "snippets/sql/count.sql", report)
    assert after.startswith("Not verified: this snippet changed since it was last verified"), after
    assert "Ran on" not in after
    # Putting the content back makes the recorded result valid again.
    path.write_text(SQL)
    assert note(pytester, "snippets/sql/count.sql", report) == before


@pytest.mark.parametrize(("verdict", "expected"), [("True", "passed"), ("False", "FAILED")])
def test_verified_by_counts_only_a_passing_run_on_the_current_content(pytester, verdict, expected):
    project(
        pytester,
        {
            "snippets/shell/own.sh": LINT_ONLY,
            "tests/test_own.py": OWN_TEST.format(verdict=verdict),
        },
    )
    report, out = run(pytester, "snippets", "tests")
    assert report["tests"]["tests/test_own.py"]["outcome"] == expected.lower(), out
    shown = note(pytester, "snippets/shell/own.sh", report)
    if expected == "passed":
        assert shown.startswith("Run for real by tests/test_own.py"), shown
        assert "passed with this content" in shown and report["run"] in shown
    else:
        assert shown.startswith("Not verified: its test tests/test_own.py FAILED in run"), shown
    # An edit after the run: the test never saw this content.
    path = pytester.path / "snippets/shell/own.sh"
    path.write_text(LINT_ONLY.replace("echo done", "echo done  # edited"))
    if expected == "passed":
        shown = note(pytester, "snippets/shell/own.sh", report)
        assert shown.startswith("Not verified: this snippet changed since tests/test_own.py"), shown


def test_a_later_run_without_the_test_does_not_verify_an_edited_snippet(pytester):
    project(
        pytester,
        {"snippets/shell/own.sh": LINT_ONLY, "tests/test_own.py": OWN_TEST.format(verdict="True")},
    )
    run(pytester, "snippets", "tests")
    path = pytester.path / "snippets/shell/own.sh"
    path.write_text(LINT_ONLY.replace("echo done", "echo done  # edited"))
    report, _ = run(pytester, "snippets")  # the edited snippet is seen, its test not run
    shown = note(pytester, "snippets/shell/own.sh", report)
    assert shown.startswith("Not verified: this snippet changed since tests/test_own.py"), shown
    report, _ = run(pytester, "tests")  # now its test runs on the current content
    shown = note(pytester, "snippets/shell/own.sh", report)
    assert shown.startswith("Run for real by tests/test_own.py"), shown


def test_an_edit_between_two_runs_of_the_same_second_is_not_verified(tmp_path):
    """Two quick runs (the second only shellchecks the edited snippet) may finish in the
    same second: the report's times must still order them (handbook/report.py now())."""
    name = "snippets/shell/own.sh"
    snippet = tmp_path / name
    snippet.parent.mkdir(parents=True)
    snippet.write_text(LINT_ONLY)
    path = tmp_path / "build" / "verification.json"
    first = verification.Report(path)
    first.test_outcome("tests/test_own.py", "passed")
    first.write()
    snippet.write_text(LINT_ONLY.replace("echo done", "echo done  # edited"))
    verification.Report(path).write()  # sees the edit; the test does not run
    state, _ = verification.verified_by(
        verification.load(path), name, "tests/test_own.py", tmp_path
    )
    assert state == "stale", f"an edit after the test's run counts as verified: {state}"
