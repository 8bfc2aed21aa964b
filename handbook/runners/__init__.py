"""How each kind of snippet is executed. Runners know nothing of pytest.

Every runner returns an ``Outcome``; a failed outcome carries a message that
starts with ``snippets/<file>:<line>:`` and ends with the server it ran on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
