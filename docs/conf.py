"""Sphinx configuration for the ERPGo Operations Handbook (logic lives in ``handbook``)."""

import os

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
# Where the site is published; the alert rules link to pages under it.
html_baseurl = os.environ.get("HANDBOOK_BASE_URL", "https://docs.erpgo.com/handbook/")
graphviz_output_format = "svg"

# Copy commands only: never a prompt or program output highlighted by the lexer.
copybutton_exclude = ".linenos, .gp, .go"
