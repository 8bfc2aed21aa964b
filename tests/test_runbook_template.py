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
    assert len(pages) >= 6 and all(p.name != "index.md" for p in pages)


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
