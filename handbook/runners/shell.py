"""Run a shell snippet with ``bash``, connection details in the standard variables."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from handbook.runners.base import Outcome, Target, execute
from handbook.snippet import Snippet

# The snippet is sourced under an ERR trap that prints the failing line; set -e inside
# the snippet then ends the run there, just as it would for a reader.
WRAPPER = 'trap \'echo "handbook-failed-at-line:$LINENO" >&2\' ERR; . "$0"'
FAILED_AT = re.compile(r"^handbook-failed-at-line:(?P<line>\d+)\n?", re.M)


def run(snippet: Snippet, target: Target) -> Outcome:
    """Run in a scratch directory with the target's environment, ``target.variables`` added
    to it (as a reader sets ``LAST_GOOD=8`` before the command).

    With ``target.account`` the scratch directory belongs to that account and the snippet
    runs from a copy there (the checkout may sit where only root may enter); the copy
    has the same lines, so messages still name the snippet's own.
    """
    env = {**target.env, **target.variables}
    with tempfile.TemporaryDirectory(prefix="handbook-sh-") as scratch:
        script = snippet.path
        if target.account is not None and not target.account.is_self:
            script = Path(scratch) / snippet.path.name
            shutil.copyfile(snippet.path, script)
            target.account.own(Path(scratch), script)
        command = ["bash", "-E", "-c", WRAPPER, str(script)]
        result = execute(snippet, replace(target, env=env), command, cwd=scratch)
    if isinstance(result, Outcome):
        return result
    failed_at = FAILED_AT.search(result.stderr)
    stderr = FAILED_AT.sub("", result.stderr)
    output = result.stdout + stderr
    if result.returncode == 0:
        return Outcome(True, result.stdout, returncode=0)
    line = failed_at["line"] if failed_at else snippet.body_start
    tail = stderr.strip().splitlines()
    detail = tail[-1] if tail else "no message on stderr"
    return Outcome(
        False,
        output,
        f"{snippet.name}:{line}: exited {result.returncode}: {detail} ({target.servers})",
        result.returncode,
    )
