"""Diagnostics stay cheap on a production-sized database: no sequential scan of a large table.

Each read-only SQL diagnostic that reads a large application table runs as a
reader runs it, with sequential scans disabled and every plan reported by
``auto_explain``. A ``Seq Scan`` that survives means no index can serve the
query: on a production database it would read every row during an incident.
"""

import pytest

from handbook.pytest_plugin import DATABASES
from handbook.schema import diagnostics
from handbook.schema.databases import SHARED

# Exceptions, each with its reason. The stated scan must still happen, so a stale
# exception fails too.
EXPECTED_SCANS = {
    # The high-latency runbook's example of query analysis: it EXPLAINs the slow query
    # the drill reproduces, and the sequential scan is what the reader learns to spot;
    # sql/latency/create_orders_status_index.sql is the fix the runbook applies.
    "snippets/sql/latency/explain_pending_orders.sql": "orders",
}
CANDIDATES = [s for s in diagnostics.diagnostics() if diagnostics.touches_large_tables(s)]


def test_there_are_diagnostics_on_large_tables_to_check():
    assert CANDIDATES, f"no read-only diagnostic reads {', '.join(diagnostics.LARGE_TABLES)}"


@pytest.mark.parametrize("snippet", CANDIDATES, ids=lambda s: s.name)
def test_diagnostic_uses_an_index_on_large_tables(request, pg_server, snippet):
    gate = snippet.gate("pg", pg_server.major, pg_server.features)
    if gate:
        pytest.skip(f"not applicable on {pg_server.label}: {gate}")
    request.config.stash[DATABASES].ensure(pg_server)
    env = pg_server.env("admin") | {"PGDATABASE": SHARED}
    plans, scans, error = diagnostics.seq_scans(snippet, env)
    assert not error, f"{snippet.name}: failed on {pg_server.label}:\n{error}"
    assert plans, f"{snippet.name}: auto_explain reported no plan: the check proved nothing"
    if snippet.name in EXPECTED_SCANS:
        assert [s.table for s in scans] == [EXPECTED_SCANS[snippet.name]], (
            f"tests/test_diagnostics_cost.py: EXPECTED_SCANS[{snippet.name!r}] is stale: "
            f"the plan now scans {[s.table for s in scans]}; update or remove the exception"
        )
        return
    assert not scans, (
        f"{snippet.name}:{snippet.body_start}: sequential scan of "
        + ", ".join(f"{s.table} (filter {s.filter or 'none'})" for s in scans)
        + f" on {pg_server.label} even with enable_seqscan=off: no index serves this query. "
        "Bound it by an indexed column (e.g. a time window on attempted_at) or add the index "
        "in a migration, and name it in the runbook's Prevention section."
    )
