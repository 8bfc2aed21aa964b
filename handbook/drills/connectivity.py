"""The database-connectivity drills' incidents, and how to read the runbook scripts' answers.

The runbook's shell scripts report through their exit codes (``pg_isready``'s own, and
the documented codes of ``diagnose_connection.sh`` and ``network_check.sh``) and a
``verdict:`` line. The shell runner reports a failed run as ``<file>:<line>: exited N:``;
``exit_code`` reads N back so a drill asserts the code the page documents.
"""

from __future__ import annotations

import os
import re

from handbook.runners import Outcome
from handbook.servers.base import Server

_EXITED = re.compile(r": exited (\d+): ")


def exit_code(outcome: Outcome) -> int:
    """The script's exit code: 0 for a run that passed, else the one the runner reported."""
    if outcome.ok:
        return 0
    found = _EXITED.search(outcome.message)
    if not found:
        raise AssertionError(f"not a script's exit: {outcome.message}\n{outcome.output}")
    return int(found[1])


def verdict(outcome: Outcome) -> str:
    """The ``verdict: ...`` line a diagnosis printed, or "" when it printed none."""
    lines = [ln for ln in outcome.output.splitlines() if ln.startswith("verdict: ")]
    return lines[-1] if lines else ""


def datadir(server: Server) -> str:
    """The data directory of a local server (where the runbook's PGDATA points)."""
    return str(server.handle.datadir)


def host_env(server: Server, env: dict[str, str]) -> dict[str, str]:
    """``env`` as on the database host: PGDATA set, the server's own programs first on PATH.

    The harness may run a server from a copy of its install that the server's account
    can read (the original can sit where only root may enter, such as tox's directory);
    commands that start the server must use the programs it runs from.
    """
    runtime = server.handle.runtime
    path = f"{runtime.bindir}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env | runtime.env | {"PGDATA": datadir(server), "PATH": path}


def crash(server: Server) -> None:
    """Stop a local server the way a crash or an OOM kill does: no shutdown checkpoint."""
    result = server.handle.owner_run(
        ["pg_ctl", "stop", "-D", server.handle.datadir, "-m", "immediate", "-w", "-s"]
    )
    if result.returncode != 0:
        raise AssertionError(f"could not stop {server.describe()}: {result.stderr.strip()}")
