"""Fixtures several test modules share: the real site, built once per test run."""

from concurrent.futures import ThreadPoolExecutor
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


def _build_shared(shared: Path) -> Path | str:
    """Build the site into ``shared/site`` unless a process of this run already did:
    the site's path, or the failed build's warnings."""
    out, failed = shared / "site", shared / "site-build-failed.txt"
    with FileLock(shared / "site.lock"):
        if not out.exists() and not failed.exists():
            partial = shared / "site-building"  # renamed once whole: never half a site
            result = build_kept(ROOT, partial)
            if result.returncode != 0:
                failed.write_text(result.stderr, encoding="utf-8")
            else:
                partial.rename(out)
    return failed.read_text(encoding="utf-8") if failed.exists() else out


def _shared_dir(request, tmp_path_factory) -> Path:
    shared = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # popen-gwN: the run's directory is its parent
        shared = shared.parent
    return shared


@pytest.fixture(scope="session", autouse=True)
def site_started(request, tmp_path_factory):
    """The site build, started in a thread as the run starts when a test here reads the
    site: it then overlaps the first tests (a page's run waited 6 s for it halfway)."""
    wanted = any("built_site" in getattr(i, "fixturenames", ()) for i in request.session.items)
    if not wanted or missing_tool():
        yield None
        return
    with ThreadPoolExecutor(1, thread_name_prefix="site-build") as pool:
        yield pool.submit(_build_shared, _shared_dir(request, tmp_path_factory))


@pytest.fixture(scope="session")
def built_site(request, tmp_path_factory, site_tools, site_started) -> Path:
    """The handbook's HTML site, built from the working tree once per run: xdist workers
    share it (the run's temporary directory; the first worker to need it builds it, the
    others wait for it), since five test modules read it and a build is 20 s of a CPU.
    The build starts from the last one kept (handbook.site.build_kept): a page's run
    after a one-page edit reads that page, not the book."""
    if site_started is not None:
        out = site_started.result()
    else:
        out = _build_shared(_shared_dir(request, tmp_path_factory))
    assert isinstance(out, Path), f"the site does not build (tox -e docs):\n{out}"
    return out
