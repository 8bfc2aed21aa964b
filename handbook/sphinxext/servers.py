"""``{server-matrix}``: every server the last test run used, and what ran on each.

    ```{server-matrix}
    ```

renders one row per server label in ``build/verification.json``: the product and
version the server reported, its provider (local binaries, a Docker image, an external
server) and where it came from, and how many snippets passed, failed or did not apply
there. Without a report the build still succeeds, and the page says how to make one.
"""

from __future__ import annotations

import re
from collections import Counter

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from handbook.sphinxext import reportview

DESCRIPTION = re.compile(
    r"^(?P<server>.+?), (?P<provider>local|docker|external) \((?P<origin>.*?)\)"
)
PROVIDERS = {"local": "local", "docker": "Docker", "external": "external"}
COLUMNS = ("Label", "Server", "Provider", "From", "Passed", "Failed", "Not applicable")


def rows(data: dict) -> list[list[str]]:
    """One row per server label: the COLUMNS, as text."""
    counts: dict[str, Counter] = {}
    for entry in data.get("entries", {}).values():
        for label in str(entry.get("label", "")).split("+"):
            counts.setdefault(label, Counter())[entry.get("outcome", "")] += 1
    found = []
    for label, description in sorted(data.get("servers", {}).items()):
        match = DESCRIPTION.match(description)
        server, provider, origin = (
            (match["server"], PROVIDERS[match["provider"]], match["origin"])
            if match
            else (description, "", "")
        )
        seen = counts.get(label, Counter())
        found.append(
            [label, server, provider, origin, str(seen["passed"]), str(seen["failed"]),
             str(seen["not-applicable"])]
        )  # fmt: skip
    return found


def render_matrix(app: Sphinx, attrs: dict, data: dict) -> list[nodes.Node]:
    """The ``server-matrix`` report view."""
    found = rows(data)
    if not found:
        return [
            nodes.paragraph(
                text="No test run has written build/verification.json in this checkout "
                "yet: run tox -e tests, then build the site again."
            )
        ]
    group = nodes.tgroup(cols=len(COLUMNS))
    for width in (8, 18, 7, 30, 6, 6, 8):
        group += nodes.colspec(colwidth=width)
    head, body = nodes.thead(), nodes.tbody()
    for cells, part in [(COLUMNS, head)] + [(row, body) for row in found]:
        row = nodes.row()
        for column, cell in zip(COLUMNS, cells, strict=True):
            if part is body and column == "From" and cell:  # a path or an image: code
                row += nodes.entry("", nodes.paragraph("", "", nodes.literal(text=cell)))
            else:
                row += nodes.entry("", nodes.paragraph(text=cell))
        part += row
    group += head
    group += body
    table = nodes.table("", group, classes=["handbook-server-matrix"])
    note = nodes.paragraph(
        text=f"From the test run of {data.get('generated', 'an unknown time')} on "
        f"{data.get('machine', 'an unknown machine')}."
    )
    return [table, note]


class ServerMatrixDirective(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        return [reportview.placeholder(self.env, "server-matrix")]


def setup(app: Sphinx) -> None:
    app.add_directive("server-matrix", ServerMatrixDirective)
    app.setup_extension("handbook.sphinxext.reportview")
    reportview.register("server-matrix", render_matrix)
