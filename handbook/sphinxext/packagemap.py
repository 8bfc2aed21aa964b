"""``{package-map}``: the handbook package's map, rendered from its own docstrings.

Each row is a module or subpackage of ``handbook/`` with what its docstring says it
holds and what it may import (the subpackage docstring's ``May import:`` line, read by
``handbook/layers.py``). The page is rebuilt when a docstring changes;
``tests/test_package.py`` holds the code to the same lines, so the map the onboarding
guide shows is the rule the tests enforce.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from handbook.layers import FOUNDATION, MAY_IMPORT, ON_TOP, docstring, may_import, subpackages
from handbook.paths import rel
from handbook.sphinxext.alerts import project_root, table

logger = logging.getLogger(__name__)
_INLINE = re.compile(r"``([^`]+)``|:[a-z]+:`~?([^`]+)`")


def inline(text: str) -> list[nodes.Node]:
    """Docstring text as nodes: ````x```` and ``:role:`x``` become code, the rest text."""
    out: list[nodes.Node] = []
    position = 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            out.append(nodes.Text(text[position : match.start()]))
        out.append(nodes.literal(text=match[1] or match[2]))
        position = match.end()
    if position < len(text):
        out.append(nodes.Text(text[position:]))
    return out


def paragraphs(text: str) -> list[nodes.paragraph]:
    """The docstring's paragraphs, without the ``May import:`` one."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        joined = " ".join(block.split())
        if joined and not joined.startswith(MAY_IMPORT):
            out.append(nodes.paragraph("", "", *inline(joined)))
    return out


def _names(names: list[str] | tuple[str, ...]) -> list[nodes.Node]:
    out: list[nodes.Node] = []
    for number, name in enumerate(names):
        if number:
            out.append(nodes.Text(", "))
        out.append(nodes.literal(text=name))
    return out


def _row(name: str, layer: str, holds: list[nodes.Node], allowed: list[nodes.Node]) -> nodes.row:
    row = nodes.row()
    row += nodes.entry("", nodes.paragraph("", "", nodes.literal(text=name)))
    row += nodes.entry("", nodes.paragraph(text=layer))
    row += nodes.entry("", *holds)
    row += nodes.entry("", nodes.paragraph("", "", *allowed))
    return row


class PackageMapDirective(SphinxDirective):
    """The table of ``handbook/``: foundation, subpackages, then what sits on top."""

    def run(self) -> list[nodes.Node]:
        package = project_root(self.env.app) / "handbook"
        where = self.get_location()
        rows = []

        def read(path: Path) -> str:
            self.env.note_dependency(str(path))
            text, _ = docstring(path)
            if not text:
                logger.warning(
                    f"{rel(path)}:1: no docstring: say what the module holds",
                    location=where, type="handbook", subtype="packagemap",
                )  # fmt: skip
            return text

        for name in FOUNDATION:
            holds = paragraphs(read(package / f"{name}.py"))[:1]
            rows.append(_row(f"{name}.py", "foundation", holds, [nodes.Text("foundation only")]))
        for name in subpackages(package):
            if name in ON_TOP:
                continue
            init = package / name / "__init__.py"
            text = read(init)
            try:
                listed = may_import(init)
            except ValueError as exc:
                logger.warning(str(exc), location=where, type="handbook", subtype="packagemap")
                listed = []
            allowed = _names(listed) if listed else [nodes.Text("foundation only")]
            rows.append(_row(f"{name}/", "subpackage", paragraphs(text), allowed))
        on_top = [f"{name}/" for name in ON_TOP] + sorted(
            path.name
            for path in package.glob("*.py")
            if path.stem not in FOUNDATION and path.name != "__init__.py"
        )
        for name in on_top:
            path = package / name / "__init__.py" if name.endswith("/") else package / name
            holds = paragraphs(read(path))[:1]
            rows.append(_row(name, "on top", holds, [nodes.Text("anything")]))
        intro = paragraphs(read(package / "__init__.py"))
        header = ["Module", "Layer", "What it holds", "May import"]
        note = nodes.paragraph(
            text="Generated from the docstrings of handbook/ when the site is built; "
            "tests/test_package.py fails when an import breaks these rules."
        )
        return [*intro, table([16, 12, 54, 18], header, rows), note]


def setup(app: Sphinx) -> None:
    app.add_directive("package-map", PackageMapDirective)
