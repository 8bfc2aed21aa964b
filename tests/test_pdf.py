"""The PDF carries the whole handbook, and shows all of it: nothing cut, nothing off the page.

Builds the PDF the way ``tox -e pdf`` does (Sphinx's LaTeX builder, warnings as
errors), then reads it back three ways: pdflatex's log (overfull boxes), pypdf's text
(every runbook, alert, tab, snippet, option, metric and requirement), and pypdf's
text with positions (nothing below the footer, no blank page, each alert's rule and
expression on one page, the contents page's title, the version on the title page,
page numbers on cross-references). The page layout those
checks hold is handbook/sphinxext/latex.py and docs/_static/handbook-pdf.sty. The run
leaves three pages as PNGs in build/artefacts/ for a reviewer. Needs TeX (``.ci/run``
installs it) and pdftoppm (poppler-utils): without them the tests are skipped,
except under CI where that is a failure.
"""

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pytest
from pypdf import PageObject, PdfReader

from handbook import snippet as snippets
from handbook.confcheck import config_catalogue
from handbook.guide import requirements
from handbook.paths import BUILD, DOCS, ROOT, SNIPPETS, rel
from handbook.prometheus import alerts, metrics
from handbook.pytest_plugin import unavailable
from handbook.unverified import TEX_PACKAGES

# The PDF is the whole book, built in one go (about half a minute): a page's verification
# (pytest docs/x.md) leaves it to the full run and to tox -e pdf.
pytestmark = pytest.mark.whole_run("builds the whole book as one PDF")

WRAP = "\u02d3\u2192"  # the mark Sphinx's LaTeX puts where a long code line wraps
VISIBLE_SPACE = "\u2423"  # ... and the mark it leaves at the end of a line wrapped at a space
TAB_ITEM = re.compile(r"^\s*:{3,}\{tab-item\}\s+(?P<label>.+?)\s*$", re.MULTILINE)
ARTEFACTS = BUILD / "artefacts"  # page images a reviewer looks at without building
LAYOUT = "handbook/sphinxext/latex.py"  # where table widths and page breaks are decided

# An overfull box up to this wide (or high) is allowed: where Sphinx breaks a framed
# code block across pages, the part before the break overruns the text block by the
# frame's bottom padding and rule (3 pt + 0.4 pt: 3.45 pt measured), which no reader
# can see. Everything the issue saw was wider: table cells running into their
# neighbours (7 to 139 pt), tables running past the footer (287 and 491 pt).
MAX_OVERFULL_PT = 4.0
OVERFULL = re.compile(
    r"^Overfull \\(?P<box>[hv])box \((?P<size>[0-9.]+)pt too (?:wide|high)\) "
    r"(?:in paragraph at lines (?P<first>\d+)--\d+|detected at line (?P<line>\d+))"
)
DOC_LABEL = re.compile(r"\\label\{\\detokenize\{(?P<doc>[^}]+)::doc\}\}")
# Text whose baseline is less than this far above the footer's baseline is past the
# body: the text block ends a \footskip (about 30 pt) above the footer line, so only
# text that ran out of the text block gets closer than half that.
FOOTER_CLEARANCE_PT = 15.0


def normalise(text: str) -> str:
    """Text as pypdf extracts it, without what wrapping and page breaks add inside code."""
    text = re.sub(r"\(continues on next page\).*?\(continued from previous page\)", "", text,
                  flags=re.DOTALL)  # fmt: skip
    text = (
        text.replace(WRAP, "")
        .replace(VISIBLE_SPACE, "")
        .replace("\u2019", "'")
        .replace("\u201c", '"')
        .replace("\u201d", '"')
    )
    return re.sub(r"\s+", "", text)


@dataclass(frozen=True)
class Run:
    """A piece of text as the page draws it: where its baseline starts, how big."""

    x: float
    y: float
    size: float
    text: str


@dataclass
class Built:
    pdf: Path
    log: Path  # pdflatex's log of its last run
    tex: Path
    reader: PdfReader
    text: str  # every page's text, as pypdf extracts it
    pages: list[str]  # each page's text, extracted once (pypdf takes seconds for the book)
    positioned: dict[int, list[Run]] = field(default_factory=dict)

    def runs(self, index: int) -> list[Run]:
        """Page ``index``'s text with positions (read once: pypdf takes its time)."""
        if index not in self.positioned:
            self.positioned[index] = runs(self.reader.pages[index])
        return self.positioned[index]

    def label(self, index: int) -> str:
        return self.reader.page_labels[index]

    def index_of(self, label: str) -> int:
        return self.reader.page_labels.index(label)


def runs(page: PageObject) -> list[Run]:
    """The page's text with positions (pypdf's visitor: the text matrix times the CTM).

    Only text in the page's own fonts: a diagram is a form XObject whose text pypdf
    reports in the diagram's coordinates, not the page's; TeX placed the diagram as one
    box, which the overfull check covers.
    """
    fonts = (page.get("/Resources") or {}).get("/Font") or {}
    own = {ref.idnum for ref in fonts.values() if hasattr(ref, "idnum")}
    found: list[Run] = []

    def visit(text, cm, tm, font, size) -> None:
        ref = getattr(font, "indirect_reference", None)
        if text.strip() and ref is not None and ref.idnum in own:
            _, _, c, d, e, f = tm
            x = e * cm[0] + f * cm[2] + cm[4]
            y = e * cm[1] + f * cm[3] + cm[5]
            found.append(Run(x, y, abs(size * (c * cm[1] + d * cm[3])) or size, text))

    page.extract_text(visitor_text=visit)
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory, site_tools) -> Built:
    missing = [name for name in ("latexmk", "pdflatex") if shutil.which(name) is None]
    if missing:
        unavailable(
            f"TeX is not installed ({', '.join(missing)} not on PATH): "
            f"apt-get install --no-install-recommends {TEX_PACKAGES}"
        )
    out = tmp_path_factory.mktemp("pdf")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-M", "latexpdf", str(DOCS), str(out),
         "-W", "--keep-going", "-n", "-q"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    latex = out / "latex"
    pdf = latex / "erpgo-handbook.pdf"
    assert result.returncode == 0 and pdf.exists(), (
        f"tox -e pdf fails:\n{result.stderr[-3000:]}\n{result.stdout[-3000:]}"
    )
    reader = PdfReader(pdf)
    pages = [page.extract_text() for page in reader.pages]
    return Built(
        pdf, latex / "erpgo-handbook.log", latex / "erpgo-handbook.tex", reader, "\n".join(pages),
        pages,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pdf_text(built) -> tuple[str, PdfReader]:
    return built.text, built.reader


def title_of(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise AssertionError(f"{page.relative_to(ROOT)}:1: no '# Title' line")


def test_title_page_and_table_of_contents(built):
    text = built.text
    first = built.pages[0]
    assert "ERPGo Operations Handbook" in first, f"title page reads {first!r}"
    runbooks = DOCS / "runbooks" / "index.md"
    assert title_of(runbooks) in text


def test_every_body_page_shows_its_page_number(built):
    labels = built.reader.page_labels
    # The title page comes first; the table of contents is numbered i, ii...; the body 1, 2...
    body = next(i for i, label in enumerate(labels) if not label.isdigit())
    unnumbered = [
        f"PDF page {index + 1} (label {label})"
        for index, (label, page) in enumerate(zip(labels, built.pages, strict=True))
        if index > body and label.isdigit() and not re.search(rf"(^|\s){label}(\s|$)", page)
    ]
    assert sum(label.isdigit() for label in labels) > 10, f"page labels: {labels}"
    assert not unnumbered, "pages without their number:\n" + "\n".join(unnumbered)


def test_long_code_lines_wrap_inside_the_page(pdf_text):
    text, _ = pdf_text
    where, longest = max(all_lines() + shown_conf_lines(), key=lambda found: len(found[1]))
    assert len(longest) > 90, "no line a page shows is long enough to need wrapping"
    assert WRAP in text, f"{where}: a {len(longest)}-character line shows no wrap mark"
    assert normalise(longest) in normalise(text), f"{where}: {longest!r} is not whole in the PDF"


CONF_PATH = re.compile(r"\bconf/[\w./-]+\w")


def shown_conf_lines() -> list[tuple[str, str]]:
    """The lines of every file under conf/ a page names (and shows: the snippets' rule)."""
    names = {
        match.group(0)
        for page in DOCS.rglob("*.md")
        if "_build" not in page.parts
        for match in CONF_PATH.finditer(page.read_text(encoding="utf-8"))
    }
    files = sorted(ROOT / name for name in names if (ROOT / name).is_file())
    return [(rel(f), line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]


def all_lines() -> list[tuple[str, str]]:
    return [
        (snippets.parse(path).name, line)
        for path in sorted(SNIPPETS.rglob("*"))
        if path.suffix in snippets.KINDS and path.parent.name != "migrations"
        for line in snippets.parse(path).body().splitlines()
    ]


@pytest.mark.parametrize("page", sorted((DOCS / "runbooks").glob("*.md")), ids=lambda p: p.stem)
def test_every_runbook_title_is_in_the_pdf(pdf_text, page):
    text, _ = pdf_text
    assert normalise(title_of(page)) in normalise(text), (
        f"{page.relative_to(ROOT)}: title {title_of(page)!r} is not in the PDF"
    )


@pytest.mark.parametrize("alert", alerts.load_rules(), ids=lambda a: a.name)
def test_every_alert_name_is_in_the_pdf(pdf_text, alert):
    text, _ = pdf_text
    assert normalise(alert.name) in normalise(text), f"{alert.location}: not in the PDF"


def tab_labels() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        if "_build" in page.parts:
            continue
        for match in TAB_ITEM.finditer(page.read_text(encoding="utf-8")):
            found.append((str(page.relative_to(ROOT)), match["label"]))
    return found


def test_every_tab_of_every_tab_set_is_in_the_pdf(pdf_text):
    text, _ = pdf_text
    labels = tab_labels()
    assert labels, "no tab sets found: the check would prove nothing"
    missing = [f"{page}: tab {label!r}" for page, label in labels if normalise(label) not in (
        normalise(text))]  # fmt: skip
    assert not missing, "tabs missing from the PDF:\n" + "\n".join(missing)


def sample_lines() -> list[tuple[str, str]]:
    """The first substantial body line of every snippet a page shows."""
    sample = []
    for path in sorted(SNIPPETS.rglob("*")):
        if path.suffix not in snippets.KINDS or path.parent.name == "migrations":
            continue
        snippet = snippets.parse(path)
        for line in snippet.body().splitlines():
            if len(line.strip()) >= 12 and not line.strip().startswith(("#", "--")):
                sample.append((snippet.name, line.strip()))
                break
    return sample


def test_included_snippet_lines_are_in_the_pdf(pdf_text):
    text, _ = pdf_text
    flat = normalise(text)
    sample = sample_lines()
    assert len(sample) >= 5, "too few snippets to sample"
    missing = [f"{name}: {line!r}" for name, line in sample if normalise(line) not in flat]
    assert not missing, "snippet lines missing from the PDF:\n" + "\n".join(missing)


def test_diagrams_are_embedded_as_images(pdf_text):
    _, reader = pdf_text
    sources = [p for p in DOCS.rglob("*.md") if "{graphviz}" in p.read_text(encoding="utf-8")]
    assert sources, "no page has a {graphviz} diagram: the architecture page should show one"
    images = sum(len(page.images) for page in reader.pages) + sum(
        1
        for page in reader.pages
        for obj in (page.get("/Resources", {}) or {}).get("/XObject", {}).values()
        if obj.get_object().get("/Subtype") == "/Form"
    )
    assert images >= len(sources), f"{len(sources)} pages have diagrams, the PDF has {images}"


# -- Nothing cut, nothing off the page ---------------------------------------------------------


def source_page(tex: list[str], line: int) -> str:
    """The page (docs/*.md) the LaTeX at ``line`` comes from: the last page label above it."""
    doc = "index"
    for number, text in enumerate(tex[:line], start=1):
        match = DOC_LABEL.search(text)
        if match and number <= line:
            doc = match["doc"]
    return f"docs/{doc}.md"


def test_no_overfull_box_wider_than_a_few_points(built):
    tex = built.tex.read_text(encoding="utf-8").splitlines()
    log = built.log.read_text(encoding="utf-8", errors="replace").splitlines()
    found: dict[tuple[str, str, str], str] = {}
    sizes = []
    for number, line in enumerate(log):
        match = OVERFULL.match(line)
        if not match:
            continue
        sizes.append(float(match["size"]))
        if float(match["size"]) <= MAX_OVERFULL_PT:
            continue
        at = int(match["first"] or match["line"])
        shown = log[number + 1].strip() if number + 1 < len(log) else ""
        key = (match["box"], match["size"], shown)  # "in paragraph" and "detected at" alike
        found[key] = (
            f"{source_page(tex, at)} (erpgo-handbook.tex:{at}): overfull \\{match['box']}box, "
            f"{match['size']} pt: {shown[:90]!r}"
        )
    assert sizes or "Output written" in "\n".join(log), f"{built.log}: not pdflatex's log"
    assert not found, (
        f"{len(found)} boxes overrun the page by more than {MAX_OVERFULL_PT} pt (a table cell "
        "cut or running into its neighbour, a line into the margin, a table past the footer). "
        f"Give the table column room or let the table break ({LAYOUT}), or give the text a "
        "place to break (docs/_static/handbook-pdf.sty):\n" + "\n".join(sorted(found.values()))
    )


def footer_line(built: Built) -> float:
    """The footer's baseline: the height, the same on every page, of the page numbers."""
    heights: dict[float, int] = {}
    for index in range(len(built.reader.pages)):
        label = built.label(index)
        numbers = [r.y for r in built.runs(index) if re.search(rf"(^|\s){label}$", r.text.strip())]
        if numbers:
            y = round(min(numbers), 1)
            heights[y] = heights.get(y, 0) + 1
    assert heights, "no page shows its number: the footer is gone"
    return max(heights, key=heights.get)


def test_nothing_below_the_footer_or_off_the_page(built):
    footer = footer_line(built)
    past = []
    for index, page in enumerate(built.reader.pages):
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        page_runs = built.runs(index)
        on_footer = [r for r in page_runs if abs(r.y - footer) <= 1]
        where = " / ".join(r.text.strip() for r in on_footer) or "no footer"
        out = [
            run
            for run in page_runs
            if run.y < footer - 1
            or footer + 1 < run.y < footer + FOOTER_CLEARANCE_PT
            or not (0 <= run.x <= width and 0 <= run.y <= height)
        ]
        if out:
            lowest = min(out, key=lambda run: run.y)
            past.append(
                f"page {built.label(index)} ({where}): {len(out)} pieces of text, the first "
                f"{out[0].text.strip()[:50]!r} at y={out[0].y:.0f} pt, the lowest at "
                f"y={lowest.y:.0f} pt; the footer line is at y={footer:.0f} pt"
            )
    assert not past, (
        "content past the footer or off the page: a table or box that does not break "
        f"across pages (see KEEP_TOGETHER_LINES and the longtable rule in {LAYOUT}):\n"
        + "\n".join(past)
    )


def visible_text(built: Built) -> str:
    """The text drawn inside the page and above the footer, hyphenated words joined."""
    footer = footer_line(built)
    pieces = []
    for index, page in enumerate(built.reader.pages):
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        for run in built.runs(index):
            if 0 <= run.x <= width and footer + FOOTER_CLEARANCE_PT <= run.y <= height:
                pieces.append(run.text)
    return normalise(re.sub(r"(?<=[a-z])-\s*\n\s*(?=[a-z])", "", "\n".join(pieces)))


def table_names() -> list[tuple[str, str, str]]:
    """(file:line, name, the table that shows it): read as the sphinxext modules read them."""
    catalogue, _ = config_catalogue.load_all(config_catalogue.CATALOGUE)
    names = [
        (f"{rel(config_catalogue.CATALOGUE)}:{option.line}", name, "{configuration-reference}")
        for name, option in catalogue.options.items()
    ]
    metric_catalogue = metrics.load_metric_catalogue(metrics.METRIC_CATALOGUE)
    names += [
        (f"{rel(metrics.METRIC_CATALOGUE)}:{metric.line}", name, "{metric-catalogue}")
        for name, metric in metric_catalogue.metrics.items()
    ]
    source = Path(requirements.__file__)
    lines = source.read_text(encoding="utf-8").splitlines()
    for requirement in requirements.REQUIREMENTS:
        line = next(n for n, text in enumerate(lines, 1) if f'"{requirement.id}"' in text)
        names.append((f"{rel(source)}:{line}", requirement.id, "{requirement-trace}"))
    return names


def test_every_option_metric_and_requirement_is_whole_on_the_page(built):
    names = table_names()
    assert len(names) > 60, f"only {len(names)} names read from conf/ and the requirements"
    shown = visible_text(built)
    cut = [
        f"{where}: {name} ({table})" for where, name, table in names if normalise(name) not in shown
    ]
    assert not cut, (
        "not whole on any page of the PDF (cut in its cell, or on a row past the footer or "
        f"off the page): give its column room or let the table break ({LAYOUT}):\n" + "\n".join(cut)
    )


# -- What the front matter and the cross-references show ---------------------------------------


def test_contents_page_is_titled_contents(built):
    first = built.index_of("i")
    heading = max(built.runs(first), key=lambda run: run.size)
    assert heading.text.strip().lower() == "contents", (
        f"the contents page (page i) is titled {heading.text.strip()!r}: Sphinx names it "
        "after docs/index.md's first toctree caption; docs/_static/handbook-pdf.sty sets "
        "\\contentsname back to Contents"
    )


CAPTION = re.compile(r"^:caption:\s*(?P<caption>.+?)\s*$", re.MULTILINE)


def test_contents_list_each_toctree_caption_as_a_part(built):
    index = DOCS / "index.md"
    captions = CAPTION.findall(index.read_text(encoding="utf-8"))
    assert captions, f"{rel(index)}: no toctree :caption: to look for"
    contents = normalise(
        "".join(
            page
            for label, page in zip(built.reader.page_labels, built.pages, strict=True)
            if not label.isdigit()  # the contents pages: i, ii...
        )
    )
    missing = [c for c in captions if normalise(c) not in contents]
    assert not missing, (
        f"{rel(index)}: toctree captions missing from the contents pages: {missing} "
        f"(each becomes a part: captions_as_parts in {LAYOUT})"
    )


def test_title_page_shows_the_version(built):
    expected = f"Version {version('erpgo-handbook')}"
    first = built.pages[0]
    assert normalise(expected) in normalise(first), (
        f"docs/conf.py: the title page reads {first!r}, without {expected!r} "
        "(release = the package's version, latex_elements['releasename'])"
    )


def runbook_pages() -> list[Path]:
    return sorted(p for p in (DOCS / "runbooks").glob("*.md") if p.name != "index.md")


def test_cross_references_show_the_page_they_point_at(built):
    flat = normalise(built.text)
    problems = []
    for page in runbook_pages():
        title = title_of(page)
        numbers = re.findall(re.escape(normalise(title)) + r"\(page(\w+)\)", flat)
        if not numbers:
            problems.append(
                f"{rel(page)}:1: no reference to {title!r} shows a page number "
                "(latex_show_pagerefs in docs/conf.py)"
            )
        for number in sorted(set(numbers)):
            target = built.pages[built.index_of(number)]
            if normalise(title) not in normalise(target):
                problems.append(f"{rel(page)}:1: a reference says {title!r} is on page {number}")
    assert not problems, "\n".join(problems)


# -- Pages a reviewer can look at without building ---------------------------------------------


def heading_page(built: Built, title: str) -> int:
    """The page where ``title`` is a heading (text bigger than the body's 10 pt)."""
    for index in range(len(built.reader.pages)):
        runs_ = built.runs(index)
        if any(normalise(title) in normalise(run.text) and run.size > 11 for run in runs_):
            return index
    raise AssertionError(f"no page has {title!r} as a heading")


def densest_table_page(built: Built) -> int:
    """The page of the configuration reference's table with the most option names.

    (Not a page of an environment file, which names them too, as ``NAME=value``.)
    """
    catalogue, _ = config_catalogue.load_all(config_catalogue.CATALOGUE)
    texts = [normalise(page) for page in built.pages]

    def in_table(index: int) -> int:
        return sum(n in texts[index] and f"{n}=" not in texts[index] for n in catalogue.options)

    return max(range(len(texts)), key=in_table)


def test_page_images_for_review(built):
    """build/artefacts/: the title page, the first runbook's first page, a long table's page."""
    if shutil.which("pdftoppm") is None:
        unavailable(
            "pdftoppm is not installed (the PDF's page images): apt-get install poppler-utils"
        )
    first_runbook = min(heading_page(built, title_of(page)) for page in runbook_pages())
    pages = {"pdf-title.png": 0, "pdf-runbook.png": first_runbook}
    pages["pdf-table.png"] = densest_table_page(built)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for name, index in pages.items():
        target = ARTEFACTS / name
        subprocess.run(
            ["pdftoppm", "-png", "-r", "80", "-singlefile", "-f", str(index + 1), "-l",
             str(index + 1), str(built.pdf), str(target.with_suffix(""))],
            check=True, capture_output=True,
        )  # fmt: skip
        assert target.stat().st_size > 10_000, f"{rel(target)}: PDF page {index + 1} looks empty"


def test_every_alert_rule_and_its_expression_share_a_page(built):
    """A runbook's alert box (the rule's fields, then its expression) is not split."""
    pages = [normalise(page) for page in built.pages]
    split = [
        f"{alert.location}: {alert.name}'s expression is not whole on a page that names it"
        for alert in alerts.load_rules()
        if not any(normalise(alert.expr) in page and alert.name in page for page in pages)
    ]
    assert not split, (
        f"keep the alert's table and its expression together (\\needspace, {LAYOUT}):\n"
        + "\n".join(split)
    )


def test_no_blank_page(built):
    """Every page shows something besides its running head and its footer."""
    footer = footer_line(built)
    blank = []
    for index in range(len(built.reader.pages)):
        page_runs = built.runs(index)
        top = max((run.y for run in page_runs), default=0)
        head = [r for r in page_runs if abs(r.y - top) <= 1 and "Handbook" in r.text]
        body = [r for r in page_runs if abs(r.y - footer) > 1 and r not in head]
        if not body:
            blank.append(f"page {built.label(index)} (PDF page {index + 1})")
    assert not blank, (
        "blank pages (a two-sided layout's empty left pages? latex_elements"
        "['extraclassoptions'] in docs/conf.py):\n" + "\n".join(blank)
    )
