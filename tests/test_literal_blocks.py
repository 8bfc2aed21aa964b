"""Guarantee 1: a page may show only code that the tests run.

Each case builds a throwaway Sphinx project with the handbook extension and
asserts the exact message a writer sees.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MOVE_IT = "move it to snippets/ (or conf/) and include it with literalinclude"


def build(tmp_path: Path, page: str, allowlist: str | None = None) -> subprocess.CompletedProcess:
    docs = tmp_path / "docs"
    (tmp_path / "snippets").mkdir()
    if "ok.sql" in page:  # every snippet must be shown by a page, so only when one does
        (tmp_path / "snippets" / "ok.sql").write_text(
            "-- What the snippet shows\n-- [start:body]\nselect 1;\n-- [end:body]\n"
        )
    (tmp_path / "outside.sql").write_text("select 2;\n")
    docs.mkdir()
    (docs / "conf.py").write_text('extensions = ["myst_parser", "handbook.sphinxext"]\n')
    (docs / "index.md").write_text("# Page\n\n" + textwrap.dedent(page))
    if allowlist is not None:
        (docs / "untested-allowlist.toml").write_text(textwrap.dedent(allowlist))
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(docs), str(tmp_path / "_build")],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip


def failure(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, "the build should have failed:\n" + result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("fence", "language"),
    [("```sql", "sql"), ("```", "plain"), ("~~~bash", "bash"), ("```{code-block} yaml", "yaml")],
)
def test_inline_block_fails_naming_page_and_line(tmp_path, fence, language):
    result = build(tmp_path, f"Text.\n\n{fence}\nselect 1;\n{fence[:3]}\n")
    assert f"docs/index.md:5: WARNING: untested {language} block: {MOVE_IT}" in failure(result)


def test_code_block_python_directive_is_rejected_with_the_reason(tmp_path):
    result = build(tmp_path, "```{code-block} python\nprint(1)\n```\n")
    assert (
        "docs/index.md:3: WARNING: untested python block: a {code-block} python directive is "
        "not run by pytest-examples; write it as a ```python fence"
    ) in failure(result)


def test_python_fence_that_pytest_examples_runs_is_accepted(tmp_path):
    result = build(tmp_path, "```python\nprint(1)\n```\n")
    assert result.returncode == 0, result.stderr


def test_include_from_snippets_is_accepted(tmp_path):
    page = """\
        ```{literalinclude} ../snippets/ok.sql
        :language: sql
        :start-after: "-- [start:body]"
        :end-before: "-- [end:body]"
        ```
        """
    result = build(tmp_path, page)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "_build" / "index.html").read_text()
    assert "select" in html


def test_include_outside_snippets_and_conf_fails(tmp_path):
    result = build(tmp_path, "```{literalinclude} ../outside.sql\n```\n")
    assert (
        "docs/index.md:3: WARNING: literalinclude of outside.sql: includes must come from "
        "snippets/ or conf/"
    ) in failure(result)


def test_include_of_a_missing_file_fails_naming_page_and_line(tmp_path):
    result = build(tmp_path, "```{literalinclude} ../snippets/missing.sql\n```\n")
    out = failure(result)
    assert "index.md:3: WARNING: Include file" in out
    assert "snippets/missing.sql' not found" in out


def test_include_of_a_missing_marker_fails_naming_page_and_line(tmp_path):
    page = '```{literalinclude} ../snippets/ok.sql\n:start-after: "-- [start:nope]"\n```\n'
    out = failure(build(tmp_path, page))
    assert "index.md:3: WARNING: start-after pattern not found: -- [start:nope]" in out


def test_allowlisted_block_is_accepted_and_needs_a_reason(tmp_path):
    page = "```text\nERPGo v2.4.1 (build 7f3c)\n```\n"
    entry = """\
        [[block]]
        page = "index.md"
        starts_with = "ERPGo v2.4.1 (build 7f3c)"
        reason = "sample banner text; nothing to run"
        """
    assert build(tmp_path, page, entry).returncode == 0


def test_allowlist_entry_without_reason_fails(tmp_path):
    page = "```text\nbanner\n```\n"
    entry = '[[block]]\npage = "index.md"\nstarts_with = "banner"\n'
    out = failure(build(tmp_path, page, entry))
    assert "docs/untested-allowlist.toml:1: allowlist entry lacks reason" in out


def test_stale_allowlist_entry_fails(tmp_path):
    entry = '[[block]]\npage = "index.md"\nstarts_with = "gone"\nreason = "was a banner"\n'
    out = failure(build(tmp_path, "No blocks.\n", entry))
    assert "docs/untested-allowlist.toml:1: allowlist entry for index.md ('gone') matches" in out
