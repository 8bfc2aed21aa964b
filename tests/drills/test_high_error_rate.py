"""Drill: the high-error-rate runbook's database step (docs/runbooks/high-error-rate.md).

On a dedicated server, healthy traffic runs throughout; serialization failures and then
deadlocks are produced on top of it. The runbook's transaction-failures snippet, run as
the monitoring role while each workload runs, must show no rollbacks for healthy
traffic, rollbacks without deadlocks for serialization failures, and deadlocks for
deadlocks: the counters that tell the two database causes of 5xx apart without the
server log.
"""

from __future__ import annotations

import pytest

import handbook.pytest_plugin
from handbook.drills import common
from handbook.drills import errors as drill

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [pytest.mark.covers("20.2"), pytest.mark.covers("next:drill")]

FAILURES = "sql/errors/transaction_failures.sql"
DATABASE = "erpgo"
# The snippet's sample window (psql -v window): the page's default, 3 s. Sessions report
# their counters to pg_stat_database about once a second, so the window's edges can
# count a transaction reported late; 2 s once counted one deadlock more than the drill
# made (a fresh-machine run), 3 s has not in any run.
WINDOW = "3"


@pytest.fixture
def pg(request, pg_server):
    """A dedicated server (deadlocks detected after 100 ms) with the reference schema."""
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    server = pool.start_private(pg_server.label, {"deadlock_timeout": "100ms"})
    try:
        admin = drill.create_database(server, DATABASE)
        monitor = server.env("monitor") | {"PGDATABASE": DATABASE}
        yield server, admin, monitor
    finally:
        server.stop()


def window(server, monitor) -> dict[str, int]:
    """Run the runbook's snippet (a WINDOW s sample) and return the drill database's
    counters."""
    out = common.output(FAILURES, server, monitor, variables={"window": WINDOW})
    return drill.database_row(out, DATABASE)


@pytest.mark.drill
def test_transaction_failures_tell_deadlocks_from_serialization_failures(pg):
    server, admin, monitor = pg
    with drill.running(admin, "healthy") as healthy:
        baseline = window(server, monitor)
        with drill.running(admin, "serialization") as serialization:
            during_serialization = window(server, monitor)
        with drill.running(admin, "deadlocks") as deadlocks:
            during_deadlocks = window(server, monitor)

    where = f"snippets/{FAILURES}"
    assert baseline["commits"] > 0, f"{where}: healthy commits not counted: {baseline}"
    assert baseline["rollbacks"] == 0 and baseline["deadlocks"] == 0, (
        f"{where}: failures reported while only healthy traffic ran: {baseline}"
    )

    assert serialization.failures["40001"] > 0, "the drill produced no serialization failure"
    assert during_serialization["rollbacks"] > 0, (
        f"{where}: serialization failures ({serialization.failures}) not seen as rollbacks: "
        f"{during_serialization}"
    )
    assert during_serialization["deadlocks"] == 0, (
        f"{where}: deadlocks reported for serialization failures: {during_serialization}"
    )

    assert deadlocks.failures["40P01"] > 0, "the drill produced no deadlock"
    assert during_deadlocks["deadlocks"] > 0 and during_deadlocks["rollbacks"] > 0, (
        f"{where}: deadlocks ({deadlocks.failures}) not shown: {during_deadlocks}"
    )
    # A healthy session queued on the same row can close the cycle (a row's later
    # waiters queue behind its first one) and be the session PostgreSQL ends: count the
    # deadlocks every session saw.
    happened = deadlocks.failures["40P01"] + healthy.failures["40P01"]
    assert during_deadlocks["deadlocks"] <= happened, (
        f"{where}: more deadlocks counted than happened ({deadlocks.failures} in the "
        f"deadlock workload, {healthy.failures} in the healthy one): {during_deadlocks}"
    )
