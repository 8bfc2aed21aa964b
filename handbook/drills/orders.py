"""``drill_orders``: the rows the disaster-recovery drills commit, batch by batch, and count.

A drill commits batches of rows at known moments (before the backup, before the target
time, during the fault, ...), one acknowledged transaction per row, then counts per
batch what a restore or a promoted standby holds: every row of a batch committed before
the cut must be back, none of those after it.
"""

from __future__ import annotations

import subprocess

from handbook.drills.common import DrillError, admin_sql
from handbook.servers.base import Server

TABLE = "drill_orders"


def create(server: Server) -> None:
    admin_sql(
        server,
        f"CREATE TABLE {TABLE} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "batch text NOT NULL, committed_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    )


def count_by_batch(server: Server) -> dict[str, int]:
    """Rows per batch on ``server``."""
    out = admin_sql(server, f"SELECT batch, count(*) FROM {TABLE} GROUP BY batch ORDER BY batch")
    return {b: int(n) for b, n in (line.split("|") for line in out.split())}


def insert(server: Server, batch: str, rows: int) -> None:
    """``rows`` rows in ``rows`` transactions, each acknowledged before the next starts."""
    script = f"INSERT INTO {TABLE} (batch) VALUES ('{batch}');\n" * rows
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        input=script, env=server.env("admin"), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise DrillError(f"{server.label}: inserting batch {batch!r} failed: {result.stderr}")


def writer(server: Server, batch: str, rows: int) -> subprocess.Popen:
    """psql committing ``rows`` transactions in the background; it prints ``INSERT 0 1``
    for each one the server acknowledged."""
    process = subprocess.Popen(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        env=server.env("admin"), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(f"INSERT INTO {TABLE} (batch) VALUES ('{batch}');\n" * rows)
    process.stdin.close()
    return process
