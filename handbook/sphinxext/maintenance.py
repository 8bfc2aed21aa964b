"""Runbooks that stay reviewed: review dates, failed snippets, and the review status page.

Every runbook (``docs/runbooks/*.md`` but the index) starts with front matter::

    ---
    last-reviewed: 2026-12-02
    reviewed-by: platform
    ---

``reviewed-by`` is a team of the alert rules' ``team`` labels. The build warns (and
``tox -e docs`` fails, warnings being errors) when a runbook's review is older than
``handbook_review_max_age_days`` (the quarterly audit: 92 days), or when a snippet it
shows FAILED in the last test run (``build/verification.json``). ``handbook_today``
(``-D handbook_today=2027-04-01``) pins the date the age is measured on.

Each runbook gets a line under its title saying when it was last reviewed, by whom,
and when the next review is due; ``{review-status}`` lists every runbook with its
review, its snippets' last verification and the incidents that used it
(``docs/reference/incidents.yml``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from handbook import report as verification
from handbook.confcheck.names import Registry
from handbook.sphinxext.alerts import project_root, table
from handbook.yamlfile import ConfigError
from handbook.yamlfile import line as line_of
from handbook.yamlfile import load as load_yaml

logger = logging.getLogger(__name__)

MAX_AGE_DAYS = 92  # the quarterly review (procedures/maintenance.md)
INCIDENTS = Path("docs") / "reference" / "incidents.yml"
INCIDENT_KEYS = ("id", "date", "alert", "runbooks", "minutes_to_resolve")


class review_status(nodes.General, nodes.Element):
    """Placeholder for the review status table, filled once every page is read."""


def is_runbook(docname: str) -> bool:
    return docname.startswith("runbooks/") and docname != "runbooks/index"


def today(app: Sphinx) -> dt.date:
    pinned = app.config.handbook_today
    return dt.date.fromisoformat(pinned) if pinned else dt.datetime.now(dt.UTC).date()


def _warn(message: str, location: str) -> None:
    logger.warning(message, location=location, type="handbook", subtype="maintenance")


def review_of(env: BuildEnvironment, docname: str) -> tuple[dt.date | None, str, str]:
    """(last-reviewed date or None, team, problem) from a runbook's front matter."""
    meta = env.metadata.get(docname, {})
    raw, team = str(meta.get("last-reviewed", "")), str(meta.get("reviewed-by", ""))
    if not raw or not team:
        return (
            None,
            team,
            (
                "no review in the front matter: start the page with '---', "
                "'last-reviewed: YYYY-MM-DD', 'reviewed-by: <team>', '---'"
            ),
        )
    try:
        return dt.date.fromisoformat(raw), team, ""
    except ValueError:
        return None, team, f"last-reviewed: {raw!r} is not a date (YYYY-MM-DD)"


def load_incidents(root: Path) -> tuple[list[dict], list[str]]:
    """The incident log, and its problems as ``file:line: ...``."""
    path = root / INCIDENTS
    if not path.exists():
        return [], [f"{INCIDENTS}: missing: the review status and the metrics read it"]
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        return [], [str(exc)]
    entries = (data or {}).get("incidents") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return [], [f"{INCIDENTS}:1: a mapping with an 'incidents' list is expected"]
    problems = []
    for entry in entries:
        missing = [k for k in INCIDENT_KEYS if k not in (entry or {})]
        if missing:
            problems.append(f"{INCIDENTS}:{line_of(entry)}: incident lacks {', '.join(missing)}")
    return [e for e in entries if isinstance(e, dict)], problems


def check(app: Sphinx, env: BuildEnvironment) -> None:
    """Stale reviews, unknown teams and failed snippets on runbooks: warnings, errors in CI."""
    root = project_root(app)
    teams = Registry(conf=root / "conf").teams
    now = today(app)
    limit = app.config.handbook_review_max_age_days
    data = verification.load(root / "build" / "verification.json")
    failed: dict[str, list[str]] = {}
    runs: dict[str, str] = {}
    for entry in data.get("entries", {}).values():
        # a failure counts while the snippet is what failed (as the page notes say)
        if entry.get("outcome") == "failed" and verification.is_current(entry, root):
            failed.setdefault(entry["snippet"], []).append(entry.get("label", "?"))
            runs[entry["snippet"]] = verification.run_info(data, entry.get("run", ""))
    for docname in sorted(env.found_docs):
        if not is_runbook(docname):
            continue
        page = f"docs/{docname}.md:1"
        date, team, problem = review_of(env, docname)
        if problem:
            _warn(problem, page)
        elif team not in teams:
            _warn(
                f"reviewed-by: {team!r} is not a team of the alert rules "
                f"({', '.join(sorted(teams))}): name the team that owns the runbook",
                page,
            )
        if date is not None and (now - date).days > limit:
            _warn(
                f"last reviewed {date} by {team}, {(now - date).days} days ago: past the "
                f"{limit}-day review interval. Review it (procedures/maintenance.md), then "
                "set last-reviewed",
                page,
            )
        for snippet in sorted(env.handbook_snippets_shown.get(docname, ())):
            if snippet in failed:
                _warn(
                    f"shows {snippet}, which FAILED on {', '.join(sorted(failed[snippet]))} in "
                    f"{runs[snippet]}: fix it (tox -e tests -- {snippet}) before on-call relies "
                    "on this runbook",
                    page,
                )
    if not any(is_runbook(docname) for docname in env.found_docs):
        return  # a site without runbooks (a test's one-page site) needs no incident log
    _, problems = load_incidents(root)
    for problem in problems:
        _warn(problem, problem.split(": ", 1)[0])


def add_review_line(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Under a runbook's title: when it was last reviewed, by whom, and when it is due."""
    if not is_runbook(docname):
        return
    date, team, problem = review_of(app.env, docname)
    section = next(iter(doctree.findall(nodes.section)), None)
    if problem or section is None or not section.children:
        return
    due = date + dt.timedelta(days=app.config.handbook_review_max_age_days)
    line = nodes.paragraph(classes=["handbook-review"])
    line += nodes.emphasis(
        text=f"Last reviewed {date} by the {team} team; next review due by {due} "
        "(see the review status)."
    )
    section.insert(1, line)


class ReviewStatusDirective(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        self.env.handbook_review_status_pages = getattr(
            self.env, "handbook_review_status_pages", set()
        ) | {self.env.docname}
        root = project_root(self.env.app)
        self.env.note_dependency(str(root / INCIDENTS))
        node = review_status()
        self.set_source_info(node)
        return [node]


def _link(app: Sphinx, source: str, docname: str) -> nodes.reference:
    """A link from page ``source`` to ``docname``, titled like that page."""
    title = app.env.titles[docname].astext() if docname in app.env.titles else docname
    uri = app.builder.get_relative_uri(source, docname)
    return nodes.reference("", title, internal=True, refuri=uri)


def fill_status(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    nodes_found = list(doctree.findall(review_status))
    if not nodes_found:
        return
    env = app.env
    root = project_root(app)
    data = verification.load(root / "build" / "verification.json")
    by_snippet: dict[str, list[dict]] = {}
    for entry in data.get("entries", {}).values():
        by_snippet.setdefault(entry["snippet"], []).append(entry)
    incidents, _ = load_incidents(root)
    limit = app.config.handbook_review_max_age_days
    rows = []
    for page in sorted(d for d in env.found_docs if is_runbook(d)):
        date, team, _ = review_of(env, page)
        due = f"{date + dt.timedelta(days=limit)}" if date else "now"
        shown = sorted(env.handbook_snippets_shown.get(page, ()))
        outcomes = [e["outcome"] for s in shown for e in by_snippet.get(s, [])]
        count = f"{len(shown)} snippet{'' if len(shown) == 1 else 's'}"
        if not shown:
            verified = "shows no snippet"
        elif not outcomes:
            verified = f"{count}, no test run recorded"
        else:
            tally = {kind: outcomes.count(kind) for kind in dict.fromkeys(outcomes)}
            passed = tally.pop("passed", 0)
            parts = [f"{passed} run{'' if passed == 1 else 's'} passed"]
            if "failed" in tally:
                parts.append(f"{tally.pop('failed')} FAILED")
            parts += [f"{n} {kind}" for kind, n in tally.items()]
            verified = f"{count}: {', '.join(parts)} (run of {data.get('generated', '?')})"
        used = [str(i["id"]) for i in incidents if page in (i.get("runbooks") or [])]
        row = nodes.row()
        for content in (
            _link(app, docname, page),
            nodes.Text(team or "?"),
            nodes.Text(f"{date or 'never'} (due {due})"),
            nodes.Text(verified),
            nodes.Text(", ".join(used) or "none recorded"),
        ):
            row += nodes.entry("", nodes.paragraph("", "", content))
        rows.append(row)
    header = ["Runbook", "Team", "Last reviewed", "Last verification", "Incidents that used it"]
    for node in nodes_found:
        node.replace_self(table([24, 10, 22, 28, 16], header, rows))


def always_outdated(
    app: Sphinx, env: BuildEnvironment, added: set, changed: set, removed: set
) -> list[str]:
    """The status page depends on every runbook: rebuild it on every build."""
    return sorted(getattr(env, "handbook_review_status_pages", set()))


def setup(app: Sphinx) -> None:
    app.add_config_value("handbook_review_max_age_days", MAX_AGE_DAYS, "env", int)
    app.add_config_value("handbook_today", "", "env", str)
    app.add_node(review_status)
    app.add_directive("review-status", ReviewStatusDirective)
    app.connect("env-check-consistency", check)
    app.connect("doctree-resolved", add_review_line)
    app.connect("doctree-resolved", fill_status)
    app.connect("env-get-outdated", always_outdated)
