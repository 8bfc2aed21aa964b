"""The PDF carries the whole handbook: every runbook, every alert, every tab, the snippets.

Builds the PDF the way ``tox -e pdf`` does (Sphinx's LaTeX builder, warnings as
errors) and reads its text back with pypdf. Needs TeX (``.ci/run`` installs it):
without it the test is skipped, except under CI where that is a failure.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from handbook import snippet as snippets
from handbook.paths import DOCS, ROOT, SNIPPETS
from handbook.prometheus import alerts
from handbook.pytest_plugin import unavailable
from handbook.unverified import TEX_PACKAGES

WRAP = "\u02d3\u2192"  # the mark Sphinx's LaTeX puts where a long code line wraps
TAB_ITEM = re.compile(r"^\s*:{3,}\{tab-item\}\s+(?P<label>.+?)\s*$", re.MULTILINE)


def normalise(text: str) -> str:
    """Text as pypdf extracts it, without what wrapping and page breaks add inside code."""
    text = re.sub(r"\(continues on next page\).*?\(continued from previous page\)", "", text,
                  flags=re.DOTALL)  # fmt: skip
    text = (
        text.replace(WRAP, "").replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    )
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def pdf_text(tmp_path_factory, site_tools) -> tuple[str, PdfReader]:
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
    pdf = out / "latex" / "erpgo-handbook.pdf"
    assert result.returncode == 0 and pdf.exists(), (
        f"tox -e pdf fails:\n{result.stderr[-3000:]}\n{result.stdout[-3000:]}"
    )
    reader = PdfReader(pdf)
    return "\n".join(page.extract_text() for page in reader.pages), reader


def title_of(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise AssertionError(f"{page.relative_to(ROOT)}:1: no '# Title' line")


def test_title_page_and_table_of_contents(pdf_text):
    text, reader = pdf_text
    first = reader.pages[0].extract_text()
    assert "ERPGo Operations Handbook" in first, f"title page reads {first!r}"
    runbooks = DOCS / "runbooks" / "index.md"
    assert title_of(runbooks) in text


def test_every_body_page_shows_its_page_number(pdf_text):
    _, reader = pdf_text
    labels = reader.page_labels
    # The title page comes first; the table of contents is numbered i, ii...; the body 1, 2...
    body = next(i for i, label in enumerate(labels) if not label.isdigit())
    unnumbered = [
        f"PDF page {index + 1} (label {label})"
        for index, (label, page) in enumerate(zip(labels, reader.pages, strict=True))
        if index > body
        and label.isdigit()
        and not re.search(rf"(^|\s){label}(\s|$)", page.extract_text())
    ]
    assert sum(label.isdigit() for label in labels) > 10, f"page labels: {labels}"
    assert not unnumbered, "pages without their number:\n" + "\n".join(unnumbered)


def test_long_code_lines_wrap_inside_the_page(pdf_text):
    text, _ = pdf_text
    longest = max((line for _, line in all_lines()), key=len)
    assert len(longest) > 90, "no snippet line is long enough to need wrapping"
    assert WRAP in text, f"a {len(longest)}-character line shows no wrap mark: {longest!r}"


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
