"""The marks a snippet block carries: its mode, what it changes, and its verification badge.

The badge's outcome comes from a report written by the real report writer
(``handbook.report.Report``) in a scratch project; the browser tests check the colours.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from handbook import report as verification
from handbook import snippet as snippets
from handbook.sphinxext.snippets import mode_mark, verdict

QUERY = "-- Count the sessions\n-- page: x.md\n{header}SELECT count(*) FROM pg_stat_activity;\n"


def write(root: Path, name: str, header: str = "") -> snippets.Snippet:
    path = root / "snippets" / "sql" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(QUERY.format(header=header))
    return snippets.parse(path, root)


def test_a_read_only_snippet_that_says_what_it_changes_is_refused(tmp_path):
    with pytest.raises(snippets.SnippetError, match=r"snippets/sql/x\.sql:3: 'changes:' says"):
        write(tmp_path, "x.sql", "-- changes: the sessions\n")


def test_marks_say_read_only_changes_state_or_changes_nothing(tmp_path):
    marks = {
        "read-only": mode_mark(write(tmp_path, "a.sql")),
        "writes": mode_mark(
            write(tmp_path, "b.sql", "-- mode: writes\n-- changes: every session ends\n")
        ),
        "nothing": mode_mark(
            write(tmp_path, "c.sql", "-- mode: writes\n-- changes: nothing: it only logs in\n")
        ),
        "unsaid": mode_mark(write(tmp_path, "d.sql", "-- mode: writes\n")),
    }
    text = {key: [m.astext() for m in value] for key, value in marks.items()}
    assert text["read-only"] == ["Read-only"]
    assert text["writes"] == ["\u26a0 Changes state", "This changes every session ends"]
    assert text["nothing"] == ["Changes nothing", "it only logs in"]
    assert text["unsaid"][0] == "\u26a0 Changes state"  # never shown as harmless by default
    assert "handbook-mode-writes" in marks["writes"][0]["classes"]


def test_the_badge_follows_the_recorded_outcome(tmp_path):
    shown = {name: write(tmp_path, name) for name in ("ok.sql", "bad.sql", "old.sql", "new.sql")}
    report = verification.Report(tmp_path / "build" / "verification.json", root=tmp_path)
    for name, outcome in (("ok.sql", "passed"), ("bad.sql", "failed"), ("old.sql", "passed")):
        entry = verification.Entry(
            f"snippets/sql/{name}", "pg15", outcome, server="PostgreSQL 15.20, local"
        )
        report.add(entry)
    report.write()
    old = shown["old.sql"].path
    old.write_text(old.read_text() + "-- edited after the run\n")
    data = verification.load(tmp_path / "build" / "verification.json")
    results = {name: verdict(snippet, data, tmp_path) for name, snippet in shown.items()}
    assert {name: r.outcome for name, r in results.items()} == {
        "ok.sql": "passed",
        "bad.sql": "failed",
        "old.sql": "stale",
        "new.sql": "not-run",
    }
    # The words a reader sees: versions without where the server ran, and the run's date.
    assert results["ok.sql"].words == "Tested on PostgreSQL 15.20"
    assert results["ok.sql"].run == data["run"] and results["ok.sql"].when
    assert results["bad.sql"].words == "Failed on pg15"
    assert results["old.sql"].words == "Changed since it was tested"


def test_the_badge_names_the_commit_the_run_tested(tmp_path):
    """A run in a git checkout records its commit (``+`` when tracked files were
    changed), and the badge says it beside the date."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.org",
             *args], capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    snippet = write(tmp_path, "ok.sql")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "x")
    commit = git("rev-parse", "--short", "HEAD")
    for dirty in (False, True):
        if dirty:
            snippet.path.write_text(snippet.path.read_text() + "-- edited\n")
            snippet = snippets.parse(snippet.path, tmp_path)
        report = verification.Report(tmp_path / "build" / "verification.json", root=tmp_path)
        report.add(verification.Entry("snippets/sql/ok.sql", "pg15", "passed", server="PG 15"))
        report.write()
        data = verification.load(tmp_path / "build" / "verification.json")
        shown = verdict(snippet, data, tmp_path).when
        assert shown.endswith(f"commit {commit}{'+' if dirty else ''}"), shown
