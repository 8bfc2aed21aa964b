"""Temp dirs that hold a local server's files, and the sweep for abandoned ones.

Each dir is ``$TMPDIR/handbook-<kind>-XXXX`` and carries ``handbook-owner.json``: the
pid and start time of the Python process that made it, plus the server pid once known.
A process killed with SIGKILL cannot clean up; ``reap_stale()`` (run when a pool is
made) stops the servers such a process left and removes their dirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

PREFIX = "handbook-"
MARKER = "handbook-owner.json"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a live owner from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def terminate(pid: int, first: signal.Signals, grace: float = 10.0) -> None:
    """Send ``first``, then SIGKILL if ``pid`` is still there after ``grace`` seconds."""
    for signum, wait in ((first, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        if wait_gone(pid, wait):
            return


def make(kind: str) -> Path:
    """A fresh temp dir for one server (or one copied install), with its owner marker."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-"))
    record(path, kind=kind, owner_pid=os.getpid(), owner_start=process_start_time(os.getpid()))
    return path


def record(path: Path, **fields: object) -> None:
    """Add ``fields`` (e.g. ``server_pid``) to the dir's owner marker."""
    marker = path / MARKER
    data = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(marker.read_text())
    data.update(fields)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(marker)


def remove(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def _server_pids(path: Path, data: dict) -> list[int]:
    pids = []
    if isinstance(data.get("server_pid"), int):
        pids.append(data["server_pid"])
    # PostgreSQL writes its pid before the provider gets to record it.
    with contextlib.suppress(OSError, ValueError, IndexError):
        pids.append(int((path / "data" / "postmaster.pid").read_text().split()[0]))
    return sorted(set(pids))


def _runs_in(pid: int, path: Path) -> bool:
    """Both PostgreSQL and Redis chdir into their dir: check the cwd, not the name."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return cwd == str(path) or cwd.startswith(f"{path}/")


def reap_stale(base: Path | None = None) -> list[Path]:
    """Stop servers whose owning process is gone and remove their dirs; returns the dirs."""
    base = Path(base or tempfile.gettempdir())
    reaped = []
    for path in base.glob(f"{PREFIX}*"):
        try:
            data = json.loads((path / MARKER).read_text())
        except (OSError, ValueError):
            continue
        owner = data.get("owner_pid")
        if not isinstance(owner, int):
            continue
        if process_alive(owner) and process_start_time(owner) == data.get("owner_start"):
            continue
        for pid in _server_pids(path, data):
            if _runs_in(pid, path):
                terminate(pid, signal.SIGQUIT if data.get("kind") == "pg" else signal.SIGTERM, 3)
        remove(path)
        reaped.append(path)
    return reaped
