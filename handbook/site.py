"""Building the handbook's site the way ``tox -e docs`` does, for tests that read the output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def build(root: Path, out: Path) -> subprocess.CompletedProcess:
    """Build ``root/docs`` as HTML into ``out`` with warnings as errors; never raises."""
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
         "-d", str(out / ".doctrees"), str(root / "docs"), str(out)],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
