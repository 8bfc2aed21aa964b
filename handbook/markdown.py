"""Reading the handbook's MyST pages line by line, for checks that cite ``page:line``."""

from __future__ import annotations

import re
from collections.abc import Iterator

# A fence opens or closes a code block or a MyST directive: ``` ~~~ or :::, three or more.
FENCE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})")


def lines_outside_fences(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line that is prose: not inside a fence, not a fence."""
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        opener = FENCE.match(line)
        if opener:
            marker = opener.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is None:
            yield number, line
