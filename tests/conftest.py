"""Fixtures several test modules share: the real site, built once per test run."""

from pathlib import Path

import pytest
from filelock import FileLock

from handbook.paths import ROOT
from handbook.pytest_plugin import unavailable
from handbook.site import build_kept, missing_tool


@pytest.fixture(scope="session")
def site_tools() -> None:
    """What the site build needs beyond Python is here (else: skip, a failure under CI)."""
    missing = missing_tool()
    if missing:
        unavailable(missing)


@pytest.fixture(scope="session")
def built_site(request, tmp_path_factory, site_tools) -> Path:
    """The handbook's HTML site, built from the working tree once per run: xdist workers
    share it (the run's temporary directory; the first worker to need it builds it, the
    others wait for it), since five test modules read it and a build is 20 s of a CPU.
    The build starts from the last one kept (handbook.site.build_kept): a page's run
    after a one-page edit reads that page, not the book."""
    shared = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # popen-gwN: the run's directory is its parent
        shared = shared.parent
    out, failed = shared / "site", shared / "site-build-failed.txt"
    with FileLock(shared / "site.lock"):
        if not out.exists() and not failed.exists():
            partial = shared / "site-building"  # renamed once whole: never half a site
            result = build_kept(ROOT, partial)
            if result.returncode != 0:
                failed.write_text(result.stderr, encoding="utf-8")
            else:
                partial.rename(out)
    assert not failed.exists(), (
        f"the site does not build (tox -e docs):\n{failed.read_text(encoding='utf-8')}"
    )
    return out
