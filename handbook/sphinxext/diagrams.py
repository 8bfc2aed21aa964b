"""Which ``dot`` draws the ``{graphviz}`` diagrams, so that the site builds with only Python.

Debian's Graphviz (``apt-get install graphviz``) is used whenever a ``dot`` is on PATH:
it is the Graphviz readers' own machines ship, and it writes the vector PDF that the
LaTeX build embeds. Without it, ``graphviz-pure`` (PyPI, in the ``docs`` dependency
group): a statically linked Rust port of Graphviz 16.1 with ``dot``'s flags, installed
as a ``graphviz-pure`` command (never as ``dot``, so it shadows no Graphviz). It draws
docs/architecture/index.md's diagram to an SVG that reads the same as Graphviz 2.43's
(same layout, clusters, labels; metric-compatible fonts it bundles), so a new user's
first ``tox -e docs`` has its diagrams instead of failing on a missing system package.
That serves readers better than any Python-only stand-in: the alternatives on PyPI either
wrap the same system ``dot`` (pydot, graphviz, pygraphviz) or are not Graphviz at all
and would draw a different picture.

graphviz-pure writes no PDF (nor image maps), so on the LaTeX route it draws a PNG at
300 dpi instead: pdflatex embeds PNG as it is, and the diagram, scaled down to the text
width, prints sharp. A vector PDF there would take a second converter (svglib and
reportlab) for a build that already needs TeX from Debian, where ``graphviz`` is one
package more.
"""

from __future__ import annotations

import re
import subprocess
from hashlib import sha1
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.ext import graphviz as sphinx_graphviz
from sphinx.util import logging

from handbook.site import DOT_INSTALL_HINT, PURE_DOT, SYSTEM_DOT, dot_program

logger = logging.getLogger(__name__)

PURE_DPI = 300


def is_pure(program: str) -> bool:
    return Path(program).name == PURE_DOT


def choose_dot(app: Sphinx, config: Config) -> None:
    """Point ``graphviz_dot`` at ``handbook.site.dot_program()``, unless conf.py set it."""
    if config.graphviz_dot != SYSTEM_DOT:
        return  # set on purpose (conf.py or -D graphviz_dot=...): keep it
    program = dot_program()
    if program is None:
        logger.warning(
            "no program draws the {graphviz} diagrams: neither Graphviz's dot nor "
            "graphviz-pure is installed: %s",
            DOT_INSTALL_HINT,
            type="handbook",
            subtype="diagrams",
        )
        return
    config.graphviz_dot = program


def render_png(translator, node: sphinx_graphviz.graphviz) -> str | None:
    """Draw ``node`` as a PNG with graphviz-pure for the LaTeX builder; its path, or None.

    Sphinx's own renderer asks for ``-Tpdf`` (and ``-Tcmapx`` with PNG), which
    graphviz-pure does not write; this asks for the PNG alone.
    """
    builder = translator.builder
    program = builder.config.graphviz_dot
    argv = [program, *builder.config.graphviz_dot_args]
    layout = node["options"].get("graphviz_dot")
    if layout:  # the directive's :layout: (neato, fdp, ...): an engine of graphviz-pure's own
        argv.append(f"-K{Path(layout).name}")
    code = node["code"]
    key = "".join((code, str(node["options"]), str(argv), str(PURE_DPI))).encode()
    name = f"graphviz-{sha1(key, usedforsecurity=False).hexdigest()}.png"
    out = builder.outdir / builder.imagedir / name
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        source = node.get("filename") or node["options"].get("docname", "index")
        done = subprocess.run(
            [*argv, f"-Gdpi={PURE_DPI}", "-Tpng", f"-o{out}"],
            input=code.encode(), capture_output=True, cwd=(builder.srcdir / source).parent,
            check=False,
        )  # fmt: skip
        if done.returncode != 0 or not out.is_file():
            logger.warning(
                "%s could not draw this diagram for the PDF (exit %s): %s",
                program,
                done.returncode,
                done.stderr.decode(errors="replace").strip(),
                location=node,
                type="handbook",
                subtype="diagrams",
            )
            return None
    return Path(builder.imgpath, name).as_posix()


def latex_visit_graphviz(translator, node: sphinx_graphviz.graphviz) -> None:
    """Sphinx's LaTeX rendering, except that graphviz-pure draws a PNG instead of a PDF."""
    if not is_pure(translator.builder.config.graphviz_dot):
        sphinx_graphviz.latex_visit_graphviz(translator, node)
        return
    name = render_png(translator, node)
    if name is None:
        raise nodes.SkipNode
    inline = translator.is_inline(node)
    pre, post = ("", "") if inline else _align(node.get("align"))
    translator.body.append(
        f"{'' if inline else chr(10)}{pre}\\sphinxincludegraphics[]{{{name}}}"
        f"{post}{'' if inline else chr(10)}"
    )
    raise nodes.SkipNode


SVG_DATA = re.compile(r'<object data="(?P<src>[^"]+\.svg)"')


def html_visit_graphviz(translator, node: sphinx_graphviz.graphviz) -> None:
    """Sphinx's HTML rendering, made to open full size: the drawing is a link to its SVG
    (the click goes to the link, not into the drawing), with "Open full size" under it.
    The stylesheet (docs/_static/handbook.css) gives it dark-mode colours."""
    start = len(translator.body)
    try:
        sphinx_graphviz.html_visit_graphviz(translator, node)
    except nodes.SkipNode:
        html = "".join(translator.body[start:])
        match = SVG_DATA.search(html)
        if match:
            src = match["src"]
            opened = html.find("<object")
            closed = html.find("</object>", opened) + len("</object>")
            html = (
                f'{html[:opened]}<a class="handbook-diagram" href="{src}" '
                f'title="Open the diagram full size">{html[opened:closed]}</a>'
                f'<p class="handbook-diagram-open"><a href="{src}">Open the diagram full size'
                f"</a></p>{html[closed:]}"
            )
            del translator.body[start:]
            translator.body.append(html)
        raise


def _align(align: str | None) -> tuple[str, str]:
    """The LaTeX around a block diagram for its ``:align:``, as Sphinx writes it."""
    return {
        "left": ("{", r"\hspace*{\fill}}"),
        "right": (r"{\hspace*{\fill}", "}"),
        "center": (r"{\hfill", r"\hspace*{\fill}}"),
    }.get(align or "", ("", ""))


def setup(app: Sphinx) -> None:
    app.setup_extension("sphinx.ext.graphviz")
    app.connect("config-inited", choose_dot)
    app.add_node(
        sphinx_graphviz.graphviz,
        override=True,
        html=(html_visit_graphviz, None),
        latex=(latex_visit_graphviz, None),
        text=(sphinx_graphviz.text_visit_graphviz, None),
        man=(sphinx_graphviz.man_visit_graphviz, None),
        texinfo=(sphinx_graphviz.texinfo_visit_graphviz, None),
    )
