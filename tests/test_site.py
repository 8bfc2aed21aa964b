"""The built site keeps the promises the alerts and snippets make.

Each test builds the real pages (or a copy with one thing broken) with warnings
as errors, the way ``tox -e docs`` does, and reads what the build says or wrote.
"""

import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

from handbook import snippet as snippets
from handbook.confcheck import config_catalogue
from handbook.paths import ROOT
from handbook.prometheus import alerts
from handbook.prometheus.metrics import load_metric_catalogue
from handbook.site import build
from handbook.sphinxext import links
from handbook.sphinxext.alerts import placeholders

# Every test here builds the site: without what it needs, skip (a failure under CI).
pytestmark = pytest.mark.usefixtures("site_tools")


@pytest.fixture(scope="module")
def site(built_site) -> Path:
    return built_site


# A test that breaks a copy of the repository proves a check fails as it should: it is
# about the harness, not about a page, so verifying one page leaves it out.
BREAKS_A_COPY = pytest.mark.whole_run("builds a broken copy of the site to prove a check fails")


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
@BREAKS_A_COPY
def test_deleting_a_runbook_anchor_fails_the_build_naming_the_alert(copy, tmp_path):
    page = copy / "docs" / "runbooks" / "high-error-rate.md"
    page.write_text(page.read_text().replace("(high-error-rate)=\n", ""))
    result = build(copy, tmp_path / "out", "dummy")
    assert result.returncode != 0
    assert (
        "conf/prometheus/alert_rules.yml:" in result.stderr
        and "HighErrorRate's runbook_url https://docs.erpgo.com/handbook/runbooks/high-error-rate"
        ".html#high-error-rate needs the explicit anchor '(high-error-rate)='"
        in result.stderr
    ), result.stderr


@BREAKS_A_COPY
def test_runbook_for_an_alert_that_does_not_exist_fails(copy, tmp_path):
    page = copy / "docs" / "runbooks" / "high-latency.md"
    page.write_text(page.read_text().replace("{alert} HighResponseTime", "{alert} HighLatency"))
    lines = page.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "{alert} HighLatency" in text)
    result = build(copy, tmp_path / "out", "dummy")
    assert (
        f"docs/runbooks/high-latency.md:{line}: WARNING: runbook serves alert 'HighLatency'"
        in result.stderr
    ), result.stderr
    assert "alert HighResponseTime has no runbook" in result.stderr


@BREAKS_A_COPY
def test_snippet_no_page_shows_fails_naming_the_file(copy, tmp_path):
    orphan = copy / "snippets" / "sql" / "orphan.sql"
    orphan.write_text("-- Shown nowhere\n-- page: runbooks/high-latency.md\nSELECT 1;\n")
    result = build(copy, tmp_path / "out", "dummy")
    assert result.returncode != 0
    assert "snippets/sql/orphan.sql:1: no page shows this snippet: include it in " in result.stderr


@BREAKS_A_COPY
def test_snippet_shown_on_another_page_than_its_header_names_fails(copy, tmp_path):
    snippet = copy / "snippets" / "sql" / "locks" / "blocking_locks.sql"
    snippet.write_text(snippet.read_text().replace("runbooks/high-latency.md", "runbooks/x.md"))
    result = build(copy, tmp_path / "out", "dummy")
    assert "its header says 'page: runbooks/x.md'" in result.stderr


def test_snippet_page_shows_body_caption_and_verification_note(site):
    html = (site / "runbooks" / "connection-pool-exhaustion.html").read_text(encoding="utf-8")
    assert "Sessions idle inside an open transaction" in html  # the caption, from line 1
    assert "-- mode: read-only" not in html  # header lines are for the tests
    assert 'class="handbook-badge handbook-badge-' in html
    assert 'class="handbook-mode handbook-mode-read-only"' in html


@pytest.mark.whole_run("builds a copy of the whole site from a run's report")
def test_site_built_after_a_test_run_says_where_each_snippet_ran(copy, tmp_path):
    """Run one snippet with the real harness in a copy, then build: its note names the servers."""
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, copy / name)
    shown = "snippets/sql/pool/connections_by_state.sql"
    run = subprocess.run(
        # the snippet's own items: not the drill and other tests that also run it
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", shown,
         "-k", "connections_by_state"],
        cwd=copy, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert (copy / "build" / "verification.json").exists(), "the run wrote no report"
    result = build(copy, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out" / "runbooks" / "connection-pool-exhaustion.html").read_text()
    badges = re.findall(
        r'class="handbook-badge handbook-badge-([a-z-]+)[^"]*" [^>]*title="([^"]*)"', html
    )
    assert any(
        outcome == "passed" and note.startswith("Ran on PostgreSQL ") for outcome, note in badges
    ), badges
    # Snippets that did not run in that test run say so rather than claim anything.
    assert any(
        outcome == "not-run" and note.startswith("Not verified in this build")
        for outcome, note in badges
    ), badges


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
        heading = re.search(
            rf'<section class="handbook-quickref" id="quickref-{alert.name.lower()}">\s*'
            rf'<h2><code[^>]*><span class="pre">{alert.name}</span></code> \({alert.severity}\)',
            html,
        )
        assert heading, f"quick-reference.html: no heading #quickref-{alert.name.lower()}"
        runbook = (site / page).read_text(encoding="utf-8")
        first = re.search(r'code-block-caption"><span class="caption-text">([^<]*)<', runbook)
        assert first, f"{page}: shows no snippet"
        title = first[1].replace("\u2019", "'")  # captions get smart quotes, the table not
        assert f"First diagnostic: {title}" in html.replace("&#39;", "'"), (alert.name, title)


@pytest.mark.parametrize("alert", alerts.load_rules(), ids=lambda a: a.name)
def test_runbook_shows_the_whole_expression_and_readable_placeholders(site, alert):
    page, _ = alert.runbook_target()
    html = (site / page).read_text(encoding="utf-8")
    text = unescape(re.sub(r"<[^>]+>", "", html))
    assert alert.expr.strip() in text, f"{alert.location}: {page} does not show the whole expr"
    assert "{{" not in text, f"{page}: a raw template ({{{{ $labels... }}}}) is shown"
    link = f"{links.source_url()}conf/prometheus/alert_rules.yml#L{alert.line}"
    assert f'href="{link}"' in html, f"{page}: the rule is not linked to {link}"
    assert 'class="handbook-first-five' in html, f"{page}: no first-five-minutes box"


def test_placeholders_read_as_names():
    summary = "{{ $labels.service }} uses {{ $value | humanizePercentage }} of {{ $labels.pool }}"
    assert placeholders(summary) == "<service> uses <value> of <pool>"
    optional = "No {{ $labels.job }} exporter reports {{- with $labels.role }} for the {{ . }}"
    optional += "{{ else }} at all{{ end }}"
    assert placeholders(optional) == "No <job> exporter reports for the <role> (else: at all)"


def test_every_promql_block_opens_in_prometheus(site):
    missing = []
    for path in sorted(ROOT.glob("snippets/promql/**/*.promql")):
        snippet = snippets.parse(path)
        html = (site / snippet.page.replace(".md", ".html")).read_text(encoding="utf-8")
        url = unescape(links.prometheus_graph(snippet.body()))
        hrefs = [unescape(h) for h in re.findall(r'href="([^"]*)"', html)]
        if url not in hrefs:
            missing.append(f"{snippet.name}: {snippet.page} has no link to {url[:80]}...")
    assert not missing, "\n".join(missing)


def test_configuration_categories_are_headings_with_anchors(site):
    html = (site / "reference" / "configuration.html").read_text(encoding="utf-8")
    catalogue, _ = config_catalogue.load_all()
    missing = [
        key
        for key in catalogue.categories
        if not re.search(rf'<section id="config-{key}">\s*<h3>', html)
    ]
    assert not missing, f"reference/configuration.html: no heading for categories {missing}"


@BREAKS_A_COPY
def test_a_runbook_without_its_first_five_minutes_fails_the_build(copy, tmp_path):
    page = copy / "docs" / "runbooks" / "watchdog.md"
    text = page.read_text()
    start = text.index("```{first-five-minutes}")
    end = text.index("```\n", start + 3) + 4
    page.write_text(text[:start] + text[end:])
    result = build(copy, tmp_path / "out", "dummy")
    assert result.returncode != 0
    assert "docs/runbooks/watchdog.md:1: WARNING: incident runbook without" in result.stderr, (
        result.stderr
    )


def test_links_out_follow_their_environment_variables(monkeypatch):
    """HANDBOOK_PROMETHEUS_URL and HANDBOOK_SOURCE_URL move the links; unset, production's."""
    for variable in ("HANDBOOK_PROMETHEUS_URL", "HANDBOOK_SOURCE_URL"):
        monkeypatch.delenv(variable, raising=False)
    assert links.prometheus_graph('up{job="redis"}') == (
        links.DEFAULT_PROMETHEUS_URL + "graph?g0.expr=up%7Bjob%3D%22redis%22%7D&g0.tab=1"
    )
    assert links.source_line("conf/x.yml", 7) == links.DEFAULT_SOURCE_URL + "conf/x.yml#L7"
    monkeypatch.setenv("HANDBOOK_PROMETHEUS_URL", "http://127.0.0.1:9090")
    monkeypatch.setenv("HANDBOOK_SOURCE_URL", "https://example.org/handbook/blob/v1")
    assert links.prometheus_graph("up").startswith("http://127.0.0.1:9090/graph?g0.expr=up")
    assert (
        links.source_line("conf/x.yml", 7) == "https://example.org/handbook/blob/v1/conf/x.yml#L7"
    )
