"""Child pytest runs that the tests start, signal, and wait for, each wait bounded.

A child that outlives its time is stopped (its whole session: the servers it started go
with it) and the test fails in one line naming what it waited for, instead of a bare
``TimeoutExpired`` and a ``subprocess.Popen`` left running into later tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# Time a stopped child has to clean up after SIGTERM before it gets SIGKILL.
GRACE = 10
# Plugins no child run here uses: importing hypothesis and pytest-examples costs about
# 1 s per pytest process (each xdist worker too), more than many of these runs take.
LEAN = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:examples")


def default_sigint() -> None:
    """Run in the child before exec: SIGINT back to its default.

    A process started with SIGINT ignored (an xdist worker, or a run started with ``&``
    from a script) passes SIG_IGN on to its children; Python then installs no
    KeyboardInterrupt handler and a Ctrl-C (``os.killpg(pid, SIGINT)``) does nothing.
    With SIG_DFL inherited, the child's Python installs its ``default_int_handler`` as a
    run from a terminal has.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_pytest(
    where: Path, name: str, text: str, *args: str, **env: str
) -> subprocess.Popen[str]:
    """``pytest -q where/name`` (``text`` written there) in a session of its own, so that
    a signal to its process group reaches what it started, as Ctrl-C in a terminal does."""
    test_file = where / name
    test_file.write_text(textwrap.dedent(text))
    cmd = [sys.executable, "-m", "pytest", *LEAN, "-p", "no:xdist", "-q",
           "--rootdir", str(where), *args, str(test_file)]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=where, env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=default_sigint,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> str:
    """Stop ``proc``'s session: SIGTERM (its servers get cleaned up), SIGKILL after GRACE s.
    What it printed (stdout, then stderr when kept apart)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=GRACE)
    except ProcessLookupError:
        out, err = proc.communicate()
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return (out or "") + (err or "")


def finish(proc: subprocess.Popen[str], timeout: float, what: str) -> str:
    """Wait for ``proc`` to end by itself; past ``timeout`` s stop it and fail saying so."""
    try:
        output, _ = proc.communicate(timeout=timeout)
        return output or ""
    except subprocess.TimeoutExpired:
        tail = stop(proc)[-2000:]
    pytest.fail(
        f"{what}: the child pytest (pid {proc.pid}) still ran after {timeout:.0f} s and was "
        f"killed; if it ignored a signal, see tests/childrun.py default_sigint. Its output:\n"
        f"{tail}",
        pytrace=False,
    )


def wait_for_report(report: Path, proc: subprocess.Popen[str], timeout: float, what: str):
    """The JSON the child writes to ``report`` once it is ready; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while not report.exists():
        if proc.poll() is not None:
            output = proc.communicate()[0] or ""
            pytest.fail(f"{what}: the child pytest ended first:\n{output[-3000:]}", pytrace=False)
        if time.monotonic() > deadline:
            tail = stop(proc)[-2000:]
            pytest.fail(
                f"{what}: no {report.name} after {timeout:.0f} s; the child was killed. "
                f"Its output:\n{tail}",
                pytrace=False,
            )
        time.sleep(0.05)
    settled = time.monotonic() + 5  # the file may be there before its last byte is
    while True:
        try:
            return json.loads(report.read_text())
        except ValueError:
            if time.monotonic() > settled:
                raise
            time.sleep(0.05)


def run_pytest(
    args: list[str], cwd: Path, timeout: float, what: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A real ``pytest ARGS`` in ``cwd``, to its end; past ``timeout`` s stopped and failed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *LEAN, *args],
        cwd=cwd, env=env if env is not None else dict(os.environ), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        tail = stop(proc)[-4000:]
        pytest.fail(
            f"{what}: `pytest {' '.join(args)}` in {cwd} still ran after {timeout:.0f} s and "
            f"was stopped. Its output:\n{tail}",
            pytrace=False,
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def path_without(program: str, directory: Path) -> str:
    """This PATH less one program: ``directory`` gets links to everything else on it."""
    directory.mkdir()
    for entry in os.environ["PATH"].split(os.pathsep):
        if not Path(entry).is_dir():
            continue
        for found in Path(entry).iterdir():
            link = directory / found.name
            if found.name != program and not link.is_symlink():
                link.symlink_to(found)
    return str(directory)


def one_pg() -> list[str]:
    """``-k`` for a child run with ``--pg local`` that needs one PostgreSQL, not each
    version: the other local versions' items are deselected, so their servers never
    start (about 5 s each). The newest is kept."""
    from handbook.servers import ServerPool

    labels = ServerPool(pg="local", redis="local", reap=False).labels("pg", required=False)
    return ["-k", " and ".join(f"not {label}" for label in labels[:-1])] if labels[1:] else []


def run_pytester(pytester: pytest.Pytester, *args: str, timeout: float = 300) -> pytest.RunResult:
    """``pytester.runpytest_subprocess`` with the LEAN plugins, bounded by ``timeout`` s:
    a child that hangs fails saying so, and is killed."""
    try:
        return pytester.runpytest_subprocess(*LEAN, *args, timeout=timeout)
    except pytester.TimeoutExpired:
        pytest.fail(
            f"`pytest {' '.join(args)}` in {pytester.path} still ran after {timeout:.0f} s and "
            "was killed (a snippet that hangs, or a server that never answered?)",
            pytrace=False,
        )
