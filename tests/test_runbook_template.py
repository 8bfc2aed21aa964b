"""Every runbook page has the required sections in order (handbook/guide/runbook_template.py)."""

from __future__ import annotations

import pytest

from handbook.guide import runbook_template
from handbook.paths import ROOT

GOOD = """(x)=
# Title

## Meaning and impact
## Investigation
### A step
## Resolution
## Prevention
## Escalation
## Verified by
"""


@pytest.mark.covers("next:templates")
@pytest.mark.parametrize("page", runbook_template.runbook_pages(), ids=lambda p: p.stem)
def test_every_runbook_has_the_required_sections_in_order(page):
    problems = runbook_template.check([page])
    assert not problems, "\n".join(problems)


@pytest.mark.covers("next:templates")
def test_the_template_passes_its_own_check():
    assert runbook_template.TEMPLATE.is_file(), "conf/templates/runbook.md is missing"
    assert runbook_template.check([runbook_template.TEMPLATE]) == []


def test_runbooks_are_found():
    pages = runbook_template.runbook_pages()
    assert len(pages) >= 10 and all(p.name != "index.md" for p in pages)


@pytest.mark.covers("next:templates")
def test_a_missing_section_is_named_with_file_and_line():
    text = GOOD.replace("## Prevention\n", "")
    (problem,) = runbook_template.check_text(text, "docs/runbooks/x.md")
    assert problem == (
        "docs/runbooks/x.md:7: missing section '## Prevention': "
        "add it after '## Resolution' (line 7)"
    )


def test_a_missing_first_section():
    text = GOOD.replace("## Meaning and impact\n", "")
    (problem,) = runbook_template.check_text(text, "x.md")
    assert problem.startswith("x.md:1: missing section '## Meaning and impact': add it before")


@pytest.mark.covers("next:templates")
def test_a_misordered_section_is_named():
    text = GOOD.replace(
        "## Investigation\n### A step\n## Resolution\n", "## Resolution\n## Investigation\n"
    )
    (problem,) = runbook_template.check_text(text, "x.md")
    assert problem.startswith("x.md:5: section '## Resolution' comes before '## Investigation'")


def test_headings_in_code_fences_do_not_count():
    text = GOOD.replace("## Escalation\n", "```text\n## Escalation\n```\n")
    (problem,) = runbook_template.check_text(text, "x.md")
    assert "missing section '## Escalation'" in problem


def test_command_line(capsys, tmp_path):
    assert runbook_template.main([]) == 0
    assert "every required section present, in order" in capsys.readouterr().out
    page = tmp_path / "bad.md"
    page.write_text(GOOD.replace("## Verified by\n", ""))
    assert runbook_template.main([str(page)]) == 1
    assert "missing section '## Verified by'" in capsys.readouterr().err
    assert runbook_template.main([str(ROOT / "conf" / "templates" / "runbook.md")]) == 0


def test_the_guide_quotes_the_real_message():
    (problem,) = runbook_template.check_text(
        GOOD.replace("## Prevention\n", ""), "docs/runbooks/new.md"
    )
    page = ROOT / "docs" / "onboarding" / "adding-a-runbook.md"
    text = " ".join(page.read_text(encoding="utf-8").split())
    assert f"`{problem}`" in text, (
        f"docs/onboarding/adding-a-runbook.md: quote the check's real message: `{problem}`"
    )


OPENING = """---
last-reviewed: 2026-12-02
reviewed-by: platform
---

(x)=
# Title

```{alert} X
```

```{alert-context} X
- **Users:** ...
```

```{access}
:monitoring: prometheus
```

## Meaning and impact
"""


def test_a_complete_opening_passes():
    assert runbook_template.check_opening(OPENING, "x.md") == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda t: t.split("---\n", 2)[2],
            "x.md:1: no review front matter: start the page with '---', "
            "'last-reviewed: YYYY-MM-DD', 'reviewed-by: <team>', '---'",
        ),
        (
            lambda t: t.replace("reviewed-by: platform\n", ""),
            "x.md:1: no review front matter",
        ),
        (
            lambda t: t.replace("2026-12-02", "2 December"),
            "x.md:2: last-reviewed: '2' is not YYYY-MM-DD",
        ),
        (
            lambda t: t.replace("```{alert-context} X", "```{alert-context} Y"),
            "x.md:9: alert X has no context: add ```{alert-context} X``` below it",
        ),
        (
            lambda t: t.replace(":monitoring: prometheus\n```\n", "```\n").replace(
                "```{access}\n```\n", ""
            ),
            "x.md:9: no ```{access}```: say once, before the first section",
        ),
        (
            lambda t: t.replace("## Meaning", "```{access}\n```\n\n## Meaning"),
            "x.md:20: a second {access}: state the access once per page",
        ),
    ],
    ids=["no-front-matter", "no-team", "bad-date", "no-context", "no-access", "two-access"],
)
def test_an_incomplete_opening_is_named_with_file_and_line(change, problem):
    (found,) = runbook_template.check_opening(change(OPENING), "x.md")
    assert found.startswith(problem), found


def test_the_real_pages_are_checked_for_their_opening(tmp_path):
    """check() applies the opening rules to real pages, not only the sections."""
    page = tmp_path / "new.md"
    page.write_text(GOOD)
    problems = runbook_template.check([page])
    assert any("no review front matter" in p for p in problems), problems
    assert any("no ```{access}```" in p for p in problems), problems
