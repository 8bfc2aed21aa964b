"""``{quick-reference}``: each alert, its severity, its runbook and the first diagnostic to run.

Everything comes from elsewhere: the alert and severity from the rules file, the
runbook from the page that declares ``{alert} Name``, and the first diagnostic
from the first snippet that runbook shows. The diagnostic cell is filled once
every page has been read, because it depends on another page.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from handbook import snippet as snippets
from handbook.sphinxext.alerts import load, table
from handbook.sphinxext.snippets import LANGUAGES, project_root

logger = logging.getLogger(__name__)


class first_diagnostic(nodes.General, nodes.Element):
    """Placeholder for the first snippet of the runbook of ``alert``."""


def runbook_ref(anchor: str) -> addnodes.pending_xref:
    ref = addnodes.pending_xref(
        "", refdomain="std", reftype="ref", reftarget=anchor, refexplicit=False
    )
    ref += nodes.inline(text=anchor)
    return ref


class QuickReferenceDirective(SphinxDirective):
    """A table of the alerts, then each alert's first diagnostic, ready to copy."""

    def run(self) -> list[nodes.Node]:
        # The first diagnostics are filled in as the page is written, from the runbooks
        # and their snippets: an edit to either must re-read this page (incremental builds).
        root = project_root(self.env.app)
        for path in [*(root / "docs" / "runbooks").glob("*.md"), *(root / "snippets").rglob("*")]:
            if path.is_file():
                self.env.note_dependency(str(path))
        rows, details = [], []
        for alert in load(self.env).values():
            try:
                _, anchor = alert.runbook_target()
            except ValueError:
                anchor = ""  # reported by the alert contract check
            node_id = f"quickref-{alert.name.lower()}"  # the alert's heading below
            row = nodes.row()
            for content in (
                nodes.reference(
                    "", "", nodes.literal(text=alert.name), refid=node_id, internal=True
                ),
                nodes.Text(alert.severity),
                runbook_ref(anchor),
            ):
                row += nodes.entry("", nodes.paragraph("", "", content))
            rows.append(row)
            # A heading per alert, with a stable anchor: quickref-<alert in lower case>
            section = nodes.section(ids=[node_id], names=[node_id], classes=["handbook-quickref"])
            section += nodes.title(
                "", "", nodes.literal(text=alert.name), nodes.Text(f" ({alert.severity})")
            )
            section += nodes.paragraph("", "", nodes.Text("Runbook: "), runbook_ref(anchor))
            placeholder = first_diagnostic(alert=alert.name)
            self.set_source_info(placeholder)
            section += placeholder
            self.set_source_info(section)
            self.env.get_domain("std").note_hyperlink_target(
                node_id, self.env.docname, node_id, f"{alert.name} ({alert.severity})"
            )
            details.append(section)
        header = ["Alert", "Severity", "Runbook"]
        shown = table([40, 15, 45], header, rows)
        shown["classes"].append("handbook-stack")  # on a phone each row is a card
        return [shown, *details]


def fill(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    env = app.env
    root = project_root(app)
    runbook_of = {name: doc for doc, names in env.handbook_runbooks.items() for name in names}
    for node in list(doctree.findall(first_diagnostic)):
        alert = node["alert"]
        shown = env.handbook_snippet_order.get(runbook_of.get(alert, ""), [])
        if not shown:
            logger.warning(
                f"alert {alert}: its runbook shows no snippet, so the quick reference has no "
                "first diagnostic: include the first investigation command with {snippet}",
                location=node,
                type="handbook",
                subtype="quickref",
            )
            node.replace_self(nodes.paragraph(text="First diagnostic: none"))
            continue
        snippet = snippets.parse(root / shown[0], root)
        body = snippet.body().rstrip("\n")
        code = nodes.literal_block(body, body, language=LANGUAGES[snippet.kind])
        code["source"] = str(Path(root / shown[0]))  # a tested file from snippets/
        intro = nodes.paragraph(
            "",
            "",
            nodes.Text(f"First diagnostic: {snippet.title} ("),
            nodes.literal(text=shown[0].removeprefix("snippets/")),
            nodes.Text(")"),
        )
        node.replace_self([intro, code])


def setup(app: Sphinx) -> None:
    app.add_node(first_diagnostic)
    app.add_directive("quick-reference", QuickReferenceDirective)
    app.connect("doctree-resolved", fill)
