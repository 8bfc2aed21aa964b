"""The process-wide list of things to undo at exit: running servers, temp dirs.

Every provider registers a stop action the moment it creates something (a temp dir, a
server process), and unregisters it once stopped. The list is run:

- at interpreter exit (``atexit``), which also covers pytest after Ctrl-C, since pytest
  turns SIGINT into ``KeyboardInterrupt`` and then exits normally;
- on SIGTERM and SIGHUP, which would otherwise kill Python without running ``atexit``
  (only installed when the signal still has its default disposition).

SIGKILL cannot be caught: ``scratch.reap_stale()`` removes what such a process left.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

_lock = threading.RLock()
_actions: dict[int, tuple[str, Callable[[], None]]] = {}
_counter = itertools.count(1)
_handled_signals: set[int] = set()


def register(what: str, action: Callable[[], None]) -> int:
    """Remember ``action`` (described by ``what``) until ``unregister(token)``."""
    with _lock:
        token = next(_counter)
        _actions[token] = (what, action)
    _install_signal_handlers()
    return token


def unregister(token: int | None) -> None:
    if token is not None:
        with _lock:
            _actions.pop(token, None)


def pending() -> list[str]:
    """What is still registered, newest last (for messages and tests)."""
    with _lock:
        return [what for what, _ in _actions.values()]


def run_all() -> None:
    """Run every registered action, newest first; one failing does not stop the rest."""
    while True:
        with _lock:
            if not _actions:
                return
            token = max(_actions)
            what, action = _actions.pop(token)
        try:
            action()
        except BaseException as exc:  # cleanup must go on, even after Ctrl-C
            print(f"handbook.servers: could not clean up {what}: {exc}", file=sys.stderr)


def _on_signal(signum: int, frame: object) -> None:
    run_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum in _handled_signals:
            continue
        _handled_signals.add(signum)
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _on_signal)


atexit.register(run_all)


def end_process(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Wait for ``proc`` to exit, then SIGTERM it, then SIGKILL it; each step waits ``timeout``.

    Call it after asking the program to shut down its own way (if it has one).
    """
    if proc is None or proc.poll() is not None:
        return
    for action in (None, proc.terminate, proc.kill):
        if action is not None:
            with contextlib.suppress(ProcessLookupError):
                action()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
            return
