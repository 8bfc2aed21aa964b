"""An incremental build of the site is as strict as a clean one, and only as slow as the change.

A page's run rebuilds the site from the one kept by the last run (handbook.site.build_kept),
so these hold a copy of the repository to what a clean build would say: a new test result
re-writes the pages that show it without reading them again, a dangling link fails every
build until it is fixed, and a failed build is never kept.
"""

import re
import shutil
from pathlib import Path

import pytest

from handbook import report as verification
from handbook.paths import ROOT
from handbook.site import KEPT, build, build_kept, cache_key

pytestmark = [
    pytest.mark.usefixtures("site_tools"),
    pytest.mark.whole_run("builds copies of the site to prove incremental builds stay strict"),
]

SNIPPET = "snippets/sql/pool/connections_by_state.sql"
SHOWN_ON = Path("runbooks") / "connection-pool-exhaustion"
UNRELATED = Path("reference") / "alerts"  # shows no test result, and holds no page
LABEL_PAGE = ROOT / "docs" / "reference" / "review-status.md"
LINKED_FROM = "docs/procedures/maintenance.md:15"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A copy of the repository, built once from scratch into ``out/``."""
    copy = tmp_path_factory.mktemp("incremental")
    for name in ("docs", "conf", "snippets", "handbook", "tests"):
        shutil.copytree(
            ROOT / name, copy / name, ignore=shutil.ignore_patterns("_build", "__pycache__")
        )
    result = build(copy, copy / "out")
    assert result.returncode == 0, result.stderr
    return copy


def badges(html: str) -> list[tuple[str, str]]:
    pattern = r'class="handbook-badge handbook-badge-([a-z-]+)[^"]*" [^>]*title="([^"]*)"'
    return re.findall(pattern, html)


def test_a_new_result_rewrites_the_page_that_shows_it_without_reading_it_again(built):
    out, doctrees = built / "out", built / "out" / ".doctrees"
    page = out / SHOWN_ON.with_suffix(".html")
    assert all(outcome == "not-run" for outcome, _ in badges(page.read_text())), "no report yet"
    read = (doctrees / SHOWN_ON.with_suffix(".doctree")).stat().st_mtime_ns
    untouched = (out / UNRELATED.with_suffix(".html")).stat().st_mtime_ns
    report = verification.Report(built / "build" / "verification.json", root=built)
    report.add(verification.Entry(SNIPPET, "pg17", "passed", server="PostgreSQL 17.7, local"))
    report.write()

    result = build(built, out)

    assert result.returncode == 0, result.stderr
    assert any(
        outcome == "passed" and note.startswith("Ran on PostgreSQL 17.7")
        for outcome, note in badges(page.read_text())
    ), f"{page.name} was not re-written with the new result: {badges(page.read_text())}"
    assert (doctrees / SHOWN_ON.with_suffix(".doctree")).stat().st_mtime_ns == read, (
        f"{SHOWN_ON}.md was read again: a new test result must only re-write it"
    )
    assert (out / UNRELATED.with_suffix(".html")).stat().st_mtime_ns == untouched, (
        f"{UNRELATED}.html shows no result but was re-written"
    )


def test_a_dangling_link_fails_every_build_until_it_is_fixed(built, tmp_path):
    source = built / LABEL_PAGE.relative_to(ROOT)
    whole = source.read_text()
    source.write_text(whole.replace("(review-status)=\n", "", 1))
    kept = built / KEPT / cache_key(built)
    shutil.copytree(built / "out", kept)  # as a run before the edit would have kept it

    first = build_kept(built, tmp_path / "site")
    assert first.returncode != 0 and LINKED_FROM in first.stderr, first.stderr
    assert not kept.exists(), "a failed build was kept: the next one would not warn"
    assert not (tmp_path / "site").exists(), "a failed build was handed to the tests"
    for attempt in ("after the edit", "again, nothing changed since"):
        result = build(built, built / "out")  # incremental: the linking page was not edited
        assert result.returncode != 0, f"the build {attempt} passed with a dangling link"
        assert LINKED_FROM in result.stderr and "undefined label: 'review-status'" in (
            result.stderr
        ), result.stderr

    source.write_text(whole)
    fixed = build(built, built / "out")
    assert fixed.returncode == 0, fixed.stderr
    assert (
        'href="../reference/review-status.html#review-status"'
        in (built / "out" / "procedures" / "maintenance.html").read_text()
    )


def test_what_the_kept_build_is_keyed_on(tmp_path):
    for name in ("handbook/site.py", "docs/conf.py", "docs/index.md", "conf/redis/redis.conf"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    key = cache_key(tmp_path)
    (tmp_path / "docs" / "index.md").write_text("# A page Sphinx itself tracks\n")
    assert cache_key(tmp_path) == key, "a page's edit must not drop the kept build"
    for name in ("handbook/site.py", "docs/conf.py", "conf/redis/redis.conf"):
        path = tmp_path / name
        path.write_text(path.read_text() + "\n# changed\n")
        assert cache_key(tmp_path) != key, f"a change to {name} kept a build made without it"
        key = cache_key(tmp_path)
