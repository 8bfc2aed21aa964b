"""Read-only SQL diagnostics and what they cost on a production-sized database.

Two checks keep diagnostics cheap enough to run during an incident:

- :func:`seq_scans` runs a diagnostic exactly as a reader does (psql on the file)
  with ``auto_explain`` sending every plan back to the client and sequential scans
  disabled, so a ``Seq Scan`` on a large application table left in a plan means
  no index can serve the query (tests/test_diagnostics_cost.py);
- ``python -m handbook.benchmark --diagnostics`` times each diagnostic on a
  database seeded at production scale (target: 100 ms each).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from handbook.paths import SNIPPETS
from handbook.schema import seed
from handbook.snippet import Snippet, parse

# Tables with 100,000 rows or more at production scale: a sequential scan of one
# of them is what makes a diagnostic slow when it matters most.
LARGE_TABLES = tuple(
    sorted(
        name
        for name, rows in seed.expected_counts(seed.SCALES["production"]).items()
        if rows >= 100_000
    )
)
TARGET_MS = 100
PLAN = re.compile(r"(?:NOTICE|LOG):\s+duration: [\d.]+ ms\s+plan:\s*\n")
EXPLAIN_OPTIONS = " ".join(
    [
        "-c session_preload_libraries=auto_explain",
        "-c auto_explain.log_min_duration=0",
        "-c auto_explain.log_format=json",
        "-c auto_explain.log_level=notice",
        "-c enable_seqscan=off",
        "-c default_transaction_read_only=on",
    ]
)


def diagnostics(root: Path = SNIPPETS) -> list[Snippet]:
    """Every read-only SQL snippet (migrations excluded)."""
    return [
        snippet
        for path in sorted(root.rglob("*.sql"))
        if path.parent.name != "migrations" and (snippet := parse(path)).read_only
    ]


def touches_large_tables(snippet: Snippet) -> list[str]:
    body = snippet.body().lower()
    return [table for table in LARGE_TABLES if re.search(rf"\b{table}\b", body)]


@dataclass
class Scan:
    table: str
    filter: str


def _nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def plans(stderr: str) -> list[dict]:
    """The JSON plans auto_explain sent to the client, in statement order."""
    decoder = json.JSONDecoder()
    found = []
    for match in PLAN.finditer(stderr):
        try:
            plan, _ = decoder.raw_decode(stderr[match.end() :].lstrip())
        except ValueError:
            continue
        found.append(plan)
    return found


def seq_scans(snippet: Snippet, env: dict[str, str]) -> tuple[list[dict], list[Scan], str]:
    """Run ``snippet`` with ``env`` (a superuser, for auto_explain); its plans and large scans.

    Returns (plans, sequential scans of large tables, psql's error text if it failed).
    """
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(snippet.path)],
        env=env | {"PGOPTIONS": EXPLAIN_OPTIONS},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    found = plans(result.stderr)
    scans = [
        Scan(node["Relation Name"], node.get("Filter", ""))
        for plan in found
        for node in _nodes(plan.get("Plan", {}))
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in LARGE_TABLES
    ]
    error = result.stderr if result.returncode != 0 else ""
    return found, scans, error
