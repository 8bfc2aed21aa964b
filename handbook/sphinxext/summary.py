"""``{requirement-trace}``: each requirement of the seed with the tests that prove it.

The tests are found by reading their ``covers`` markers (handbook.guide.requirements),
and their outcome comes from the last test run's ``build/verification.json``.
A requirement no test proves is shown as open; nothing is ticked by hand.
"""

from __future__ import annotations

from typing import ClassVar

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from handbook import report as verification
from handbook.guide import requirements
from handbook.sphinxext import reportview
from handbook.sphinxext.alerts import table
from handbook.sphinxext.snippets import project_root

logger = logging.getLogger(__name__)

OUTCOME_TEXT = {"passed": "passed", "failed": "FAILED", "skipped": "skipped"}


def n_tests(count: int) -> str:
    return f"{count} test" if count == 1 else f"{count} tests"


def status(
    proofs: list[requirements.Proof], outcomes: dict[str, object], provable: bool, data=None
) -> str:
    """The requirement's status, naming the test runs (id and date) it comes from."""
    if not provable:
        return "Open: a team activity, not something a test can prove"
    if not proofs:
        return "Open: no test proves it yet"
    records = [outcomes.get(f"{p.path}::{p.test}") for p in proofs]
    seen = [verification.outcome_of(r) if r else None for r in records]
    runs = sorted({verification.stamped(r)["run"] for r in records if r})
    where = "; ".join(verification.run_info(data or {}, run) for run in runs)
    if "failed" in seen:
        return f"Failing in {where}"
    if all(s == "passed" for s in seen):
        return f"Proven: {n_tests(len(proofs))} passed in {where}"
    if any(s == "passed" for s in seen):
        passed = sum(s == "passed" for s in seen)
        return f"Partly run: {passed} of {len(proofs)} tests passed in {where}"
    return f"Not run in this build: {n_tests(len(proofs))} prove it (run tox, then build)"


def by_file(proofs: list[requirements.Proof]) -> dict[str, list[requirements.Proof]]:
    grouped: dict[str, list[requirements.Proof]] = {}
    for proof in proofs:
        grouped.setdefault(proof.path, []).append(proof)
    return grouped


class RequirementTraceDirective(SphinxDirective):
    option_spec: ClassVar = {"only": lambda value: value.split()}

    def run(self) -> list[nodes.Node]:
        root = project_root(self.env.app)
        tests = root / "tests"
        for path in tests.rglob("test_*.py"):
            self.env.note_dependency(str(path))
        try:
            proofs = requirements.trace(tests, root)
        except requirements.UnknownRequirement as exc:
            logger.warning(str(exc), location=self.get_location(), type="handbook")
            proofs = []
        return [reportview.placeholder(self.env, "requirement-trace", proofs=proofs,
                                       only=self.options.get("only"))]  # fmt: skip


def render_trace(app, attrs: dict, data: dict) -> list[nodes.Node]:
    """The ``requirement-trace`` report view: the table, with the outcomes of the report."""
    proofs, wanted = attrs["proofs"], attrs["only"]
    outcomes = data.get("proofs", {})
    rows = []
    for req in requirements.REQUIREMENTS:
        if wanted and not any(req.id.startswith(prefix) for prefix in wanted):
            continue
        mine = [p for p in proofs if p.requirement == req.id]
        tests_cell = nodes.bullet_list()
        for path, group in by_file(mine).items():
            seen = [
                verification.outcome_of(outcomes.get(f"{p.path}::{p.test}", "not run"))
                for p in group
            ]
            counts = ", ".join(
                f"{seen.count(o)} {OUTCOME_TEXT.get(o, o)}"
                for o in ("passed", "failed", "skipped", "not run")
                if o in seen
            )
            item = nodes.paragraph(
                "",
                "",
                nodes.literal(text=path),
                nodes.Text(f": {n_tests(len(group))} ({counts})"),
            )
            tests_cell += nodes.list_item("", item)
        row = nodes.row()
        row += nodes.entry(
            "",
            nodes.paragraph("", "", nodes.strong(text=f"{req.id} {req.title}")),
            nodes.paragraph(text=req.scope),
        )
        row += nodes.entry("", nodes.paragraph(text=status(mine, outcomes, req.provable, data)))
        row += nodes.entry("", tests_cell if mine else nodes.paragraph(text="-"))
        rows.append(row)
    return [table([34, 22, 44], ["Requirement", "Status", "Proven by"], rows)]


def setup(app) -> None:
    app.add_directive("requirement-trace", RequirementTraceDirective)
    app.setup_extension("handbook.sphinxext.reportview")
    reportview.register("requirement-trace", render_trace)
