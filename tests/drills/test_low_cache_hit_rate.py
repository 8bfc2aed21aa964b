"""Drill for runbooks/low-cache-hit-rate.md: non-expiring keys fill a volatile-lru Redis.

A private Redis starts with a small ``maxmemory`` and ``volatile-lru``. ERPGo's product
workload (handbook.drills.cache) runs healthy first; then an export job fills memory with
keys that have no TTL, and the same workload drops below the alert's 70 %. The runbook's
diagnostics must show the cause (evictions, memory at the limit, the export keys without a
TTL) only then; its fix (eviction policy, maxmemory, cache warming) must bring the same
workload back above 70 %, and warming must touch nothing but product keys.
"""

from __future__ import annotations

import re

import pytest

from handbook import pytest_plugin
from handbook.drills import cache, common
from handbook.paths import CONF

pytestmark = [
    pytest.mark.drill,
    pytest.mark.covers("20.2"),
    pytest.mark.covers("next:drill"),
    pytest.mark.covers("next:automate"),
]

HIT_RATE = common.snippet("shell/cache/hit_rate.sh")
INFO_STATS = common.snippet("redis/cache/info_stats.redis")
KEYSPACE = common.snippet("redis/cache/keyspace.redis")
PREFIXES = common.snippet("shell/cache/key_prefixes.sh")
POLICY = common.snippet("redis/cache/set_eviction_policy.redis")
MEMORY = common.snippet("redis/cache/raise_maxmemory.redis")
WARM = common.snippet("shell/cache/warm_cache.sh")
RESET = common.snippet("redis/cache/reset_stats.redis")
REDIS_CONF = CONF / "redis" / "redis.conf"

INCIDENT_SETTINGS = {"maxmemory": "4mb", "maxmemory-policy": "volatile-lru"}
HIT_RATE_LINE = re.compile(r"hit_rate=(?P<pct>\d+(\.\d+)?)%")


@pytest.fixture
def drill(request, pg_server, redis_server):
    """A private Redis in the incident's configuration, and a copy of the seeded database."""
    databases = request.config.stash[pytest_plugin.DATABASES]
    pool = request.config.stash[pytest_plugin.POOL]
    with databases.for_snippet(pg_server, read_only=False) as pg_env:
        redis = pool.start_private(redis_server.label, INCIDENT_SETTINGS)
        try:
            yield Drill(pg_server, pg_env, redis)
        finally:
            redis.stop()


class Drill:
    def __init__(self, pg, pg_env, redis) -> None:
        self.pg, self.redis, self.pg_env = pg, redis, pg_env
        self.monitor = redis.env("monitor")
        self.shell_env = common.shell_env(pg_env, redis)
        # The 500 most popular products: the drill's memory budget fits them at any seed scale.
        self.workload = cache.Workload(products=cache.popularity(pg_env)[:500])

    def redis_cli(self, snippet, *, writes: bool = False) -> str:
        env = self.redis.env("admin") if writes else self.monitor
        return common.output(snippet, self.redis, env)

    def shell(self, snippet, *, writes: bool = False) -> str:
        env = self.shell_env if writes else self.redis.env("monitor")
        return common.output(snippet, [self.pg, self.redis], env)

    def play(self, before=lambda: None) -> tuple[float, cache.Result]:
        """Reset the counters (the runbook's snippet), call ``before``, run the workload;
        return hit_rate.sh's figure (checked against what the workload saw) and the result.

        The reset comes first: on Redis 7 CONFIG RESETSTAT frees memory (its error and
        command statistics), which would otherwise leave room for the cache.
        """
        self.redis_cli(RESET, writes=True)
        before()
        result = cache.run(self.redis, self.workload)
        out = self.shell(HIT_RATE)
        match = HIT_RATE_LINE.search(out)
        assert match, f"{HIT_RATE.name} printed no hit_rate=N% line: {out!r}"
        measured = float(match["pct"]) / 100
        assert abs(measured - result.hit_rate) < 0.001, (
            f"{HIT_RATE.name} says {measured:.1%}, the workload saw {result.hit_rate:.1%}: "
            "it must compute hits / (hits + misses) from INFO stats"
        )
        return measured, result

    def diagnostics(self) -> dict[str, str]:
        return {
            INFO_STATS.name: self.redis_cli(INFO_STATS),
            KEYSPACE.name: self.redis_cli(KEYSPACE),
            PREFIXES.name: self.shell(PREFIXES),
        }


def info_field(output: str, name: str) -> int:
    match = re.search(rf"^{re.escape(name)}:(\d+)", output, re.M)
    assert match, f"no {name} in the output:\n{output}"
    return int(match[1])


def prefixes(output: str) -> dict[str, tuple[int, int, int]]:
    """key_prefixes.sh's table: prefix -> (keys, bytes, keys without a TTL)."""
    rows = [line.split() for line in output.splitlines()[1:] if line.strip()]
    return {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in rows}


def test_policy_memory_and_warming_bring_the_same_workload_back_above_70_percent(drill):
    assert len(drill.workload.products) > 100, "the seed has too few products for the drill"

    # -- healthy: every cached key has a TTL, memory is not full ------------------------------
    rate, _ = drill.play()
    assert rate > 0.7, f"the healthy cache already misses: {rate:.1%}"
    baseline = drill.diagnostics()
    assert info_field(baseline[INFO_STATS.name], "evicted_keys") == 0
    assert cache.EXPORT_KEY.format("") not in "".join(baseline.values())

    # -- the incident: an export job fills memory with keys that never expire ------------------
    exported = []
    rate, result = drill.play(lambda: exported.append(cache.run_export_job(drill.redis, 1024)))
    assert exported[0] > 0
    assert rate < 0.7, (
        f"the incident should drive the hit rate under 70 %, got {rate:.1%} ({result})"
    )
    incident = drill.diagnostics()
    stats = incident[INFO_STATS.name]
    assert info_field(stats, "evicted_keys") > 0, f"{INFO_STATS.name} shows no evictions"
    maxmemory = int(re.search(r'"maxmemory"\n\s*2\) "(\d+)"', stats)[1])
    assert info_field(stats, "used_memory") >= 0.9 * maxmemory, (
        f"{INFO_STATS.name}: used_memory is not at maxmemory"
    )
    assert "volatile-lru" in stats, f"{INFO_STATS.name} does not show the eviction policy"
    keys_line = re.search(r"db0:keys=(\d+),expires=(\d+)", incident[KEYSPACE.name])
    assert keys_line and int(keys_line[2]) < 0.1 * int(keys_line[1]), (
        f"{KEYSPACE.name} should show that few keys have a TTL:\n{incident[KEYSPACE.name]}"
    )
    table = prefixes(incident[PREFIXES.name])
    top = max(table, key=lambda p: table[p][1])
    assert top == cache.EXPORT_KEY.format("") and table[top][2] == table[top][0], (
        f"{PREFIXES.name} must put the non-expiring export keys first:\n{incident[PREFIXES.name]}"
    )

    # -- the fix ---------------------------------------------------------------------------
    assert "allkeys-lru" in drill.redis_cli(POLICY, writes=True)
    conf_maxmemory = re.search(r"^maxmemory (\S+)$", REDIS_CONF.read_text(), re.M)[1]
    assert f"CONFIG SET maxmemory {conf_maxmemory}" in MEMORY.body(), (
        f"{MEMORY.name} must set the maxmemory of {REDIS_CONF.name} ({conf_maxmemory})"
    )
    drill.redis_cli(MEMORY, writes=True)

    others = cache.keys(drill.redis, "*") - cache.keys(drill.redis, cache.PRODUCT_KEY.format("*"))
    out = drill.shell(WARM, writes=True)
    assert re.search(r"errors: 0, replies: \d+", out), f"{WARM.name}: {out}"
    warmed = cache.keys(drill.redis, cache.PRODUCT_KEY.format("*"))
    top_products = {cache.PRODUCT_KEY.format(p) for p in drill.workload.products[:100]}
    assert top_products <= warmed, f"{WARM.name} did not load the most popular products"
    ttls = cache.ttls(drill.redis, sorted(warmed))
    assert all(0 < t <= 600 for t in ttls), (
        f"{WARM.name} must give every product key ERPGo's TTL (600 s)"
    )
    assert cache.keys(drill.redis, "*") - warmed == others, f"{WARM.name} touched other keys"
    again = drill.shell(WARM, writes=True)
    assert cache.keys(drill.redis, cache.PRODUCT_KEY.format("*")) == warmed, again

    rate, result = drill.play()
    assert rate > 0.7, f"after the fix the same workload still hits only {rate:.1%} ({result})"
    assert result.failed_writes == 0


def test_warming_refuses_to_hide_errors(request, pg_server, redis_server):
    """A Redis that refuses the writes (noeviction, full) makes the warming script fail."""
    databases = request.config.stash[pytest_plugin.DATABASES]
    pool = request.config.stash[pytest_plugin.POOL]
    with databases.for_snippet(pg_server, read_only=False) as pg_env:
        # noeviction: a full Redis that refuses writes (production's allkeys-lru would evict).
        full = {"maxmemory": "2mb", "maxmemory-policy": "noeviction"}
        redis = pool.start_private(redis_server.label, full)
        try:
            assert cache.run_export_job(redis, size=1024) > 0
            outcome = common.run(WARM, [pg_server, redis], common.shell_env(pg_env, redis))
            assert not outcome.ok, f"{WARM.name} succeeded although Redis refused every SET"
        finally:
            redis.stop()
