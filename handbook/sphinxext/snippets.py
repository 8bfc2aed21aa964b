"""The ``{snippet}`` directive: show a file from ``snippets/`` with what verified it.

    ```{snippet} sql/pool/idle_in_transaction.sql
    ```

renders the snippet's body (the header lines are for the tests, not the reader),
captioned with its first-line comment, in a block (``div.handbook-snippet``) that
carries two marks above the code:

- its **mode** (``mode:`` header): "Read-only", or "Changes state" in the warning
  colour with the one line of its ``changes:`` header ("This changes ...");
- a **verification badge** from the last test run's ``build/verification.json``:
  passed, failed, stale (changed since it ran) or not run, with the server versions,
  the run's date and id, linked to the page that explains the verification. The full
  sentence (:func:`verification_note`) is the badge's tooltip.

Every snippet must be shown by the page its ``page:`` header names, and by no other.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from docutils import nodes
from pygments.lexers import get_lexer_by_name
from pygments.token import Error, Generic
from sphinx.application import Sphinx
from sphinx.directives.code import LiteralInclude
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

from handbook import report as verification
from handbook import snippet as snippets
from handbook.paths import rel
from handbook.sphinxext import docstore, links, reportview, verified

logger = logging.getLogger(__name__)

LANGUAGES = {"sql": "sql", "shell": "bash", "redis": "text", "promql": "text"}
PSQL_COMMAND = re.compile(r"(?:^|\s)\\[a-z]+\b", re.MULTILINE)  # \gset, \if, \gexec...
PROVIDERS = {"local": "local", "docker": "Docker", "external": "external"}
# Where a badge links: the page that says what "verified" means here.
VERIFICATION_PAGE, VERIFICATION_ANCHOR = "verification", "how-this-handbook-is-verified"
# A badge's outcome: its CSS class is handbook-badge-<outcome> (docs/_static/handbook.css).
OUTCOMES = ("passed", "failed", "stale", "not-run")


def project_root(app: Sphinx) -> Path:
    return Path(app.confdir).resolve().parent


def language_of(snippet: snippets.Snippet) -> str:
    """The lexer for a snippet's body.

    SQL with psql meta-commands (``\\if``, ``\\gset``) breaks the SQL lexer; the psql
    lexer reads them, but it takes some files for a session transcript and marks
    their lines as program output, which the copy button leaves out. Such a file is
    shown plain rather than half copyable.
    """
    if snippet.kind == "sql" and PSQL_COMMAND.search(snippet.body()):
        tokens = get_lexer_by_name("psql").get_tokens(snippet.body())
        if any(kind in Generic.Output or kind in Error for kind, _ in tokens):
            return "text"
        return "psql"
    return LANGUAGES[snippet.kind]


def verification_note(snippet: snippets.Snippet, data: dict, root: Path | None = None) -> str:
    """One sentence saying how far a reader can trust the snippet *as shown*: a result
    counts only while the file still hashes to what the run recorded. ``root``: the
    project the report's paths are relative to (by default, the snippet's own)."""
    if root is None:
        root = Path(str(snippet.path.resolve())[: -len(snippet.name)])
    if snippet.lint_only and snippet.verified_by:
        return verified_by_note(snippet, data, root)
    if snippet.lint_only:
        return (
            f"Lint-only: {snippet.lint_only}. "
            "Checked with shellcheck; the snippet tests cannot run it."
        )
    entries = [e for e in data.get("entries", {}).values() if e["snippet"] == snippet.name]
    if not entries:
        return "Not verified in this build: no test report (run tox, then build the site)."
    current = [e for e in entries if verification.is_current(e, root)]
    hashed = [e for e in entries if e.get("hash")]
    if not hashed:
        return (
            "Not verified in this build: no result recorded for this content (run tox, "
            "then build the site)."
        )
    if not current:
        last = max(hashed, key=lambda e: e.get("time", ""))
        return (
            f"Not verified: this snippet changed since it was last verified "
            f"({verification.run_info(data, last.get('run', ''))}); run the tests, then "
            "build the site."
        )
    passed = sorted({e["server"] for e in current if e["outcome"] == "passed"})
    failed = sorted({e["label"] for e in current if e["outcome"] == "failed"})
    skipped = sorted(
        f"{e['label']} ({e['reason']})" for e in current if e["outcome"] == "not-applicable"
    )
    parts = []
    if snippet.kind == "promql":
        parts.append(
            f"Evaluated in a {'; '.join(passed)} against the synthetic series of "
            f"{snippet.name}.test.yml."
            if passed
            else ""
        )
    elif passed and snippet.path.parent.name == "migrations":
        parts.append("Applied, rolled back and applied again on " + "; ".join(passed) + ".")
    elif passed:
        parts.append("Ran on " + "; ".join(passed) + ".")
    if failed:
        parts.append("FAILED on " + ", ".join(failed) + ".")
    if skipped:
        parts.append("Not applicable on " + ", ".join(skipped) + ".")
    runs = sorted({e.get("run", "") for e in current})
    parts.append(f"({'; '.join(verification.run_info(data, r) for r in runs)})")
    return (
        " ".join(p for p in parts if p)
        if passed or failed or skipped
        else ("Not verified in the last test run.")
    )


@dataclass(frozen=True)
class Verdict:
    """What a snippet's badge says: see the module docstring."""

    outcome: str  # one of OUTCOMES
    words: str  # the badge's own words: "Tested on PostgreSQL 15.20, 18.1"
    when: str  # the run's date, "2026-12-03", or ""
    run: str  # the run's id, or ""
    note: str  # the full sentence: verification_note()


def _date(data: dict, run: str) -> str:
    """The run's date and, where the report has it, the commit it tested."""
    record = data.get("runs", {}).get(run, {})
    commit = record.get("commit", "")
    return " \u00b7 ".join(
        p for p in (record.get("started", "")[:10], commit and f"commit {commit}") if p
    )


def _versions(servers: list[str]) -> str:
    """``["PostgreSQL 15.20, local", "PostgreSQL 18.1, Docker"]`` -> ``"PostgreSQL 15.20,
    18.1"``: the versions a reader compares with their own; where the server ran (a local
    binary, a container) is on the verification page."""
    out: list[str] = []
    last = ""
    for server in sorted({s.split(",")[0].strip() for s in servers}):
        name, _, version = server.rpartition(" ")
        if name and name == last:
            out.append(version)
        else:
            out.append(server)
        last = name
    return ", ".join(out)


def verdict(snippet: snippets.Snippet, data: dict, root: Path | None = None) -> Verdict:
    """The badge of a snippet as shown: the outcome the last runs recorded for this very
    content (see :func:`verification_note`, whose sentence it carries)."""
    if root is None:
        root = Path(str(snippet.path.resolve())[: -len(snippet.name)])
    note = verification_note(snippet, data, root)
    if snippet.lint_only and snippet.verified_by:
        tests = [f.strip() for f in snippet.verified_by.split(",") if f.strip()]
        states = [verification.verified_by(data, snippet.name, t, root) for t in tests]
        for wanted, words in (
            ("failed", "Its test failed"),
            ("passed", "Tested by " + ", ".join(Path(t).stem for t in tests)),
            ("stale", "Changed since its test ran"),
        ):
            for state, record in states:
                if state == wanted:
                    run = record.get("run", "")
                    return Verdict(wanted, words, _date(data, run), run, note)
        return Verdict("not-run", "Not tested in this build", "", "", note)
    if snippet.lint_only:
        return Verdict("not-run", "Not run by the tests: syntax checked only", "", "", note)
    entries = [e for e in data.get("entries", {}).values() if e["snippet"] == snippet.name]
    current = [e for e in entries if verification.is_current(e, root)]
    hashed = [e for e in entries if e.get("hash")]
    if hashed and not current:
        last = max(hashed, key=lambda e: e.get("time", ""))
        run = last.get("run", "")
        return Verdict("stale", "Changed since it was tested", _date(data, run), run, note)
    if not current:
        return Verdict("not-run", "Not tested in this build", "", "", note)
    run = max((e.get("run", "") for e in current), default="")
    failed = sorted({e["label"] for e in current if e["outcome"] == "failed"})
    passed = sorted({e["server"] for e in current if e["outcome"] == "passed"})
    if failed:
        return Verdict("failed", "Failed on " + ", ".join(failed), _date(data, run), run, note)
    if passed:
        verb = "Evaluated by" if snippet.kind == "promql" else "Tested on"
        return Verdict("passed", f"{verb} {_versions(passed)}", _date(data, run), run, note)
    return Verdict("not-run", "Not tested in the last run", _date(data, run), run, note)


def badge(result: Verdict) -> nodes.reference:
    """The verification badge: a link to the verification page (its ``refuri`` is set
    once the page's place in the built site is known, by :func:`link_badges`)."""
    link = nodes.reference(
        "",
        "",
        internal=True,
        refuri="",
        reftitle=result.note,
        classes=["handbook-badge", f"handbook-badge-{result.outcome}"],
        handbook_verification_link=True,
    )
    symbol = {"passed": "\u2713", "failed": "\u2717", "stale": "!", "not-run": "\u2013"}
    link += nodes.inline(text=symbol[result.outcome] + " ", classes=["handbook-badge-symbol"])
    link += nodes.inline(text=result.words, classes=["handbook-badge-words"])
    when = " \u00b7 ".join(p for p in (result.when, f"run {result.run}" if result.run else "") if p)
    if when:
        link += nodes.inline(text=" \u00b7 " + when, classes=["handbook-badge-when"])
    return link


def changes_nothing(snippet: snippets.Snippet) -> bool:
    """'mode: writes' only for its login (``changes: nothing: ...``): shown as harmless."""
    return not snippet.read_only and (snippet.changes or "").lower().startswith("nothing")


def mode_mark(snippet: snippets.Snippet) -> list[nodes.Node]:
    """The mode mark, and for a state-changing snippet the line saying what it changes."""
    if snippet.read_only:
        mark = nodes.inline(text="Read-only", classes=["handbook-mode", "handbook-mode-read-only"])
        return [mark]
    changes = snippet.changes or ""
    if changes_nothing(snippet):
        mark = nodes.inline(text="Changes nothing", classes=["handbook-mode", "handbook-mode-none"])
        why = changes[len("nothing") :].lstrip(":;, ").strip()
        return [mark, nodes.inline(text=why, classes=["handbook-changes"])] if why else [mark]
    mark = nodes.inline(
        text="\u26a0 Changes state", classes=["handbook-mode", "handbook-mode-writes"]
    )
    said = changes or "what its caption says: read the step before you run it"
    return [mark, nodes.inline(text=f"This changes {said}", classes=["handbook-changes"])]


def snippet_block(
    env: BuildEnvironment, snippet: snippets.Snippet, shown: list[nodes.Node]
) -> nodes.container:
    """The block a page shows: the marks above the captioned code, then how to run it.
    The badge is filled in from the report when the page is written (reportview)."""
    meta = nodes.paragraph(classes=["handbook-snippet-meta"])
    meta.extend(mode_mark(snippet))
    if snippet.kind == "promql":
        url = links.prometheus_graph(snippet.body())
        meta += links.online(
            links.external("Open in Prometheus", url, "handbook-prometheus"), separator=""
        )
    meta += reportview.placeholder(env, "badge", snippet=snippet.name)
    mode = "read-only" if snippet.read_only else "none" if changes_nothing(snippet) else "writes"
    block = nodes.container(
        classes=["handbook-snippet", f"handbook-snippet-{mode}"], handbook_snippet=snippet.name
    )
    block += meta
    block.extend(shown)
    block.extend(how_to_run(snippet))
    return block


def link_badges(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Point every badge at the verification page (plain text where there is no site)."""
    for node in list(doctree.findall(nodes.reference)):
        if not node.get("handbook_verification_link"):
            continue
        if app.builder.format == "html":
            uri = app.builder.get_relative_uri(docname, VERIFICATION_PAGE)
            node["refuri"] = f"{uri}#{VERIFICATION_ANCHOR}"
        else:
            node.replace_self(nodes.inline("", "", *node.children, classes=node["classes"]))


def verified_by_note(snippet: snippets.Snippet, data: dict, root: Path) -> str:
    """A lint-only snippet that a test of its own runs: only that test's recorded passing
    outcome, in a run that saw the snippet as it is now, verifies it."""
    tests = [
        f.strip()
        for f in snippet.verified_by.split(",")
        if Path(f.strip()).name.startswith("test_")
    ]
    states = [(test, *verification.verified_by(data, snippet.name, test, root)) for test in tests]
    for test, state, record in states:
        if state == "failed":
            return (
                f"Not verified: its test {test} FAILED in "
                f"{verification.run_info(data, record.get('run', ''))}. Shellchecked."
            )
    for test, state, record in states:
        if state == "passed":
            return (
                f"Run for real by {test} ({snippet.lint_only}), which passed with this content "
                f"in {verification.run_info(data, record.get('run', ''))}; shellchecked."
            )
    for test, state, record in states:
        if state == "stale":
            return (
                f"Not verified: this snippet changed since {test} last ran it "
                f"({verification.run_info(data, record.get('run', ''))}). Shellchecked."
            )
    return (
        f"Not verified in this build: {', '.join(tests) or 'its test'} has no recorded "
        "outcome (run tox, then build the site). Shellchecked."
    )


class SnippetDirective(LiteralInclude):
    def run(self) -> list[nodes.Node]:
        env = self.env
        root = project_root(env.app)
        path = (root / "snippets" / self.arguments[0]).resolve()
        location = f"{rel(env.doc2path(env.docname), root)}:{self.lineno}"
        if not path.is_file():
            logger.warning(
                f"snippet {self.arguments[0]!r} not found under snippets/",
                location=location,
                type="handbook",
                subtype="snippet",
            )
            return []
        try:
            snippet = snippets.parse(path, root)
        except snippets.SnippetError as exc:
            logger.warning(str(exc), location=location, type="handbook", subtype="snippet")
            return []
        page = env.doc2path(env.docname, False).as_posix()
        if snippet.page != page:
            logger.warning(
                f"{snippet.name} is shown here but its header says 'page: {snippet.page}': "
                "show each snippet on the one page its header names",
                location=location,
                type="handbook",
                subtype="snippet",
            )
        env.handbook_snippets_shown.setdefault(env.docname, set()).add(snippet.name)
        env.handbook_snippet_order.setdefault(env.docname, []).append(snippet.name)
        docdir = Path(env.doc2path(env.docname)).parent
        self.arguments[0] = os.path.relpath(path, docdir)
        self.options.setdefault("lines", f"{snippet.body_start}-")
        self.options.setdefault("language", language_of(snippet))
        self.options.setdefault("caption", snippet.title)
        env.note_dependency(str(path))
        return [snippet_block(env, snippet, super().run())]


def render_badge(app: Sphinx, attrs: dict, data: dict) -> list[nodes.Node]:
    """The ``badge`` report view: the snippet's verdict in the report as it is now."""
    root = project_root(app)
    return [badge(verdict(snippets.parse(root / attrs["snippet"], root), data, root))]


def how_to_run(snippet: snippets.Snippet) -> list[nodes.Node]:
    """For a shell snippet: whether to paste it, or run it as the script it is."""
    if snippet.kind != "shell":
        return []
    para = nodes.paragraph(classes=["handbook-run"])
    if snippet.run == "paste":
        para += nodes.Text("Safe to paste into a terminal: nothing in it ends your shell.")
        return [para]
    para += nodes.Text("A script: save it, or use the repository's copy, and run ")
    para += nodes.literal(text=f"bash {snippet.name}")
    para += nodes.Text(
        " with the variables above set. It stops at the first command that fails, so do "
        "not paste it into your own shell (set -e would end it)."
    )
    return [para]


def report_orphans(app: Sphinx, env: BuildEnvironment) -> None:
    """Every file under snippets/ is shown by a page (the tests run every one of them)."""
    root = project_root(app)
    shown = docstore.everything(env, "handbook_snippets_shown")
    for path in sorted((root / "snippets").rglob("*")):
        if path.suffix not in snippets.KINDS or rel(path, root) in shown:
            continue
        try:
            page = snippets.parse(path, root).page
        except snippets.SnippetError:
            page = None  # the header error is reported by the tests
        where = f"docs/{page}" if page else "the page that explains it"
        logger.warning(
            f"{rel(path, root)}:1: no page shows this snippet: include it in {where} with "
            f"```{{snippet}} {path.relative_to(root / 'snippets').as_posix()}``` or delete it",
            type="handbook",
            subtype="orphan",
        )


def setup(app: Sphinx) -> None:
    app.add_directive("snippet", SnippetDirective)
    app.setup_extension("handbook.sphinxext.reportview")
    reportview.register("badge", render_badge)
    app.connect("env-check-consistency", report_orphans)
    app.connect("doctree-resolved", link_badges)
    verified.setup(app)  # {verification-summary}: the counts and the run behind the notes
