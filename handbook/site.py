"""Building the handbook's site the way ``tox -e docs`` does, and what that needs.

The build needs nothing outside Python: the diagrams are drawn by Debian's Graphviz
where ``dot`` is on PATH, else by ``graphviz-pure`` from the ``docs`` dependency group
(``handbook/sphinxext/diagrams.py`` says why).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# Where the site is published: docs/conf.py's html_baseurl, and the base of every
# alert's runbook_url in conf/prometheus/alert_rules.yml.
DEFAULT_BASE_URL = "https://docs.erpgo.com/handbook/"
SYSTEM_DOT = "dot"  # Graphviz's command (apt-get install graphviz), Sphinx's default
PURE_DOT = "graphviz-pure"  # PyPI graphviz-pure: the same flags, installed under this name
DOT_INSTALL_HINT = (
    "apt-get install graphviz, or pip install graphviz-pure "
    "(in the docs dependency group: tox -e docs installs it)"
)


def base_url() -> str:
    """Where the handbook is published: ``$HANDBOOK_BASE_URL`` or :data:`DEFAULT_BASE_URL`."""
    url = os.environ.get("HANDBOOK_BASE_URL") or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def pure_dot() -> str | None:
    """The ``graphviz-pure`` command of this Python's environment (or on PATH), or None.

    pip puts it beside this interpreter, which is not on PATH when a venv's Python is
    run by its path (``.venv/bin/python -m sphinx``) rather than activated.
    """
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory) / PURE_DOT
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(PURE_DOT)


def dot_program() -> str | None:
    """The program that draws the diagrams here: Debian's ``dot`` first, else graphviz-pure."""
    if shutil.which(SYSTEM_DOT):
        return SYSTEM_DOT
    return pure_dot()


def missing_tool() -> str | None:
    """Why the site cannot be built here, or None when it can."""
    if dot_program() is None:
        return f"no program draws the diagrams (dot, graphviz-pure): {DOT_INSTALL_HINT}"
    return None


def build(root: Path, out: Path, builder: str = "html") -> subprocess.CompletedProcess:
    """Build ``root/docs`` as HTML into ``out`` with warnings as errors; never raises.
    ``builder="dummy"`` reads, checks and resolves everything but writes no page: half
    the time, for a check that a broken copy fails."""
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", builder,
         "-d", str(out / ".doctrees"), str(root / "docs"), str(out)],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
