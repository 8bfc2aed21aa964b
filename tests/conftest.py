"""Fixtures several test modules share: the real site, built once per test run."""

from pathlib import Path

import pytest

from handbook.paths import ROOT
from handbook.pytest_plugin import unavailable
from handbook.site import build, missing_tool


@pytest.fixture(scope="session")
def site_tools() -> None:
    """What the site build needs beyond Python is here (else: skip, a failure under CI)."""
    missing = missing_tool()
    if missing:
        unavailable(missing)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory, site_tools) -> Path:
    """The handbook's HTML site, built from the working tree."""
    out = tmp_path_factory.mktemp("site")
    result = build(ROOT, out)
    assert result.returncode == 0, f"the site does not build (tox -e docs):\n{result.stderr}"
    return out
