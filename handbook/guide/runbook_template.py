"""Every runbook page has the required sections, in order.

A runbook under ``docs/runbooks/`` (every page but ``index.md``) has these level-2
headings in this order; other level-2 headings may sit between them, and each section
may hold level-3 headings of its own. ``conf/templates/runbook.md`` is the page to copy.

Before its first section a runbook also has (:func:`check_opening`): front matter
with ``last-reviewed: YYYY-MM-DD`` and ``reviewed-by: <team>``, an
``{alert-context} Name`` for each ``{alert} Name`` it serves, and one ``{access}``.
A page may serve several alerts (one ``{alert}`` and ``{alert-context}`` pair each).

    python -m handbook.guide.runbook_template            # checks docs/runbooks/
    python -m handbook.guide.runbook_template PAGE.md ...
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from handbook.markdown import lines_outside_fences
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


def runbook_pages(docs: Path = DOCS) -> list[Path]:
    return sorted(p for p in (docs / "runbooks").glob("*.md") if p.name != "index.md")


def headings(text: str) -> list[tuple[int, str]]:
    """(line, title) of each level-2 heading outside fenced blocks."""
    return [
        (number, match["title"])
        for number, line in lines_outside_fences(text)
        if (match := HEADING.match(line))
    ]


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


FRONT_MATTER = re.compile(r"\A---\n(?P<body>.*?\n)---\n", re.DOTALL)
REVIEWED = re.compile(r"^last-reviewed:\s*(?P<date>\S+)", re.MULTILINE)
REVIEWER = re.compile(r"^reviewed-by:\s*(?P<team>[a-z][a-z0-9-]*)", re.MULTILINE)
DIRECTIVE = re.compile(r"^```+\{(?P<name>alert|alert-context|access)\}\s*(?P<arg>\S*)")


def check_opening(text: str, where: str) -> list[str]:
    """The review front matter, each alert's context and the one access statement."""
    problems = []
    front = FRONT_MATTER.match(text)
    date = REVIEWED.search(front["body"]) if front else None
    if not front or not date or not REVIEWER.search(front["body"]):
        problems.append(
            f"{where}:1: no review front matter: start the page with '---', "
            "'last-reviewed: YYYY-MM-DD', 'reviewed-by: <team>', '---'"
        )
    elif not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date["date"]):
        line = text[: front.start("body") + date.start()].count("\n") + 1
        problems.append(f"{where}:{line}: last-reviewed: {date['date']!r} is not YYYY-MM-DD")
    alerts, contexts, access = [], set(), []
    for number, line in enumerate(text.splitlines(), start=1):
        match = DIRECTIVE.match(line)
        if match and match["name"] == "alert":
            alerts.append((number, match["arg"]))
        elif match and match["name"] == "alert-context":
            contexts.add(match["arg"])
        elif match:
            access.append(number)
    for number, alert in alerts:
        if alert not in contexts:
            problems.append(
                f"{where}:{number}: alert {alert} has no context: add "
                f"```{{alert-context}} {alert}``` below it (users, noise, what to check first)"
            )
    if not access:
        line = alerts[-1][0] if alerts else 1
        problems.append(
            f"{where}:{line}: no ```{{access}}```: say once, before the first section, which "
            "credentials the page's commands need"
        )
    for number in access[1:]:
        problems.append(f"{where}:{number}: a second {{access}}: state the access once per page")
    return problems


def check(paths: list[Path] | None = None) -> list[str]:
    problems = []
    for path in runbook_pages() if paths is None else paths:
        text = path.read_text(encoding="utf-8")
        problems += check_opening(text, rel(path)) + check_text(text, rel(path))
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
