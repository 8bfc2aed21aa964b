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

import pytest

import handbook.pytest_plugin
from handbook.drills import latency as drill
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


def missing(reason: str) -> None:
    unavailable(reason)


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
            missing(
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
    return drill.run(EXPLAIN, server, monitor)


@pytest.mark.drill
def test_missing_index_is_found_and_the_concurrent_index_cuts_buffers_tenfold(pg):
    server, admin, monitor = pg
    drill.reset_statistics(admin)
    drill.healthy_traffic(server, admin)

    # Baseline: nothing points at orders or at the pending-orders query.
    top = drill.run(TOP, server, monitor)
    assert drill.PENDING_ORDERS_NORMALISED not in top, (
        f"snippets/{TOP}: lists the pending-orders query before it ever ran:\n{top}"
    )
    seq = drill.run(SEQ, server, monitor)
    assert "public.orders" not in seq, (
        f"snippets/{SEQ}: names orders although only indexed lookups ran:\n{seq}"
    )

    # Incident: the dashboard's query reads the whole table on every call.
    drill.pending_orders(server, admin)
    top = drill.run(TOP, server, monitor)
    first = drill.table(top)[0]
    assert drill.PENDING_ORDERS_NORMALISED in first["query"], (
        f"snippets/{TOP}: the pending-orders query should be first (it read the whole "
        f"orders table {first['calls']} times):\n{top}"
    )
    seq_rows = drill.table(drill.run(SEQ, server, monitor))
    assert seq_rows and seq_rows[0]["table_name"] == "public.orders", (
        f"snippets/{SEQ}: orders should head the sequentially scanned tables: {seq_rows}"
    )
    plan = explain(server, monitor)
    assert "Seq Scan on orders" in plan, f"snippets/{EXPLAIN}: expected a seq scan:\n{plan}"
    before = int(drill.pending_orders_row(top)["buffers_per_call"])

    # Fix, while an order is written in an open transaction: the build waits for that
    # transaction, and meanwhile other sessions still write to orders (a plain
    # CREATE INDEX would queue them behind it).
    with drill.open_write(server, admin) as commit:
        build = drill.in_thread(drill.run, FIX, server, admin)
        drill.wait_until(
            lambda: drill.index_build_waiting(admin), 15, "the index build to wait for the writer"
        )
        drill.insert_order(admin, lock_timeout="2s")  # raises if it has to wait
        commit()
    build.result(timeout=60)

    # Twice: the file must be safe to rerun, and change nothing the second time.
    counts = drill.psql(admin, "SELECT count(*), sum(total) FROM orders")
    index_oid = drill.psql(admin, f"SELECT '{drill.FIX_INDEX}'::regclass::oid")
    again = drill.run(FIX, server, admin)
    assert drill.table(again)[0]["valid"] == "t", f"snippets/{FIX}: index not valid:\n{again}"
    assert drill.psql(admin, f"SELECT '{drill.FIX_INDEX}'::regclass::oid") == index_oid, (
        f"snippets/{FIX}: a second run rebuilt the index instead of keeping it"
    )
    assert drill.psql(admin, "SELECT count(*), sum(total) FROM orders") == counts, (
        f"snippets/{FIX}: changed orders' rows"
    )

    plan = explain(server, monitor)
    assert "Seq Scan" not in plan and drill.FIX_INDEX in plan, (
        f"snippets/{EXPLAIN}: after snippets/{FIX} the plan should use {drill.FIX_INDEX}:\n{plan}"
    )
    drill.reset_statistics(admin)
    drill.pending_orders(server, admin)
    after = int(drill.pending_orders_row(drill.run(TOP, server, monitor))["buffers_per_call"])
    assert after * 10 <= before, (
        f"snippets/{FIX}: shared buffers per call went from {before} to {after}; the index "
        "should cut them at least tenfold"
    )


@pytest.mark.drill
def test_blocking_locks_names_the_idle_blocker_and_only_it_is_terminated(pg):
    server, admin, monitor = pg
    baseline = drill.run(BLOCKING, server, monitor)
    assert drill.table(baseline) == [], f"snippets/{BLOCKING}: rows on a quiet server:\n{baseline}"

    # A healthy session idle in a transaction that blocks nobody: must survive.
    bystander = drill.LockHolder.start(server, admin, order_id=2)
    blocker = drill.LockHolder.start(server, admin, order_id=1)
    waiter = drill.Waiter.start(server, admin, order_id=1)
    try:
        drill.wait_until(lambda: drill.waiting_on_lock(admin, waiter.pid), 10, "the update to wait")
        rows = drill.table(drill.run(BLOCKING, server, monitor))
        assert [(r["waiting_pid"], r["blocking_pid"]) for r in rows] == [
            (str(waiter.pid), str(blocker.pid))
        ], f"snippets/{BLOCKING}: expected {waiter.pid} blocked by {blocker.pid}: {rows}"
        assert rows[0]["blocking_application"] == drill.BATCH_APP
        assert rows[0]["blocking_state"] == "idle in transaction"

        # The resolution only ends blockers idle for more than 5 seconds.
        drill.wait_until(
            lambda: drill.idle_for(admin, blocker.pid) > 5.5, 15, "the blocker to idle 5 s"
        )
        ended = drill.table(drill.run(TERMINATE, server, admin))
        assert [r["pid"] for r in ended] == [str(blocker.pid)], (
            f"snippets/{TERMINATE}: should end exactly the blocker {blocker.pid}: {ended}"
        )
        assert waiter.finished(10), f"snippets/{TERMINATE}: the waiting update never finished"
        assert bystander.alive(), (
            f"snippets/{TERMINATE}: ended an idle transaction that blocked nobody"
        )
        assert not blocker.alive()
        again = drill.table(drill.run(TERMINATE, server, admin))
        assert again == [], f"snippets/{TERMINATE}: a second run ended more sessions: {again}"
        assert drill.table(drill.run(BLOCKING, server, monitor)) == []
    finally:
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
    enabled = drill.run(ENABLE_LATENCY, redis, redis.env("admin"))
    assert '"100"' in enabled, f"snippets/{ENABLE_LATENCY}: threshold not set:\n{enabled}"
    drill.redis_healthy_traffic(redis)
    slow = drill.run(SLOWLOG, redis, monitor)
    stats = drill.run(COMMAND_STATS, redis, monitor)
    assert drill.SLOW_REDIS_PATTERN not in slow and drill.BATCH_APP not in slow, (
        f"snippets/{SLOWLOG}: shows a slow command before any ran:\n{slow}"
    )
    assert " keys\n" not in stats, f"snippets/{COMMAND_STATS}: lists KEYS before it ran:\n{stats}"

    drill.redis_key_scan(redis)
    slow = drill.run(SLOWLOG, redis, monitor)
    assert drill.SLOW_REDIS_PATTERN in slow and drill.BATCH_APP in slow, (
        f"snippets/{SLOWLOG}: the KEYS call and its client should be in the slow log:\n{slow}"
    )
    stats = drill.run(COMMAND_STATS, redis, monitor)
    assert stats.splitlines()[0].endswith(" keys"), (
        f"snippets/{COMMAND_STATS}: KEYS should be the slowest command per call:\n{stats}"
    )

    drill.redis_stall(redis)
    slow = drill.run(SLOWLOG, redis, monitor)
    assert '"command"' in slow.split('"latency-monitor-threshold"')[1] and '"DEBUG"' in slow, (
        f"snippets/{SLOWLOG}: LATENCY LATEST should show the command spike:\n{slow}"
    )
