"""Sphinx configuration for the ERPGo Operations Handbook (logic lives in ``handbook``)."""

from importlib.metadata import version as package_version

from handbook.site import base_url

# -- Project ------------------------------------------------------------------
project = "ERPGo Operations Handbook"
author = "ERPGo platform team"
copyright = "2026, ERPGo platform team"

# -- Extensions -----------------------------------------------------------------
extensions = [
    "myst_parser",
    "sphinx_design",
    "sphinx_copybutton",
    "sphinx.ext.graphviz",
    "handbook.sphinxext",
    "handbook.sphinxext.benchmark",  # {benchmark-figures}: build/benchmark.json
]

# -- Sources ----------------------------------------------------------------------
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "untested-allowlist.toml"]
# Only syntax the pages use: colon fences nest tab sets (reference/schema.md).
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 0  # anchors are explicit "(name)=" targets, never heading slugs

# -- Checks -------------------------------------------------------------------------
# Warnings are errors: tox runs sphinx-build with -W --keep-going.
nitpicky = True

# -- HTML -----------------------------------------------------------------------------
html_theme = "furo"
html_title = project
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"
# The first-five-minutes box, snippet marks and badges, tables and code that fit the
# column, the diagram in dark mode (each rule says what it is for).
html_css_files = ["handbook.css"]
# Links out: $HANDBOOK_PROMETHEUS_URL, $HANDBOOK_GRAFANA_URL and $HANDBOOK_SOURCE_URL,
# with production's addresses as defaults (handbook/sphinxext/links.py).
# Where the site is published; the alert rules link to pages under it.
html_baseurl = base_url()  # $HANDBOOK_BASE_URL, or the default in handbook/site.py
graphviz_output_format = "svg"

# Copy commands only: never a prompt or program output highlighted by the lexer.
copybutton_exclude = ".linenos, .gp, .go"

# -- PDF (tox -e pdf: docs/_build/latex/erpgo-handbook.pdf) -----------------------------
# pdflatex with the TeX packages .ci/run installs (README.md lists them), Sphinx's default fonts.
# The layout of tables, parts and runbook pages is handbook/sphinxext/latex.py; the TeX side
# is docs/_static/handbook-pdf.sty. tests/test_pdf.py holds the PDF to both.
release = package_version("erpgo-handbook")  # the title page and each page head show it
latex_documents = [("index", "erpgo-handbook.tex", project, author, "manual")]
latex_additional_files = ["_static/handbook-pdf.sty"]
latex_show_pagerefs = True  # "(page 27)" after each cross-reference: paper has no links
latex_elements = {
    "papersize": "a4paper",
    "pointsize": "10pt",
    # One-sided: no blank page after the title or before a chapter.
    "extraclassoptions": "openany,oneside",
    "releasename": "Version",
    "preamble": r"\usepackage{handbook-pdf}",
    # Long code lines wrap at a space or punctuation; only a line with no such place
    # within reach is cut mid-token (verbatimforcewraps), so nothing runs off the frame.
    "sphinxsetup": "verbatimwrapslines=true, verbatimforcewraps=true, verbatimmaxoverfull=1",
}
latex_show_urls = "footnote"
