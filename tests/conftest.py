"""Fixtures several test modules share: the real site, built once per test run."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from handbook.paths import ROOT
from handbook.pytest_plugin import unavailable
from handbook.site import build_shared, missing_tool


@pytest.fixture(scope="session")
def site_tools() -> None:
    """What the site build needs beyond Python is here (else: skip, a failure under CI)."""
    missing = missing_tool()
    if missing:
        unavailable(missing)


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
        yield pool.submit(build_shared, ROOT, _shared_dir(request, tmp_path_factory))


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
        out = build_shared(ROOT, _shared_dir(request, tmp_path_factory))
    assert isinstance(out, Path), f"the site does not build (tox -e docs):\n{out}"
    return out
