"""Sphinx configuration for the ERPGo Operations Handbook (logic lives in ``handbook``)."""

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
# Where the site is published; the alert rules link to pages under it.
html_baseurl = base_url()  # $HANDBOOK_BASE_URL, or the default in handbook/site.py
graphviz_output_format = "svg"

# Copy commands only: never a prompt or program output highlighted by the lexer.
copybutton_exclude = ".linenos, .gp, .go"

# -- PDF (tox -e pdf: docs/_build/latex/erpgo-handbook.pdf) -----------------------------
# pdflatex with the TeX packages .ci/run installs (README.md lists them), Sphinx's default fonts.
latex_documents = [("index", "erpgo-handbook.tex", project, author, "manual")]
latex_elements = {
    "papersize": "a4paper",
    "pointsize": "10pt",
    # Characters the pages use that pdflatex does not map by itself.
    "preamble": r"""
\DeclareUnicodeCharacter{2192}{\ensuremath{\rightarrow}}
\DeclareUnicodeCharacter{00D7}{\ensuremath{\times}}
\DeclareUnicodeCharacter{2264}{\ensuremath{\leq}}
\DeclareUnicodeCharacter{2265}{\ensuremath{\geq}}
\DeclareUnicodeCharacter{2248}{\ensuremath{\approx}}
""",
    # Long commands wrap inside the code frame instead of running off the page.
    "sphinxsetup": "verbatimwrapslines=true, verbatimforcewraps=true, verbatimmaxunderfull=0",
}
latex_show_urls = "footnote"
