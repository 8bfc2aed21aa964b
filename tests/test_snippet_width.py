"""Every line a page shows from ``snippets/`` fits the desktop column without scrolling.

The limit and its reason live here, once: :data:`LIMIT`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from handbook import snippet as snippets
from handbook.paths import ROOT, SNIPPETS, rel

# The widest line a snippet may show. At 1440x900, furo's content column leaves a code
# block inside a numbered runbook step 717 px, and its monospace font takes 7.83 px a
# character: 91 characters. 88 leaves the margin a nested block (the runbook's "first
# five minutes" box) needs. On a phone nothing this wide fits: there the stylesheet
# (docs/_static/handbook.css) wraps lines instead of hiding them. Measured by
# tests/test_browser.py::test_no_code_block_or_table_scrolls_sideways_on_a_desktop.
LIMIT = 88


def shown_files(root: Path = ROOT) -> list[Path]:
    return [p for p in sorted((root / "snippets").rglob("*")) if p.suffix in snippets.KINDS]


def too_wide(path: Path, root: Path = ROOT, limit: int = LIMIT) -> list[str]:
    """``file:line: N characters`` for each body line over ``limit`` (the header is not shown)."""
    snippet = snippets.parse(path, root)
    found = []
    for number, line in enumerate(snippet.body().splitlines(), start=snippet.body_start):
        if len(line) > limit:
            found.append(
                f"{rel(path, root)}:{number}: {len(line)} characters, over the limit of {limit} "
                "(tests/test_snippet_width.py): break the line (a comment into two, a command "
                "with '\\', SQL at a clause) and run the snippet's tests again"
            )
    return found


@pytest.mark.parametrize("path", shown_files(), ids=lambda p: p.relative_to(SNIPPETS).as_posix())
def test_snippet_lines_fit_the_desktop_column(path):
    problems = too_wide(path)
    assert not problems, "\n".join(problems)


def test_a_long_line_is_reported_with_its_file_and_line(tmp_path):
    page = tmp_path / "snippets" / "sql" / "wide.sql"
    page.parent.mkdir(parents=True)
    page.write_text(
        "-- A query too wide for the column\n-- page: x.md\nSELECT 1;\nSELECT '"
        + "x" * LIMIT
        + "';\n"
    )
    assert too_wide(page, tmp_path) == [
        f"snippets/sql/wide.sql:4: {LIMIT + 10} characters, over the limit of {LIMIT} "
        "(tests/test_snippet_width.py): break the line (a comment into two, a command with "
        "'\\', SQL at a clause) and run the snippet's tests again"
    ]
