"""Every runbook page has the required sections, in order.

A runbook under ``docs/runbooks/`` (every page but ``index.md``) has these level-2
headings in this order; other level-2 headings may sit between them, and each section
may hold level-3 headings of its own. ``conf/templates/runbook.md`` is the page to copy.

    python -m handbook.guide.runbook_template            # checks docs/runbooks/
    python -m handbook.guide.runbook_template PAGE.md ...
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from handbook.paths import DOCS, ROOT, rel

SECTIONS = (
    "Meaning and impact",
    "Investigation",
    "Resolution",
    "Prevention",
    "Escalation",
    "Verified by",
)
TEMPLATE = ROOT / "conf" / "templates" / "runbook.md"
HEADING = re.compile(r"^##\s+(?P<title>.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})")


def runbook_pages(docs: Path = DOCS) -> list[Path]:
    return sorted(p for p in (docs / "runbooks").glob("*.md") if p.name != "index.md")


def headings(text: str) -> list[tuple[int, str]]:
    """(line, title) of each level-2 heading outside fenced blocks."""
    found, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        opener = FENCE.match(line)
        if opener:
            marker = opener.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is None and (match := HEADING.match(line)):
            found.append((number, match["title"]))
    return found


def check_text(text: str, where: str) -> list[str]:
    """Problems as ``file:line: what is wrong and what to do``; empty when the page is right."""
    found = headings(text)
    position = {title: number for number, title in reversed(found)}  # first occurrence
    problems = []
    previous: tuple[str, int] | None = None
    for section in SECTIONS:
        if section not in position:
            if previous is None:
                after, line = "before any other section", 1
            else:
                after, line = f"after '## {previous[0]}' (line {previous[1]})", previous[1]
            problems.append(f"{where}:{line}: missing section '## {section}': add it {after}")
            continue
        line = position[section]
        if previous is not None and line < previous[1]:
            problems.append(
                f"{where}:{line}: section '## {section}' comes before '## {previous[0]}' "
                f"(line {previous[1]}): the order is {', '.join(SECTIONS)}"
            )
        previous = (section, line)
    return problems


def check(paths: list[Path] | None = None) -> list[str]:
    problems = []
    for path in runbook_pages() if paths is None else paths:
        problems += check_text(path.read_text(encoding="utf-8"), rel(path))
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a).resolve() for a in args] or None
    problems = check(paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    checked = len(paths) if paths else len(runbook_pages())
    print(f"{checked} runbook page(s): every required section present, in order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
