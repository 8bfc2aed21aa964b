"""The run ends by naming what a missing tool left unverified (handbook/unverified.py).

Each test hides a tool through the environment, runs real test modules of this suite
in a child pytest, and reads the closing lines: the summary must name the missing
tool and the package that adds it, and under ``CI=true`` the same run must fail.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import childrun
import pytest

from handbook.paths import ROOT
from handbook.unverified import TEX_PACKAGES

SUMMARY = "not verified here: "


def run_suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest on this project's own tests (root conftest and all), in a child process."""
    return childrun.run_pytester(
        pytester, *args, f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml")
    )


def summary_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith(SUMMARY)]
    assert len(lines) == 1, (
        "handbook/unverified.py: the run should end with one 'not verified here:' line; "
        "output:\n" + "\n".join(result.outlines[-30:])
    )
    return lines[0]


@pytest.fixture
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("CI", raising=False)
    return monkeypatch


def test_summary_names_chromium_when_it_is_hidden(pytester, outside_ci, tmp_path):
    outside_ci.setenv("HANDBOOK_CHROMIUM", str(tmp_path / "no-chromium-here"))
    result = run_suite(pytester, str(ROOT / "tests" / "test_browser.py"))
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes.get("skipped", 0) > 0, (
        "tests/test_browser.py: without Chromium every test must be skipped, never an error "
        "(the chromium fixture must run before the site is built):\n"
        + "\n".join(result.outlines[-30:])
    )
    assert set(outcomes) == {"skipped"}, outcomes
    line = summary_line(result)
    assert "the browser tests (no Chromium: apt-get install chromium)" in line, line
    detail = [x for x in result.outlines if x.startswith("  the browser tests: ")]
    assert detail and "no-chromium-here" in detail[0], (
        "the detail line should give the skip's own reason (the path looked at)",
        detail,
    )


def test_summary_names_tex_when_path_hides_it(pytester, outside_ci):
    outside_ci.setenv("PATH", str(Path(sys.executable).parent))  # the venv, nothing else
    result = run_suite(pytester, str(ROOT / "tests" / "test_pdf.py"))
    assert result.ret == 0, "\n".join(result.outlines[-30:])
    assert f"the PDF (no TeX: apt-get install {TEX_PACKAGES})" in summary_line(result)


def test_a_shell_snippet_whose_program_is_missing_is_skipped_and_summarised(
    pytester, outside_ci, tmp_path
):
    """A snippet exits 127 for the missing openssl: a skip saying so, not a failure."""
    snippet = "snippets/shell/security/redis_password_1_add_new.sh"
    assert "openssl" in (ROOT / snippet).read_text(encoding="utf-8"), f"{snippet} runs openssl"
    # A copy of the project (the snippet, its sidecars, conf/), so that this run's report
    # lands in the copy's build/.
    shutil.copytree(ROOT / "conf", pytester.path / "conf")
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, pytester.path / name)
    (pytester.path / snippet).parent.mkdir(parents=True)
    for file in (ROOT / snippet).parent.glob((ROOT / snippet).name + "*"):
        shutil.copy(file, pytester.path / snippet.rsplit("/", 1)[0] / file.name)
    outside_ci.setenv("PATH", childrun.path_without("openssl", tmp_path / "bin"))
    result = childrun.run_pytester(pytester, snippet)
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and set(outcomes) == {"skipped"}, "\n".join(result.outlines[-30:])
    line = summary_line(result)
    assert "(no openssl: apt-get install openssl)" in line, line
    assert any(f"{snippet}: openssl is not installed" in x for x in result.outlines)


def test_under_ci_a_hidden_tool_fails_and_is_not_summarised(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("HANDBOOK_CHROMIUM", str(tmp_path / "no-chromium-here"))
    result = run_suite(pytester, str(ROOT / "tests" / "test_browser.py"), "-x")
    assert result.ret != 0, "under CI=true a missing Chromium must fail the run"
    result.stdout.fnmatch_lines(["*CI=true, so a missing tool is a failure: Chromium not found*"])
    assert not any(line.startswith(SUMMARY) for line in result.outlines)


def test_only_missing_tools_are_listed_and_unknown_reasons_keep_their_words(pytester, outside_ci):
    pytester.makepyfile(
        test_mixed="""
        import pytest
        from handbook.pytest_plugin import unavailable

        def test_gate():
            pytest.skip("not applicable on pg15: needs pg>=16")

        def test_tool():
            unavailable("promtool not found (promtool on PATH, or $HANDBOOK_PROMTOOL)")

        @pytest.fixture
        def odd():
            unavailable("the frobnicator is not installed: apt-get install frobnicator")

        def test_odd(odd):
            pass
        """
    )
    result = childrun.run_pytester(pytester, "-p", "handbook.unverified")
    result.assert_outcomes(skipped=3)
    line = summary_line(result)
    assert "the alert rules' and PromQL snippets' unit tests (no promtool:" in line, line
    assert (
        "test_mixed.py (the frobnicator is not installed: apt-get install frobnicator)" in line
    ), line
    assert "not applicable" not in line, f"a gate is not a missing tool: {line}"


def test_a_run_missing_nothing_prints_no_summary(pytester, outside_ci):
    pytester.makepyfile(test_fine="def test_fine():\n    assert True\n")
    result = childrun.run_pytester(pytester, "-p", "handbook.unverified")
    result.assert_outcomes(passed=1)
    assert not any("not verified here" in line for line in result.outlines)
