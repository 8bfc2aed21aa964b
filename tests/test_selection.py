"""``pytest docs/runbooks/high-latency.md`` runs what that page depends on, and only that.

``handbook/selection.py`` reads it from the repository (the page's ``{snippet}``
includes and ``{alert}``, the snippets' headers, what each test function names); the
plugin turns a page, snippet or ``conf/`` argument into that selection. These tests ask
the real selection about the real pages, then let a real pytest collect with it.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import childrun
import pytest

from handbook.paths import ROOT
from handbook.pytest_plugin import unavailable
from handbook.selection import SelectionError, select

# About the harness, not a page: verifying a page leaves it out.
pytestmark = pytest.mark.whole_run("collects pages with a real pytest to prove the selection")


def spelled(*parts: str) -> str:
    """A path spelled in parts, so that the selection does not take this file for a test
    of the page, snippet or conf file it names (and run it with them)."""
    return "/".join(parts)


PAGE = spelled("docs", "runbooks", "high-latency.md")
DRILL = "tests/drills/test_high_latency.py"
OTHER_DRILLS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "tests" / "drills").glob("test_*.py")
    if p.name != "test_high_latency.py"
)


@pytest.fixture(scope="module")
def high_latency():
    return select([Path(PAGE)], ROOT)


def collect(*args: str) -> list[str]:
    """The node ids a real ``pytest ARGS`` would run."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *childrun.LEAN, "--collect-only", "-q", *args],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"pytest {' '.join(args)} --collect-only failed (handbook/pytest_plugin.py _select):\n"
        f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return [line for line in result.stdout.splitlines() if "::" in line]


@pytest.fixture(scope="module")
def collections() -> dict[str, list[str]]:
    """``pytest PAGE`` and ``pytest --page PAGE``, collected side by side (each is a few
    seconds of one core: reading the repository, importing the test modules)."""
    with ThreadPoolExecutor(3) as executor:
        path = executor.submit(collect, PAGE)
        option = executor.submit(collect, "--page", PAGE)
        every = executor.submit(collect, "--every-version", PAGE)
        return {"path": path.result(), "option": option.result(), "every": every.result()}


@pytest.fixture(scope="module")
def collected(collections) -> list[str]:
    return collections["path"]


def test_a_page_selects_its_snippets_on_every_server(high_latency, collected):
    page = (ROOT / PAGE).read_text(encoding="utf-8")
    shown = {
        f"snippets/{line.split()[1]}"
        for line in page.splitlines()
        if line.strip().startswith("```{snippet}")
    }
    assert shown, f"{PAGE}: no {{snippet}} include found: the test reads the page wrongly"
    missing = sorted(shown - high_latency.snippets)
    assert not missing, f"handbook/selection.py: {PAGE} shows {missing}, which were not selected"
    extra = sorted(high_latency.snippets - shown)
    assert not extra, f"handbook/selection.py: selected {extra}, which {PAGE} does not show"
    for name in shown:  # every item of the file (one per server label) is collected
        assert any(c.startswith(f"{name}::") for c in collected), f"{name}: no item collected"


def test_a_page_selects_its_drill_and_no_other_runbooks_drill(high_latency, collected):
    assert DRILL in high_latency.functions, (
        f"handbook/selection.py: {PAGE}'s drill {DRILL} (it runs the page's snippets) was not "
        f"selected; selected: {sorted(high_latency.functions)}"
    )
    drill_items = [c for c in collected if c.startswith(f"{DRILL}::")]
    assert drill_items, f"pytest {PAGE} collects none of {DRILL}'s tests:\n{collected}"
    others = [c for c in collected if c.split("::")[0] in OTHER_DRILLS]
    assert not others, f"pytest {PAGE} would run other runbooks' drills: {others}"


def test_a_page_selects_its_alerts_unit_tests_and_only_that_alerts_items(collected):
    alert = "HighResponse" + "Time"  # the page's {alert} header (in parts: see spelled())
    assert "tests/test_alert_rules.py::test_promtool_unit_tests_pass" in collected, (
        "handbook/selection.py: the promtool unit tests of the page's alert "
        "(conf/prometheus/tests/) are not selected"
    )
    mutations = [c for c in collected if "test_the_unit_tests_fail_when_the_rule_drifts[" in c]
    assert mutations and all(f"[{alert}-" in c for c in mutations), (
        f"handbook/selection.py: the rule mutation tests selected are {mutations}: "
        f"expected {alert}'s only"
    )
    for other in ("HighErrorRate", "LowCacheHitRate", "PostgreSQLDown"):
        named = [c for c in collected if other in c]
        assert not named, f"pytest {PAGE} would run another alert's items: {named}"
    templates = [c for c in collected if "test_every_runbook_has_the_required_sections" in c]
    assert templates == [
        "tests/test_runbook_template.py::"
        "test_every_runbook_has_the_required_sections_in_order[high-latency]"
    ], f"the page's own template check only, not {templates}"


def test_a_pages_tests_run_on_one_server_and_its_snippets_on_every_one(collections):
    """A page's run takes each server-parametrized test once (the first server of each
    kind), its snippets on every server; --every-version takes the tests on all of them."""
    path, every = collections["path"], collections["every"]

    def by_test(ids: list[str]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for node in ids:
            if node.startswith(f"{DRILL}::"):
                grouped.setdefault(node.split("[")[0], []).append(node)
        return grouped

    once, all_servers = by_test(path), by_test(every)
    assert once, f"pytest {PAGE} collects none of {DRILL}'s tests:\n{path}"
    for test, items in once.items():
        assert len(items) == 1, (
            f"pytest {PAGE} runs {test} on {len(items)} servers, expected the first one "
            f"only (handbook/pytest_plugin.py _first_server): {items}"
        )
        assert items[0] == all_servers[test][0], (test, items, all_servers[test])
    snippets = [c for c in path if c.startswith("snippets/")]
    assert snippets == [c for c in every if c.startswith("snippets/")], (
        "a page's snippets must run on every server with or without --every-version"
    )
    assert set(path) <= set(every)


def test_a_drill_of_every_local_version_runs_on_one_in_a_pages_run():
    """The disaster-recovery drills start servers of each local version (``pg_label``,
    not ``pg_server``): a page's run takes the first, as it does for the shared ones."""
    page = spelled("docs", "runbooks", "database-connectivity.md")
    test = "tests/drills/test_disaster_recovery.py::test_monitoring_follows_the_promoted"
    with ThreadPoolExecutor(2) as executor:
        path, every = executor.map(
            lambda args: collect(*args), [(page,), ("--every-version", page)]
        )
    once, all_versions = (
        [i for i in path if i.startswith(test)],
        [i for i in every if i.startswith(test)],
    )
    if len(all_versions) < 2:
        unavailable(f"one local PostgreSQL version ({all_versions}): nothing to take the first of")
    assert once == all_versions[:1], (
        f"pytest {page} runs {once}, expected the first local version only "
        f"(handbook/pytest_plugin.py SERVER_PARAMS): every version is {all_versions}"
    )


def test_the_page_option_selects_what_the_path_argument_does(collections):
    """``--page`` alone runs the selection, not the whole suite beside it."""
    assert collections["option"] == collections["path"]


def test_a_snippet_selects_its_items_and_the_tests_that_run_it():
    name = spelled("snippets", "sql", "locks", "blocking_locks.sql")
    chosen = select([Path(name)], ROOT)
    assert chosen.snippets == {name}
    assert DRILL in chosen.functions, f"{DRILL} runs blocking_locks.sql: {chosen.functions}"
    assert not set(chosen.functions) & set(OTHER_DRILLS), chosen.functions


def test_a_conf_file_selects_the_tests_that_use_it():
    chosen = select([Path(spelled("conf", "prometheus", "tests", "alert_rules_test.yml"))], ROOT)
    assert "test_promtool_unit_tests_pass" in chosen.functions.get(
        "tests/test_alert_rules.py", set()
    ), f"the promtool unit tests use conf/prometheus/tests/: selected {chosen.functions}"
    assert not chosen.snippets


def test_a_path_that_is_no_page_snippet_or_conf_file_is_refused():
    with pytest.raises(SelectionError, match=r"README\.md: not a page .* give one of those"):
        select([Path("README.md")], ROOT)


def test_every_page_selects_only_what_pytest_can_collect():
    """A page may show a migration (snippets/migrations/): it has no items of its own, so
    the tests that use it come instead; every path the selection hands pytest exists and
    is a test module or a snippet file that pytest collects."""
    pages = [p for p in sorted((ROOT / "docs").rglob("*.md")) if "_build" not in p.parts]
    chosen = select(pages, ROOT)  # all pages at once: the repository is read once
    bad = [
        f"{path} ({chosen.why.get(path, 'selected')})"
        for path in chosen.paths
        if not (ROOT / path).is_file()
        or not (
            path.startswith("tests/")
            or (path.startswith("snippets/") and "migrations" not in Path(path).parts)
        )
    ]
    assert not bad, "handbook/selection.py hands pytest what it cannot collect:\n" + "\n".join(bad)


def test_a_worker_gets_the_controllers_selection_unchanged(high_latency):
    """xdist workers take the controller's selection (handbook/pytest_plugin.py
    pytest_configure_node) instead of reading the repository again: the round trip
    through plain lists and dicts must keep all of it."""
    from handbook.selection import Selection

    plain = high_latency.to_plain()
    assert Selection.from_plain(plain) == high_latency
    assert all(isinstance(v, list | dict) for k, v in plain.items() if k != "targets")


def test_a_kept_answer_is_dropped_once_a_test_file_changes(tmp_path):
    """The selection keeps what each test function names (build/selection-cache.json);
    a test that starts naming the page must be selected on the next run."""
    page = tmp_path / "docs" / "runbooks" / "x.md"
    page.parent.mkdir(parents=True)
    page.write_text("# X\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(f'def test_a():\n    assert "{spelled("runbooks", "x")}"\n')
    assert select([page], tmp_path).paths == ["tests/test_a.py"]
    assert (tmp_path / "build" / "selection-cache.json").is_file(), "nothing was kept"

    (tests / "test_b.py").write_text(f'def test_b():\n    assert "{spelled("runbooks", "x")}"\n')

    assert select([page], tmp_path).paths == ["tests/test_a.py", "tests/test_b.py"]
