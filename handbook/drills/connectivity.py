"""How to read the database-connectivity runbook scripts' answers.

The runbook's shell scripts report through their exit codes (``pg_isready``'s own, and
the documented codes of ``diagnose_connection.sh`` and ``network_check.sh``), which the
runner gives as ``Outcome.returncode``, and a ``verdict:`` line, read by :func:`verdict`.
Stopping and restarting the server: ``handbook.drills.local``.
"""

from __future__ import annotations

from handbook.runners import Outcome


def verdict(outcome: Outcome) -> str:
    """The ``verdict: ...`` line a diagnosis printed, or "" when it printed none."""
    lines = [ln for ln in outcome.output.splitlines() if ln.startswith("verdict: ")]
    return lines[-1] if lines else ""
