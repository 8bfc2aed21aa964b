"""A runbook page's investigation steps, read from the page itself, and the alert→runbook map."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from handbook.paths import ROOT, SNIPPETS, rel
from handbook.snippet import Snippet, parse
from handbook.yamlfile import load

RUNBOOKS = ROOT / "docs" / "runbooks"
RULES = ROOT / "conf" / "prometheus" / "alert_rules.yml"
INVESTIGATION = "## Investigation"
SNIPPET = re.compile(r"^\s*```\{snippet\}\s+(?P<name>\S+)")
ITEM = re.compile(r"^(?P<number>\d+)\.\s+\*\*(?P<title>[^*]+)\*\*\s*(?P<rest>.*)$")
BOLD = re.compile(r"^\s*\*\*(?P<title>[^*]+)\*\*\s*(?P<rest>.*)$")
HEADING = re.compile(r"^#\s+(?P<title>.+)$", re.M)
NOT_STEPS = ("index", "watchdog")  # the index and the alert that must always fire


class UnknownRunbook(LookupError):
    """Neither a runbook page nor an alert with a runbook: the message lists the known ones."""


@dataclass
class Step:
    number: str  # "3", or "3b" for a second snippet under the same item
    title: str
    guidance: str  # the page's "what to look for"
    snippet: Snippet
    line: int  # the line of the page that includes the snippet

    @property
    def where(self) -> str:
        return f"{rel(self.snippet.path)}"


@dataclass
class Runbook:
    name: str  # the page's stem and anchor: "connection-pool-exhaustion"
    title: str
    path: Path
    steps: list[Step] = field(default_factory=list)

    @property
    def page(self) -> str:
        return rel(self.path)

    def url(self, base: str) -> str:
        return f"{base}runbooks/{self.name}.html#{self.name}"


def _text(lines: list[str]) -> str:
    return " ".join(" ".join(line.split()) for line in lines if line.strip()).strip()


def load_runbook(path: Path) -> Runbook:
    """The runbook at ``path`` with its investigation steps in the page's order."""
    text = path.read_text(encoding="utf-8")
    heading = HEADING.search(text)
    book = Runbook(path.stem, heading["title"].strip() if heading else path.stem, path)
    lines = text.splitlines()
    inside = False
    title, number, guidance, count = "", "", [], 0
    for index, line in enumerate(lines, start=1):
        if line.startswith("## "):
            inside = line.strip() == INVESTIGATION
            continue
        if not inside:
            continue
        item = ITEM.match(line)
        bold = BOLD.match(line)
        if item:
            title, number, guidance, count = item["title"], item["number"], [item["rest"]], 0
        elif bold and number:
            title, guidance, count = bold["title"], [bold["rest"]], count
        elif (found := SNIPPET.match(line)) and number:
            snippet = parse(SNIPPETS / found["name"])
            suffix = "" if count == 0 else "abcdefgh"[count]
            book.steps.append(Step(number + suffix, title.strip(), _text(guidance), snippet, index))
            count += 1
            guidance = []
        elif number and not line.strip().startswith("```"):
            guidance.append(line)
    return book


def runbooks() -> dict[str, Runbook]:
    """Every runbook page with investigation steps, by name."""
    found = {}
    for path in sorted(RUNBOOKS.glob("*.md")):
        if path.stem in NOT_STEPS:
            continue
        book = load_runbook(path)
        if book.steps:
            found[book.name] = book
    return found


def alerts() -> dict[str, str]:
    """Alert name → runbook name, from each rule's ``runbook_url`` anchor."""
    mapping = {}
    for group in load(RULES).get("groups", []):
        for rule in group.get("rules", []):
            url = (rule.get("annotations") or {}).get("runbook_url", "")
            page = re.search(r"runbooks/([\w-]+)\.html", url)
            if "alert" in rule and page:
                mapping[rule["alert"]] = page[1]
    return mapping


def find(name: str) -> Runbook:
    """The runbook named ``name`` (a page name, or an alert whose runbook it is)."""
    books = runbooks()
    wanted = alerts().get(name, name)
    if wanted in books:
        return books[wanted]
    raise UnknownRunbook(
        f"unknown runbook or alert {name!r}: runbooks are {', '.join(books)}; alerts are "
        f"{', '.join(sorted(alerts()))} (their runbook_url in {rel(RULES)}); "
        "list them with: handbook diagnose --list"
    )
