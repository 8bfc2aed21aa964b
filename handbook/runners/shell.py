"""Run a shell snippet with ``bash``, connection details in the standard variables."""

from __future__ import annotations

import re
import tempfile

from handbook.runners import Outcome, execute
from handbook.snippet import Snippet

# The snippet is sourced under an ERR trap that prints the failing line; set -e inside
# the snippet then ends the run there, just as it would for a reader.
WRAPPER = 'trap \'echo "handbook-failed-at-line:$LINENO" >&2\' ERR; . "$0"'
FAILED_AT = re.compile(r"^handbook-failed-at-line:(?P<line>\d+)\n?", re.M)


def run(snippet: Snippet, env: dict[str, str], servers: str) -> Outcome:
    """Run in a scratch directory; ``servers`` names them for messages ("PostgreSQL 15.20, ...")."""
    with tempfile.TemporaryDirectory(prefix="handbook-sh-") as scratch:
        command = ["bash", "-E", "-c", WRAPPER, str(snippet.path)]
        result = execute(snippet, servers, command, cwd=scratch, env=env)
    if isinstance(result, Outcome):
        return result
    failed_at = FAILED_AT.search(result.stderr)
    stderr = FAILED_AT.sub("", result.stderr)
    output = result.stdout + stderr
    if result.returncode == 0:
        return Outcome(True, result.stdout)
    line = failed_at["line"] if failed_at else snippet.body_start
    tail = stderr.strip().splitlines()
    detail = tail[-1] if tail else "no message on stderr"
    return Outcome(
        False,
        output,
        f"{snippet.name}:{line}: exited {result.returncode}: {detail} ({servers})",
    )
