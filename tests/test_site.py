"""The built site keeps the promises the alerts and snippets make.

Each test builds the real pages (or a copy with one thing broken) with warnings
as errors, the way ``tox -e docs`` does, and reads what the build says or wrote.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from handbook.paths import ROOT
from handbook.prometheus import alerts
from handbook.prometheus.metrics import load_metric_catalogue
from handbook.site import build

# Every test here builds the site: without what it needs, skip (a failure under CI).
pytestmark = pytest.mark.usefixtures("site_tools")


@pytest.fixture(scope="module")
def site(built_site) -> Path:
    return built_site


@pytest.fixture
def copy(tmp_path) -> Path:
    for name in ("docs", "conf", "snippets", "handbook"):  # the pages read all four
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("_build", "__pycache__")
        )
    return tmp_path


@pytest.mark.covers("20.1")
@pytest.mark.covers("next:links")
@pytest.mark.parametrize("alert", alerts.load_rules(), ids=lambda a: a.name)
def test_runbook_url_lands_on_an_anchor_of_the_built_site(site, alert):
    page, anchor = alert.runbook_target()
    html = (site / page).read_text(encoding="utf-8")
    assert re.search(rf'id="{re.escape(anchor)}"', html), (
        f"{alert.location}: no #{anchor} in {page}"
    )
    assert f'<code class="docutils literal notranslate"><span class="pre">{alert.name}' in html


def test_runbook_header_renders_the_rule_not_a_copy(site):
    alert = {a.name: a for a in alerts.load_rules()}["HighErrorRate"]
    html = (site / "runbooks" / "high-error-rate.html").read_text(encoding="utf-8")
    assert str(alert.threshold).replace(">", "&gt;") in html
    assert alert.for_ in html


@pytest.mark.covers("20.1")
def test_deleting_a_runbook_anchor_fails_the_build_naming_the_alert(copy, tmp_path):
    page = copy / "docs" / "runbooks" / "high-error-rate.md"
    page.write_text(page.read_text().replace("(high-error-rate)=\n", ""))
    result = build(copy, tmp_path / "out")
    assert result.returncode != 0
    assert (
        "conf/prometheus/alert_rules.yml:" in result.stderr
        and "HighErrorRate's runbook_url https://docs.erpgo.com/handbook/runbooks/high-error-rate"
        ".html#high-error-rate needs the explicit anchor '(high-error-rate)='"
        in result.stderr
    ), result.stderr


def test_runbook_for_an_alert_that_does_not_exist_fails(copy, tmp_path):
    page = copy / "docs" / "runbooks" / "high-latency.md"
    page.write_text(page.read_text().replace("{alert} HighResponseTime", "{alert} HighLatency"))
    lines = page.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "{alert} HighLatency" in text)
    result = build(copy, tmp_path / "out")
    assert (
        f"docs/runbooks/high-latency.md:{line}: WARNING: runbook serves alert 'HighLatency'"
        in result.stderr
    ), result.stderr
    assert "alert HighResponseTime has no runbook" in result.stderr


def test_snippet_no_page_shows_fails_naming_the_file(copy, tmp_path):
    orphan = copy / "snippets" / "sql" / "orphan.sql"
    orphan.write_text("-- Shown nowhere\n-- page: runbooks/high-latency.md\nSELECT 1;\n")
    result = build(copy, tmp_path / "out")
    assert result.returncode != 0
    assert "snippets/sql/orphan.sql:1: no page shows this snippet: include it in " in result.stderr


def test_snippet_shown_on_another_page_than_its_header_names_fails(copy, tmp_path):
    snippet = copy / "snippets" / "sql" / "locks" / "blocking_locks.sql"
    snippet.write_text(snippet.read_text().replace("runbooks/high-latency.md", "runbooks/x.md"))
    result = build(copy, tmp_path / "out")
    assert "its header says 'page: runbooks/x.md'" in result.stderr


def test_snippet_page_shows_body_caption_and_verification_note(site):
    html = (site / "runbooks" / "connection-pool-exhaustion.html").read_text(encoding="utf-8")
    assert "Sessions idle inside an open transaction" in html  # the caption, from line 1
    assert "-- mode: read-only" not in html  # header lines are for the tests
    assert "handbook-verification" in html


def test_site_built_after_a_test_run_says_where_each_snippet_ran(copy, tmp_path):
    """Run one snippet with the real harness in a copy, then build: its note names the servers."""
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, copy / name)
    shown = "snippets/sql/pool/connections_by_state.sql"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", shown],
        cwd=copy, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert (copy / "build" / "verification.json").exists(), "the run wrote no report"
    result = build(copy, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out" / "runbooks" / "connection-pool-exhaustion.html").read_text()
    notes = re.findall(r'class="handbook-verification"><em>([^<]*)</em>', html)
    assert any(note.startswith("Ran on PostgreSQL ") for note in notes), notes
    # Snippets that did not run in that test run say so rather than claim anything.
    assert any(note.startswith("Not verified in this build") for note in notes), notes


def test_no_code_block_hides_lines_from_the_copy_button(site):
    """Every block is a file to run whole: a prompt or output span would be left out of a copy.

    The copy button skips what the lexer marks as a prompt (``.gp``) or program output
    (``.go``); the psql lexer, for one, can take a SQL file for a session transcript.
    """
    hidden = []
    for page in sorted(site.rglob("*.html")):
        html = page.read_text(encoding="utf-8")
        for match in re.finditer(r'<span class="(gp|go)">([^<]*)', html):
            hidden.append(f"{page.relative_to(site)}: .{match[1]} {match[2][:60]!r}")
    assert not hidden, "lines the copy button would leave out:\n" + "\n".join(hidden[:20])


def test_metrics_reference_is_generated_from_the_catalogue(site):
    html = (site / "reference" / "alerts.html").read_text(encoding="utf-8")
    catalogue = load_metric_catalogue()
    missing = [name for name in catalogue.metrics if f'<span class="pre">{name}</span>' not in html]
    assert catalogue.metrics and not missing, f"reference/alerts.html lacks {missing}"
    assert f"conf/metrics/erpgo.yml: {len(catalogue.metrics)} metrics" in html


def test_quick_reference_shows_each_alert_with_its_runbooks_first_diagnostic(site):
    html = (site / "quick-reference.html").read_text(encoding="utf-8")
    for alert in alerts.load_rules():
        page, _ = alert.runbook_target()
        heading = f"{alert.name}</span></code></strong> ({alert.severity}), runbook:"
        assert heading in html, alert.name
        runbook = (site / page).read_text(encoding="utf-8")
        first = re.search(r'code-block-caption"><span class="caption-text">([^<]*)<', runbook)
        assert first, f"{page}: shows no snippet"
        title = first[1].replace("\u2019", "'")  # captions get smart quotes, the table not
        assert f"First diagnostic: {title}" in html.replace("&#39;", "'"), (alert.name, title)
