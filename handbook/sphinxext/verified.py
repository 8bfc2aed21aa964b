"""How far each snippet is verified, counted three ways, and which test run says so.

``classify()`` puts every snippet in one of three groups:

- **output asserted**: something checks what it prints: a drill (``tests/drills/``,
  ``handbook/drills/``) or a test of its own that runs it (a test module naming its
  path, or the ``verified-by:`` test of a snippet the harness cannot run), a ``.out``
  file beside it, or, for PromQL, the expected samples of its sidecar;
- **exit status only**: the harness runs it and only its exit status (and, for SQL and
  redis-cli, the absence of an error reply) is checked;
- **lint-only**: it cannot run here; its ``lint-only:`` header says why.

The ``{verification-summary}`` directive shows the three counts (lint-only ones with
their reasons) and the test run the pages' results come from: its id and date, how many
results come from earlier runs, and how many snippets changed since their last run.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from handbook import report as verification
from handbook import snippet as snippets
from handbook.sphinxext import reportview

OUTPUT, EXIT_STATUS, LINT_ONLY = "output asserted", "exit status only", "lint-only"
GROUPS = (OUTPUT, EXIT_STATUS, LINT_ONLY)
# Tests of the harness itself: they run snippets to test the machinery, not their output.
HARNESS_TESTS = frozenset(
    {
        "test_snippet_harness.py", "test_results.py", "test_accounts.py", "test_site.py",
        "test_browser.py", "test_literal_blocks.py", "test_pdf.py", "test_package.py",
        "test_diagnostics_cost.py",
    }
)  # fmt: skip


def checking_files(root: Path) -> dict[Path, str]:
    """The test and drill modules that run snippets and check what they print."""
    places = [*(root / "tests").rglob("test_*.py"), *(root / "handbook" / "drills").rglob("*.py")]
    return {
        path: path.read_text(encoding="utf-8")
        for path in sorted(places)
        if path.name not in HARNESS_TESTS
    }


def all_snippets(root: Path) -> list[snippets.Snippet]:
    found = []
    for path in sorted((root / "snippets").rglob("*")):
        if path.suffix in snippets.KINDS and path.parent.name != "migrations":
            try:
                found.append(snippets.parse(path, root))
            except snippets.SnippetError:
                continue  # the tests report it, naming the line
    return found


def classify(snippet: snippets.Snippet, files: dict[Path, str], root: Path) -> tuple[str, str]:
    """(group, why): see the module docstring."""
    if snippet.lint_only and snippet.verified_by:
        tests = [f.strip() for f in snippet.verified_by.split(",") if f.strip()]
        return OUTPUT, f"run outside the harness and checked by {', '.join(tests)}"
    if snippet.lint_only:
        return LINT_ONLY, snippet.lint_only
    if snippet.kind == "promql":
        return OUTPUT, "promtool compares its result with the samples its sidecar expects"
    expected = snippet.path.with_name(snippet.path.name + ".out")
    if expected.is_file():
        return OUTPUT, f"compared line by line with {expected.name}"
    short = snippet.name.removeprefix("snippets/")
    checkers = [path.relative_to(root).as_posix() for path, text in files.items() if short in text]
    if checkers:
        return OUTPUT, "its output is checked by " + ", ".join(checkers)
    return EXIT_STATUS, "the harness checks its exit status and error replies only"


def counts(root: Path) -> dict[str, list[tuple[snippets.Snippet, str]]]:
    files = checking_files(root)
    grouped: dict[str, list[tuple[snippets.Snippet, str]]] = {g: [] for g in GROUPS}
    for snippet in all_snippets(root):
        group, why = classify(snippet, files, root)
        grouped[group].append((snippet, why))
    return grouped


def run_sentence(data: dict, root: Path) -> str:
    """Which test run the pages show, and how much of what they show is older or stale."""
    run = data.get("run")
    if not run:
        return (
            "No test run has written build/verification.json in this checkout yet: every "
            "snippet says it is not verified (run tox, then build the site)."
        )
    info = data.get("runs", {}).get(run, {})
    entries = list(data.get("entries", {}).values())
    current = [e for e in entries if verification.is_current(e, root)]
    older = [e for e in current if e.get("run") != run]
    stale = sorted({e["snippet"] for e in entries} - {e["snippet"] for e in current})
    finished = info.get("finished", data.get("generated", "")).replace("T", " ").rstrip("Z")
    text = (
        f"The results on these pages come from test run {run} (finished {finished} UTC, on "
        f"{info.get('machine', data.get('machine', 'an unknown machine'))})"
    )
    if older:
        text += f"; {len(older)} of the {len(current)} results still valid come from earlier runs"
    text += "."
    if stale:
        text += (
            f" {len(stale)} snippet(s) changed since they last ran and are shown as not "
            "verified until the tests run again."
        )
    return text


class VerificationSummaryDirective(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        root = Path(self.env.app.confdir).resolve().parent
        for path in [*(root / "snippets").rglob("*"), *(root / "tests").rglob("*.py")]:
            if path.is_file():
                self.env.note_dependency(str(path))
        grouped = counts(root)
        result: list[nodes.Node] = [reportview.placeholder(self.env, "run-sentence")]
        items = nodes.bullet_list()
        described = {
            OUTPUT: "a drill, a test of its own or a .out file checks what it prints "
            "(PromQL: promtool checks the result against expected samples)",
            EXIT_STATUS: "run on real servers; only the exit status and error replies are checked",
            LINT_ONLY: "cannot run here; shellchecked, and each says why",
        }
        for group in GROUPS:
            para = nodes.paragraph(
                "",
                "",
                nodes.strong(text=f"{group.capitalize()}: {len(grouped[group])}"),
                nodes.Text(f" ({described[group]})"),
            )
            items += nodes.list_item("", para)
        result.append(items)
        lint = nodes.bullet_list()
        for snippet, why in grouped[LINT_ONLY]:
            para = nodes.paragraph("", "", nodes.literal(text=snippet.name), nodes.Text(f": {why}"))
            lint += nodes.list_item("", para)
        if grouped[LINT_ONLY]:
            result.append(nodes.paragraph(text="The lint-only snippets and why:"))
            result.append(lint)
        return result


def render_run_sentence(app: Sphinx, attrs: dict, data: dict) -> list[nodes.Node]:
    """The ``run-sentence`` report view."""
    return [nodes.paragraph(text=run_sentence(data, Path(app.confdir).resolve().parent))]


def setup(app: Sphinx) -> None:
    app.setup_extension("handbook.sphinxext.reportview")
    reportview.register("run-sentence", render_run_sentence)
    app.add_directive("verification-summary", VerificationSummaryDirective)
