"""How each kind of snippet is executed. Runners know nothing of pytest.

Every runner is ``run(snippet, target) -> Outcome`` (``base.py``): ``sql`` (psql),
``redis`` (redis-cli), ``shell`` (bash) and ``promql`` (promtool against the snippet's
sidecar series). ``RUNNERS`` maps a snippet's kind to its runner, and :func:`run` is
what the pytest items, the drills and any other caller use. A failed outcome carries
a message that starts with ``snippets/<file>:<line>:`` and ends with the servers it
ran on, and the program's exit code as ``returncode``.

May import: paths, yamlfile, snippet, servers, prometheus.
"""

from __future__ import annotations

from collections.abc import Callable

from handbook.runners import promql, redis, shell, sql
from handbook.runners.base import Outcome, Target, masked
from handbook.snippet import Snippet

__all__ = ["RUNNERS", "Outcome", "Target", "masked", "run"]

RUNNERS: dict[str, Callable[[Snippet, Target], Outcome]] = {
    "sql": sql.run,
    "redis": redis.run,
    "shell": shell.run,
    "promql": promql.run,
}


def run(snippet: Snippet, target: Target) -> Outcome:
    """Run ``snippet`` with the runner of its kind."""
    return RUNNERS[snippet.kind](snippet, target)
