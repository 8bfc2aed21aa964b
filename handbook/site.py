"""Building the handbook's site the way ``tox -e docs`` does, and what that needs.

The build needs nothing outside Python: the diagrams are drawn by Debian's Graphviz
where ``dot`` is on PATH, else by ``graphviz-pure`` from the ``docs`` dependency group
(``handbook/sphinxext/diagrams.py`` says why).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
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


# Where the tests keep a build between runs (build_kept): one directory per cache_key().
KEPT = Path("build") / "site-cache"


def cache_key(root: Path) -> str:
    """What a kept build is valid for. Sphinx re-reads a page when the page or a file it
    noted changes; it cannot know that the code drawing the pages changed. So the key is
    that code (``handbook/``, ``docs/conf.py``), what it renders from beside the pages
    (``conf/``), and the versions of every installed package."""
    digest = hashlib.sha256(sys.version.encode())
    files = [*(root / "handbook").rglob("*.py"), root / "docs" / "conf.py",
             *(root / "conf").rglob("*")]  # fmt: skip
    for path in sorted(p for p in files if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    dists = importlib.metadata.distributions()
    for dist in sorted(f"{d.metadata['Name']}=={d.version}" for d in dists):
        digest.update(dist.encode())
    return digest.hexdigest()[:16]


def build_kept(root: Path, out: Path) -> subprocess.CompletedProcess:
    """:func:`build`, brought up to date from the last one kept under ``build/site-cache/``,
    then copied to ``out``: after a one-page edit and a test run, Sphinx reads that page
    again and re-writes the pages whose test results changed (handbook.sphinxext.reportview),
    not the whole book. A failed build is dropped, so its warnings come back next time; one
    process builds at a time (a lock), and ``out`` is the copy of a finished build only."""
    from filelock import FileLock  # the tests' dependency; the docs build does not need it

    kept_root = root / KEPT
    kept_root.mkdir(parents=True, exist_ok=True)
    with FileLock(kept_root / "lock"):
        key = cache_key(root)
        for other in kept_root.iterdir():
            if other.is_dir() and other.name != key:
                shutil.rmtree(other, ignore_errors=True)  # built by other code: never valid again
        kept = kept_root / key
        result = build(root, kept)
        if result.returncode != 0:
            shutil.rmtree(kept, ignore_errors=True)
        else:
            shutil.copytree(kept, out, ignore=shutil.ignore_patterns(".doctrees"))
    return result


def build_shared(root: Path, shared: Path) -> Path | str:
    """:func:`build_kept` of ``root`` into ``shared/site`` unless a process of this run already did
    (the test run's xdist workers share ``shared``): the site's path, or the failed
    build's warnings, which every process that asks gets."""
    from filelock import FileLock  # the tests' dependency; the docs build does not need it

    out, failed = shared / "site", shared / "site-build-failed.txt"
    with FileLock(shared / "site.lock"):
        if not out.exists() and not failed.exists():
            partial = shared / "site-building"  # renamed once whole: never half a site
            result = build_kept(root, partial)
            if result.returncode != 0:
                failed.write_text(result.stderr, encoding="utf-8")
            else:
                partial.rename(out)
    return failed.read_text(encoding="utf-8") if failed.exists() else out
