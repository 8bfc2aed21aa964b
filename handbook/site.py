"""Building the handbook's site the way ``tox -e docs`` does, for tests that read the output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Where the site is published: docs/conf.py's html_baseurl, and the base of every
# alert's runbook_url in conf/prometheus/alert_rules.yml.
DEFAULT_BASE_URL = "https://docs.erpgo.com/handbook/"


def base_url() -> str:
    """Where the handbook is published: ``$HANDBOOK_BASE_URL`` or :data:`DEFAULT_BASE_URL`."""
    url = os.environ.get("HANDBOOK_BASE_URL") or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def build(root: Path, out: Path) -> subprocess.CompletedProcess:
    """Build ``root/docs`` as HTML into ``out`` with warnings as errors; never raises."""
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
         "-d", str(out / ".doctrees"), str(root / "docs"), str(out)],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
