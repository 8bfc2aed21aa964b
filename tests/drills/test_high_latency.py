"""Drill: the high-latency runbook (docs/runbooks/high-latency.md) on dedicated servers.

PostgreSQL: a query on ``orders`` without the index it needs dominates
pg_stat_statements, and a batch job's idle transaction blocks an API update. The
runbook's own snippets must name both causes, and only once they exist; its fixes
must remove them and leave everything else alone.

Redis: code listing cache keys with KEYS shows up in the slow log, the latency
monitor (once the runbook turns it on) and the per-command statistics, and nowhere
before it ran.
"""

from __future__ import annotations

import re

import pytest

import handbook.pytest_plugin
from handbook.drills import common
from handbook.drills import latency as drill
from handbook.paths import SNIPPETS
from handbook.pytest_plugin import unavailable
from handbook.schema.databases import SHARED, Databases

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [
    pytest.mark.covers("20.2"),
    pytest.mark.covers("next:drill"),
    pytest.mark.covers("next:automate"),
]

PAGE = "docs/runbooks/high-latency.md"
TOP = "sql/latency/top_queries.sql"
SEQ = "sql/latency/sequential_scans.sql"
EXPLAIN = "sql/latency/explain_pending_orders.sql"
FIX = "sql/latency/create_orders_status_index.sql"
BLOCKING = "sql/locks/blocking_locks.sql"
TERMINATE = "sql/locks/terminate_idle_blockers.sql"
SLOWLOG = "redis/latency/slow_commands.redis"
ENABLE_LATENCY = "redis/latency/enable_latency_monitor.redis"
COMMAND_STATS = "shell/latency/redis_command_stats.sh"


# The resolution ends only blockers idle for more than this: the snippet's own production
# threshold, which the page states, read from the snippet (one place). The drill polls
# for it and waits no longer.
def blocker_idle() -> float:
    found = re.search(
        r"now\(\) - state_change > interval '(\d+) seconds'", (SNIPPETS / TERMINATE).read_text()
    )
    assert found, f"snippets/{TERMINATE}: the drill reads its idle threshold from this line"
    return float(found[1])


@pytest.fixture(scope="module")
def pg(request, pg_server):
    """A dedicated server of pg_server's version with the seeded database and a year of orders.

    Shared by this module's two PostgreSQL drills: neither depends on what the other changes
    (one adds an index and resets statistics, the other updates two orders).
    """
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    server = pool.start_private(pg_server.label)
    try:
        if "pg_stat_statements" not in server.features:
            unavailable(
                f"{server.label}: the install has no pg_stat_statements, which the runbook's "
                "top-queries step needs: install postgresql-contrib for this version"
            )
        Databases().ensure(server)
        admin = server.env("admin") | {"PGDATABASE": SHARED}
        monitor = server.env("monitor") | {"PGDATABASE": SHARED}
        drill.grow_orders(admin)
        yield server, admin, monitor
    finally:
        server.stop()


def explain(server, monitor) -> str:
    return common.output(EXPLAIN, server, monitor)


@pytest.mark.drill
def test_missing_index_is_found_and_the_concurrent_index_cuts_buffers_tenfold(pg):
    server, admin, monitor = pg
    drill.reset_statistics(admin)
    drill.healthy_traffic(admin)

    # Baseline: nothing points at orders or at the pending-orders query.
    top = common.output(TOP, server, monitor)
    assert drill.PENDING_ORDERS_NORMALISED not in top, (
        f"snippets/{TOP}: lists the pending-orders query before it ever ran:\n{top}"
    )
    seq = common.output(SEQ, server, monitor)
    assert "public.orders" not in seq, (
        f"snippets/{SEQ}: names orders although only indexed lookups ran:\n{seq}"
    )

    # Incident: the dashboard's query reads the whole table on every call.
    drill.pending_orders(admin)
    top = common.output(TOP, server, monitor)
    first = common.table(top)[0]
    assert drill.PENDING_ORDERS_NORMALISED in first["query"], (
        f"snippets/{TOP}: the pending-orders query should be first (it read the whole "
        f"orders table {first['calls']} times):\n{top}"
    )
    seq_rows = common.table(common.output(SEQ, server, monitor))
    assert seq_rows and seq_rows[0]["table_name"] == "public.orders", (
        f"snippets/{SEQ}: orders should head the sequentially scanned tables: {seq_rows}"
    )
    plan = explain(server, monitor)
    assert "Seq Scan on orders" in plan, f"snippets/{EXPLAIN}: expected a seq scan:\n{plan}"
    before = int(drill.pending_orders_row(top)["buffers_per_call"])

    # Fix, while an order is written in an open transaction: the build waits for that
    # transaction, and meanwhile other sessions still write to orders (a plain
    # CREATE INDEX would queue them behind it).
    with drill.open_write(admin) as commit:
        build = drill.in_thread(common.output, FIX, server, admin)
        common.wait_for(
            lambda: drill.index_build_waiting(admin), "the index build to wait for the writer", 15
        )
        drill.insert_order(admin, lock_timeout="2s")  # raises if it has to wait
        commit()
    build.result(timeout=60)

    # Twice: the file must be safe to rerun, and change nothing the second time.
    counts = common.psql(admin, "SELECT count(*), sum(total) FROM orders")
    index_oid = common.psql(admin, f"SELECT '{drill.FIX_INDEX}'::regclass::oid")
    again = common.output(FIX, server, admin)
    assert common.table(again)[0]["valid"] == "t", f"snippets/{FIX}: index not valid:\n{again}"
    assert common.psql(admin, f"SELECT '{drill.FIX_INDEX}'::regclass::oid") == index_oid, (
        f"snippets/{FIX}: a second run rebuilt the index instead of keeping it"
    )
    assert common.psql(admin, "SELECT count(*), sum(total) FROM orders") == counts, (
        f"snippets/{FIX}: changed orders' rows"
    )

    plan = explain(server, monitor)
    assert "Seq Scan" not in plan and drill.FIX_INDEX in plan, (
        f"snippets/{EXPLAIN}: after snippets/{FIX} the plan should use {drill.FIX_INDEX}:\n{plan}"
    )
    drill.reset_statistics(admin)
    drill.pending_orders(admin)
    after = int(drill.pending_orders_row(common.output(TOP, server, monitor))["buffers_per_call"])
    assert after * 10 <= before, (
        f"snippets/{FIX}: shared buffers per call went from {before} to {after}; the index "
        "should cut them at least tenfold"
    )


@pytest.mark.drill
def test_blocking_locks_names_the_idle_blocker_and_only_it_is_terminated(pg):
    server, admin, monitor = pg
    # A healthy session idle in a transaction that blocks nobody: must survive. Both idle
    # transactions start now, so that they age towards blocker_idle() during the baseline.
    bystander = drill.LockHolder.start(admin, order_id=2)
    blocker = drill.LockHolder.start(admin, order_id=1)
    waiter = None
    try:
        baseline = common.output(BLOCKING, server, monitor)
        assert common.table(baseline) == [], (
            f"snippets/{BLOCKING}: rows while nobody waits:\n{baseline}"
        )
        waiter = drill.Waiter.start(admin, order_id=1)
        common.wait_for(lambda: drill.waiting_on_lock(admin, waiter.pid), "the update to wait", 10)
        rows = common.table(common.output(BLOCKING, server, monitor))
        assert [(r["waiting_pid"], r["blocking_pid"]) for r in rows] == [
            (str(waiter.pid), str(blocker.pid))
        ], f"snippets/{BLOCKING}: expected {waiter.pid} blocked by {blocker.pid}: {rows}"
        assert rows[0]["blocking_application"] == drill.BATCH_APP
        assert rows[0]["blocking_state"] == "idle in transaction"

        # The resolution only ends blockers idle for more than blocker_idle() seconds.
        idle = blocker_idle()
        common.wait_for(
            lambda: drill.idle_for(admin, blocker.pid) > idle, f"the blocker to idle {idle:g} s",
            idle + 10,
        )  # fmt: skip
        ended = common.table(common.output(TERMINATE, server, admin))
        assert [r["pid"] for r in ended] == [str(blocker.pid)], (
            f"snippets/{TERMINATE}: should end exactly the blocker {blocker.pid}: {ended}"
        )
        assert waiter.finished(10), f"snippets/{TERMINATE}: the waiting update never finished"
        assert bystander.alive(), (
            f"snippets/{TERMINATE}: ended an idle transaction that blocked nobody"
        )
        assert not blocker.alive()
        again = common.table(common.output(TERMINATE, server, admin))
        assert again == [], f"snippets/{TERMINATE}: a second run ended more sessions: {again}"
        assert common.table(common.output(BLOCKING, server, monitor)) == []
    finally:
        if waiter is not None:
            waiter.close()
        blocker.close()
        bystander.close()


@pytest.fixture
def redis(request, redis_server):
    """A dedicated Redis (default settings, DEBUG allowed) with 200,000 cached products."""
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    server = pool.start_private(redis_server.label, drill.redis_debug_settings(redis_server.major))
    try:
        drill.fill_product_cache(server)
        yield server
    finally:
        server.stop()


@pytest.mark.drill
def test_redis_slow_log_and_command_stats_name_the_keys_scan(redis):
    monitor = redis.env("monitor")
    enabled = common.output(ENABLE_LATENCY, redis, redis.env("admin"))
    assert '"100"' in enabled, f"snippets/{ENABLE_LATENCY}: threshold not set:\n{enabled}"
    drill.redis_healthy_traffic(redis)
    slow = common.output(SLOWLOG, redis, monitor)
    stats = common.output(COMMAND_STATS, redis, monitor)
    assert drill.SLOW_REDIS_PATTERN not in slow and drill.BATCH_APP not in slow, (
        f"snippets/{SLOWLOG}: shows a slow command before any ran:\n{slow}"
    )
    assert " keys\n" not in stats, f"snippets/{COMMAND_STATS}: lists KEYS before it ran:\n{stats}"

    drill.redis_key_scan(redis)
    slow = common.output(SLOWLOG, redis, monitor)
    assert drill.SLOW_REDIS_PATTERN in slow and drill.BATCH_APP in slow, (
        f"snippets/{SLOWLOG}: the KEYS call and its client should be in the slow log:\n{slow}"
    )
    stats = common.output(COMMAND_STATS, redis, monitor)
    assert stats.splitlines()[0].endswith(" keys"), (
        f"snippets/{COMMAND_STATS}: KEYS should be the slowest command per call:\n{stats}"
    )

    drill.redis_stall(redis)
    slow = common.output(SLOWLOG, redis, monitor)
    assert '"command"' in slow.split('"latency-monitor-threshold"')[1] and '"DEBUG"' in slow, (
        f"snippets/{SLOWLOG}: LATENCY LATEST should show the command spike:\n{slow}"
    )
