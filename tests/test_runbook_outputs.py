"""The runbook diagnostics no drill covers: what they print is checked here.

Every diagnostic a runbook shows is output-asserted (the verification page counts
them): the drills check most; these two run on the shared servers as the account their
header names, and what they print is compared with what the server itself reports.
"""

from __future__ import annotations

from handbook.drills import common as drill
from handbook.paths import ROOT
from handbook.pytest_plugin import DATABASES, POOL
from handbook.sphinxext import verified

CACHE_HIT = drill.snippet("sql/latency/buffer_cache_hit_rate.sql")
REDIS_HEALTH = drill.snippet("shell/errors/redis_health.sh")


def test_buffer_cache_hit_rate_shows_the_database_and_the_table_just_read(pg_server, request):
    databases = request.config.stash[DATABASES]
    with databases.for_snippet(pg_server, read_only=False) as admin:
        name = admin["PGDATABASE"]
        drill.psql(admin, "SELECT count(*) FROM orders; SELECT count(*) FROM order_items")
        monitor = pg_server.env(CACHE_HIT.user) | {"PGDATABASE": name}
        out = drill.output(CACHE_HIT, pg_server, monitor)
    databases_seen, tables = drill.table(out, 0), drill.table(out, 1)
    mine = [row for row in databases_seen if row["database"] == name]
    assert mine, f"{CACHE_HIT.name}: no row for the database it ran in ({name}):\n{out}"
    assert 0 <= float(mine[0]["hit_pct"]) <= 100, out
    read = {row["table_name"]: row for row in tables}
    for table in ("public.orders", "public.order_items"):
        assert table in read, f"{CACHE_HIT.name}: {table} was just read, but is not listed:\n{out}"
        row = read[table]
        assert int(row["heap_blks_read"]) + int(row["heap_blks_hit"]) > 0, out


def test_redis_health_prints_what_the_server_reports(redis_server, request):
    databases, pool = request.config.stash[DATABASES], request.config.stash[POOL]
    with databases.for_shell([redis_server], True, pool, REDIS_HEALTH.user) as env:
        out = drill.output(REDIS_HEALTH, redis_server, env)
    client = drill.redis_client(redis_server)
    try:
        maxclients = client.config_get("maxclients")["maxclients"]
        stats = client.info("stats")
    finally:
        client.close()
    lines = out.splitlines()
    assert lines[0] == "ping: PONG", out
    assert lines[1] == f"maxclients={maxclients}", out
    fields = dict(line.split(":", 1) for line in lines[2:])
    assert set(fields) >= {
        "connected_clients", "blocked_clients", "rejected_connections", "role",
    }, out  # fmt: skip
    assert int(fields["connected_clients"]) >= 1, out
    assert fields["rejected_connections"] == str(stats["rejected_connections"]), out
    assert fields["role"] == "master", out


def test_no_runbook_diagnostic_is_checked_by_its_exit_status_only():
    grouped = verified.counts(ROOT)
    unchecked = [
        f"{snippet.name}:1: a runbook diagnostic whose output nothing checks: assert what it "
        "prints in its runbook's drill (tests/drills/) or in tests/test_runbook_outputs.py"
        for snippet, _ in grouped[verified.EXIT_STATUS]
        if (snippet.page or "").startswith("runbooks/") and snippet.read_only
    ]
    assert not unchecked, "\n".join(unchecked)


def test_every_snippet_is_counted_once_and_says_why():
    grouped = verified.counts(ROOT)
    names = [s.name for g in verified.GROUPS for s, _ in grouped[g]]
    assert len(names) == len(set(names))
    assert all(why for g in verified.GROUPS for _, why in grouped[g])
