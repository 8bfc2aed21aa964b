"""The PDF's layout: what the LaTeX builder gets that the HTML site does not need.

Runs on the LaTeX builder only, on the one assembled document (``doctree-resolved``
of the root page, after the other handlers have filled in their tables):

- Each toctree caption of the root page (On call, Tutorials...) becomes a ``\\part``;
  Sphinx's LaTeX writer drops them (and titles the contents page with the first one:
  ``docs/_static/handbook-pdf.sty`` names it "Contents" again).
- Every table gets column widths, so its cells wrap instead of running into the next
  column: the widths a generated table gives (``handbook/sphinxext/*.py``), else widths
  measured from its content (a Markdown pipe table). A table taller than
  ``KEEP_TOGETHER_LINES`` becomes a ``longtable``, which breaks across pages with its
  header repeated; a shorter one stays whole (``\\needspace``), together with a code
  block right after it (an alert's rule and its expression).
- Each runbook (a page that declares ``{alert}``) starts on a new page.
- Links side by side (a runbook's "On this page" line) get a separator, which the
  HTML site draws with CSS; a link out too long to print gets no footnote; a long
  path or ``NAME=value`` in running text may break after ``/``, ``_`` or ``=``.

The TeX side of the same rules (inline code breaking after ``_``, ``-`` and ``:``, URLs
anywhere, ragged-right cells, the snippet marks) is ``docs/_static/handbook-pdf.sty``;
code lines breaking at spaces first, the version and page references are in
``docs/conf.py``'s PDF section. ``tests/test_pdf.py`` checks the result.
"""

from __future__ import annotations

import math
import re

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

# A table up to this many lines tall (as estimated below) is kept on one page; a taller
# one breaks across pages. A page of body text holds about 55 lines.
KEEP_TOGETHER_LINES = 30
# Characters of code (10pt txtt, 5.25pt each) in one line of the 451pt text block.
LINE_CHARACTERS = 86
# A character of body text (10pt TeX Gyre Termes) is narrower than one of code.
TEXT_CHARACTER = 0.85
# The space a cell keeps either side of its text (2 \tabcolsep), in characters.
PADDING = 2.5
# Where a longtable can not work: inside another table or a framed box.
NO_LONGTABLE_INSIDE = (nodes.table, nodes.Admonition, nodes.sidebar, nodes.topic)
# Where TeX may break a line: in code (docs/_static/handbook-pdf.sty adds _ - and :), and
# in text (break_long_words below adds / _ = to spaces).
CODE_BREAKS = re.compile(r"(?<=[-_.,;:?!/])|\s+")
TEXT_BREAKS = re.compile(r"(?<=[/_=])|\s+")


def latex_only(handler):
    def run(app: Sphinx, doctree: nodes.document, docname: str) -> None:
        if app.builder.format == "latex":
            handler(app, doctree, docname)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def raw(text: str) -> nodes.raw:
    return nodes.raw("", text, format="latex")


def escape(text: str) -> str:
    specials = {c: "\\" + c for c in "&%$#_{}"}
    specials |= {"~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}
    return "".join(specials.get(c, c) for c in text)


def _inside(node: nodes.Node, kinds: tuple[type, ...]) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, kinds):
            return True
        parent = parent.parent
    return False


# -- Parts from the root page's toctree captions -----------------------------------------------


def _root_wrappers(node: nodes.Element) -> list[nodes.compound]:
    """The root page's toctree wrappers, not those of the pages they pulled in.

    (The pulled-in pages sit in ``start_of_file`` nodes whose children still name their
    own page's tree as parent, so a walk down is the way to tell them apart.)
    """
    found = []
    for child in node.children:
        if isinstance(child, addnodes.start_of_file):
            continue
        if isinstance(child, nodes.compound) and "toctree-wrapper" in child["classes"]:
            found.append(child)
        elif isinstance(child, nodes.Element):
            found.extend(_root_wrappers(child))
    return found


def captions_as_parts(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Put each root toctree's caption before what that toctree pulled in, as a part."""
    if docname != app.config.root_doc:
        return
    captions = [
        toctree.get("caption") for toctree in app.env.get_doctree(docname).findall(addnodes.toctree)
    ]
    wrappers = _root_wrappers(doctree)
    doctree.insert(0, raw(r"\markboth{}{}"))  # the root page's text: not the contents' footer
    for caption, wrapper in zip(captions, wrappers, strict=False):
        if caption:
            wrapper.insert(0, raw(rf"\part{{{escape(caption)}}}"))


# -- Runbooks start on a new page ------------------------------------------------------------


def runbooks_on_new_pages(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    runbooks = set(getattr(app.env, "handbook_runbooks", {}))
    for start in doctree.findall(addnodes.start_of_file):
        if start["docname"] in runbooks:
            start.insert(0, raw(r"\clearpage"))


# -- Long links keep their link but print no footnote -----------------------------------------

# A link out whose address is longer than this (a PromQL query opened in Prometheus) is
# not printed in a footnote (latex_show_urls): the code block beside it shows what the
# address encodes, and a dozen lines of %-escapes help no reader of paper.
LONG_URL = 160


class long_link(nodes.Inline, nodes.TextElement):
    """A link out to an address too long to print; only the PDF has it."""


def visit_long_link(self, node: long_link) -> None:
    self.body.append(rf"\sphinxhref{{{self.encode_uri(node['refuri'])}}}{{")


def depart_long_link(self, node: long_link) -> None:
    self.body.append("}")


class QuietLongLinks(SphinxPostTransform):
    default_priority = 390  # before Sphinx's ShowUrlsTransform (400) adds the footnotes
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        for reference in list(self.document.findall(nodes.reference)):
            uri = reference.get("refuri", "")
            if len(uri) > LONG_URL:
                link = long_link("", "", *reference.children, refuri=uri)
                link["classes"] = reference["classes"]
                reference.replace_self(link)


# -- Links side by side get a separator -------------------------------------------------------

LINKS = (nodes.reference, long_link)
SEPARATOR = " \u00b7 "  # what the HTML site's CSS puts between links, as a character


def separate_adjacent_links(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """``Investigation (page 64) · Resolution``, not ``Investigation (page 64)Resolution``."""
    for paragraph in doctree.findall(nodes.paragraph):
        children = paragraph.children
        for index in range(len(children) - 1, -1, -1):
            if not isinstance(children[index], LINKS):
                continue
            after = index + 1  # past the footnote latex_show_urls hangs on a link out
            while after < len(children) and isinstance(
                children[after], (nodes.footnote, nodes.footnote_reference)
            ):
                after += 1
            if after < len(children) and isinstance(children[after], LINKS):
                paragraph.insert(after, nodes.Text(SEPARATOR))


# -- Long words in text break at / _ = --------------------------------------------------------

# A word this long or longer (a path, an option=value in prose) may break after / _ or =.
LONG_WORD = re.compile(r"\S{8,}")
INSIDE_LONG_WORD = re.compile(r"(?<=[/_=])(?=[^\s/_=])")


def break_long_words(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Let TeX break paths and ``NAME=value`` in running text, as it does inline code."""
    for text in list(doctree.findall(nodes.Text)):
        container = text.parent
        while isinstance(container, nodes.Inline) and not isinstance(container, nodes.literal):
            container = container.parent
        if not isinstance(container, nodes.paragraph) or _inside(text, (nodes.literal,)):
            continue  # code breaks on its own terms; titles and captions stay as they are
        if isinstance(text.parent, nodes.reference) and text == text.parent.get("refuri"):
            continue  # a printed address: \url breaks it anywhere (xurl)
        value = str(text)
        cuts = sorted(
            cut.start()
            for word in LONG_WORD.finditer(value)
            for cut in INSIDE_LONG_WORD.finditer(value, word.start(), word.end())
        )
        if not cuts:
            continue
        pieces: list[nodes.Node] = []
        for start, end in zip([0, *cuts], [*cuts, len(value)], strict=True):
            if pieces:
                pieces.append(raw(r"\allowbreak{}"))
            pieces.append(nodes.Text(value[start:end]))
        text.parent.replace(text, pieces)


# -- Tables --------------------------------------------------------------------------------------


def _columns(table: nodes.table) -> tuple[list[nodes.colspec], list[list[nodes.entry]]]:
    """The table's column specs and, per column, its cells."""
    group = next(iter(table.findall(nodes.tgroup)), None)
    if group is None:
        return [], []
    specs = [child for child in group.children if isinstance(child, nodes.colspec)]
    cells: list[list[nodes.entry]] = [[] for _ in specs]
    for row in group.findall(nodes.row):
        if row.parent.parent is not group:
            continue  # a row of a table nested in a cell
        column = 0
        for entry in row.children:
            if column < len(cells):
                cells[column].append(entry)
            column += 1 + entry.get("morecols", 0)
    return specs, cells


def _longest_words(entry: nodes.entry) -> tuple[float, float]:
    """The widest code and the widest word of text in the cell TeX can not break, in
    characters of code.

    Code does not hyphenate: a token is as wide as it is. A word of text does, near
    its middle, so a long one needs only about half its width (a short one all); but
    TeX hyphenates letters only, so a word with a digit or a dot inside (``valkey8.1``,
    ``8.0.2``) is as wide as it is and holds its column like code.
    """
    code_width = text_width = 0.0
    heading = _inside(entry, (nodes.thead,))  # bold sans serif: as wide as code
    for text in entry.findall(nodes.Text):
        if _inside(text, (nodes.literal,)):
            code_width = max([code_width, *map(len, CODE_BREAKS.split(str(text)))])
            continue
        for word in TEXT_BREAKS.split(str(text)):
            width = 1.0 if heading else TEXT_CHARACTER
            core = word.strip(".,;:!?()[]'\"")
            if "." in core or any(c.isdigit() for c in core):  # TeX finds no hyphen there
                code_width = max(code_width, len(word) * width)
                continue
            unbroken = len(word) if len(word) <= 7 else max(7, math.ceil(0.5 * len(word)) + 1)
            text_width = max(text_width, unbroken * width)
    return code_width, text_width


def _minimums(cells: list[list[nodes.entry]]) -> list[float]:
    """Each column's narrowest width, in characters of code; if they do not fit the line
    together, the columns held by a word of text (which can hyphenate again) give way,
    those held by code (which can not) keep theirs."""
    widest = [[_longest_words(entry) for entry in column] for column in cells]
    code = [max((c for c, _ in column), default=0) + PADDING for column in widest]
    text = [max((t for _, t in column), default=0) + PADDING for column in widest]
    minimum = [max(c, t) for c, t in zip(code, text, strict=True)]
    if sum(minimum) <= LINE_CHARACTERS:
        return minimum
    hard = sum(c for c, t in zip(code, text, strict=True) if c >= t)
    soft = sum(t for c, t in zip(code, text, strict=True) if c < t) or 1
    give = max(LINE_CHARACTERS - hard, 0) / soft
    return [c if c >= t else t * give for c, t in zip(code, text, strict=True)]


def _measured(texts: list[list[str]], minimum: list[float]) -> list[float]:
    """Column widths from content: each column its narrowest width, then what is left of
    the line shared in proportion to how much more each column's longest cell wants."""
    natural = [
        max(max((len(t) for t in cells), default=0) + PADDING, least)
        for cells, least in zip(texts, minimum, strict=True)
    ]
    if sum(natural) <= LINE_CHARACTERS:
        return natural
    left = max(LINE_CHARACTERS - sum(minimum), 0)
    want = [n - m for n, m in zip(natural, minimum, strict=True)]
    return [m + left * w / (sum(want) or 1) for m, w in zip(minimum, want, strict=True)]


def _fitted(widths: list[float], minimum: list[float]) -> list[float]:
    """The widths scaled to the line, each at least its minimum, taken from the wider ones."""
    total = sum(widths)
    scaled = [w * LINE_CHARACTERS / total for w in widths]
    need = sum(max(m - w, 0) for w, m in zip(scaled, minimum, strict=True))
    slack = [max(w - m, 0) for w, m in zip(scaled, minimum, strict=True)]
    if not need:
        return scaled
    if sum(slack) < need - 1e-6:  # code wider than the line: it overflows, as little as may be
        return [max(w, m) for w, m in zip(scaled, minimum, strict=True)]
    return [
        m if w < m else w - need * s / sum(slack)
        for w, m, s in zip(scaled, minimum, slack, strict=True)
    ]


def _height(widths: list[float], texts: list[list[str]]) -> int:
    """Lines the table takes: each row as tall as its tallest cell, plus rules and header."""
    total = sum(widths)
    per_line = [max(LINE_CHARACTERS * w / total - 2, 1) for w in widths]
    rows = max((len(cells) for cells in texts), default=0)
    height = 2
    for r in range(rows):
        height += max(
            math.ceil(max(len(cells[r]), 1) / per_line[c]) + cells[r].count("\n")
            for c, cells in enumerate(texts)
            if r < len(cells)
        )
    return height


def _code_lines(node: nodes.Node | None) -> int:
    """Lines of the code block right after a table (alone, or first in its container)."""
    if isinstance(node, nodes.container):
        node = node.children[0] if node.children else None
    if isinstance(node, nodes.literal_block):
        return node.astext().count("\n") + 3
    return 0


def lay_out_tables(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Widths for every table; long ones break across pages, short ones stay whole."""
    for table in list(doctree.findall(nodes.table)):
        if _inside(table, (nodes.table,)):
            continue
        specs, cells = _columns(table)
        if not specs:
            continue
        texts = [[entry.astext() for entry in column] for column in cells]
        minimum = _minimums(cells)
        classes = table["classes"]
        if "colwidths-auto" in classes or not all("colwidth" in s for s in specs):
            widths = _fitted(_measured(texts, minimum), minimum)
            if "colwidths-auto" in classes:
                classes.remove("colwidths-auto")
        else:
            widths = _fitted([spec["colwidth"] for spec in specs], minimum)
        for spec, width in zip(specs, widths, strict=True):
            spec["colwidth"] = round(width * 10)  # Sphinx writes \X{width}{total} as integers
        if "colwidths-given" not in classes:
            classes.append("colwidths-given")
        height = _height(widths, texts)
        if height > KEEP_TOGETHER_LINES and not _inside(table, NO_LONGTABLE_INSIDE):
            if "longtable" not in classes:
                classes.append("longtable")
            continue
        following = table.next_node(descend=False, siblings=True)
        lines = min(height + _code_lines(following), 50)
        table.parent.insert(table.parent.index(table), raw(rf"\needspace{{{lines}\baselineskip}}"))


def setup(app: Sphinx) -> None:
    app.add_node(long_link, latex=(visit_long_link, depart_long_link))
    app.add_post_transform(QuietLongLinks)
    # After the handlers that fill tables in at doctree-resolved (maintenance, quickref).
    app.connect("doctree-resolved", latex_only(captions_as_parts), priority=900)
    app.connect("doctree-resolved", latex_only(runbooks_on_new_pages), priority=900)
    app.connect("doctree-resolved", latex_only(break_long_words), priority=900)
    app.connect("doctree-resolved", latex_only(separate_adjacent_links), priority=900)
    app.connect("doctree-resolved", latex_only(lay_out_tables), priority=900)
