"""How each kind of snippet is executed. Runners know nothing of pytest.

Every runner returns an ``Outcome``; a failed outcome carries a message that
starts with ``snippets/<file>:<line>:`` and ends with the server it ran on.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handbook.snippet import Snippet

TIMEOUT = 120  # seconds a snippet may run before the runner gives up on it


@dataclass
class Outcome:
    ok: bool
    output: str
    message: str = ""  # "snippets/x.sql:7: ERROR: ... (PostgreSQL 18.6, local)" when not ok


def masked(output: str, masks: list[re.Pattern[str]]) -> str:
    """The output with every match of the snippet's own ``mask:`` patterns replaced."""
    for pattern in masks:
        output = pattern.sub("<masked>", output)
    return output


def execute(
    snippet: Snippet, servers: str, command: list[str], **kwargs
) -> subprocess.CompletedProcess | Outcome:
    """Run ``command`` for ``snippet``; a failed Outcome if it does not finish in time."""
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs
        )
    except subprocess.TimeoutExpired:
        return Outcome(
            False,
            "",
            f"{snippet.name}:{snippet.body_start}: did not finish in {TIMEOUT} s ({servers}): "
            "a snippet must end on its own; bound it (LIMIT, a timeout) or split it",
        )
