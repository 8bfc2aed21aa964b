"""The rules that name a cause from a step's result, by snippet: what the page says to look for.

Each rule reads the step's output and returns the cause it found, or None. Only the
thresholds the runbooks state are rules here: the pool above 90 % of
``max_connections``, sessions idle in a transaction, a lock blocker, a login attack
the authentication runbook's thresholds classify, a Redis hit rate under 70 %, a
deadlock or more than 10 % of a database's transactions rolled back.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from handbook.runners.sql import tables

POOL_LIMIT = 90.0  # % of max_connections: runbooks/connection-pool-exhaustion.md
HIT_RATE_FLOOR = 70.0  # %: runbooks/low-cache-hit-rate.md, the LowCacheHitRate alert
ROLLBACK_LIMIT = 10.0  # % of a database's transactions rolled back: runbooks/high-error-rate.md


def _pool(output: str) -> str | None:
    for rows in tables(output):
        for row in rows:
            if "pct_used" in row and float(row["pct_used"] or 0) > POOL_LIMIT:
                return (
                    f"PostgreSQL is {row['pct_used']} % full (above {POOL_LIMIT:.0f} % of "
                    "max_connections)"
                )
    return None


def _leaks(output: str) -> str | None:
    rows = (tables(output) or [[]])[0]
    if not rows:
        return None
    apps = sorted({r.get("application", "?") for r in rows})
    return f"{len(rows)} session(s) idle in transaction (leaked): {', '.join(apps)}"


def _blockers(output: str) -> str | None:
    rows = (tables(output) or [[]])[0]
    if not rows:
        return None
    blockers = sorted({r.get("blocking_pid", "?") for r in rows})
    return f"a lock blocker found: pid {', '.join(blockers)} blocks {len(rows)} session(s)"


def _attacks(output: str) -> str | None:
    rows = (tables(output) or [[]])[-1]
    if not rows:
        return None
    named = [
        f"{r.get('attack', '?')} from {r.get('source', '?')} on {r.get('target', '?')} "
        f"({r.get('failures', '?')} failures)"
        for r in rows
    ]
    return "login attack: " + "; ".join(named)


def _hit_rate(output: str) -> str | None:
    found = re.search(r"hit_rate=([\d.]+)%", output)
    if found and float(found[1]) < HIT_RATE_FLOOR:
        return f"Redis hit rate {found[1]} % (under {HIT_RATE_FLOOR:.0f} %)"
    return None


def _failing_transactions(output: str) -> str | None:
    found = []
    for row in (tables(output) or [[]])[-1]:
        deadlocks, pct = int(row.get("deadlocks") or 0), float(row.get("rollback_pct") or 0)
        if deadlocks:
            found.append(f"{deadlocks} deadlock(s) in {row.get('database', '?')}")
        elif pct > ROLLBACK_LIMIT:
            found.append(
                f"{pct:g} % of {row.get('database', '?')}'s transactions rolled back with no "
                "deadlock (serialization failures, or the application rolling back)"
            )
    return "failing transactions: " + "; ".join(found) if found else None


RULES: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "sql/pool/connections_by_state.sql": (f"pct_used above {POOL_LIMIT:.0f} %", _pool),
    "sql/pool/idle_in_transaction.sql": ("any session idle in transaction", _leaks),
    "sql/locks/blocking_locks.sql": ("any session blocked by another", _blockers),
    "sql/auth/classify_attacks.sql": ("any attack the page's thresholds classify", _attacks),
    "shell/cache/hit_rate.sh": (f"hit_rate under {HIT_RATE_FLOOR:.0f} %", _hit_rate),
    "sql/errors/transaction_failures.sql": (
        f"any deadlock, or rollback_pct above {ROLLBACK_LIMIT:.0f} %",
        _failing_transactions,
    ),
}


def rule(snippet: str) -> tuple[str, Callable[[str], str | None]] | None:
    """The rule for snippet ``snippet`` (relative to ``snippets/``), or None."""
    return RULES.get(snippet)
