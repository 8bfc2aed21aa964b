"""Drill for runbooks/authentication-failures.md: three attacks at once, each handled its own way.

On a copy of the seeded database (normal login traffic) and a Redis of its own, the drill
runs the runbook's diagnostics on the quiet baseline, injects a brute force, a credential
stuffing and a distributed attack, runs them again, then the resolution snippets: IP
blocking must hit exactly the brute-force and stuffing addresses, account protection
exactly the attacked and compromised accounts, and every normal user must still get in.
"""

from __future__ import annotations

import pytest

from handbook import pytest_plugin
from handbook.drills import auth, common

pytestmark = [
    pytest.mark.drill,
    pytest.mark.covers("20.2"),
    pytest.mark.covers("next:drill"),
    pytest.mark.covers("next:automate"),
]

PER_MINUTE = common.snippet("sql/auth/failed_logins_per_minute.sql")
CLASSIFY = common.snippet("sql/auth/classify_attacks.sql")
COMPROMISED = common.snippet("sql/auth/compromised_accounts.sql")
LOCK = common.snippet("sql/auth/lock_targeted_accounts.sql")
BLOCK = common.snippet("shell/auth/block_attacking_ips.sh")
BLOCKED = common.snippet("shell/auth/blocked_ips.sh")
UNBLOCK = common.snippet("redis/auth/unblock_ip.redis")

ATTACKERS = {auth.BRUTE_FORCE_IP: "brute-force"} | dict.fromkeys(
    auth.STUFFING_IPS, "credential-stuffing"
)
TARGETS = {auth.BRUTE_FORCE_ACCOUNT, auth.DISTRIBUTED_ACCOUNT, *auth.STUFFING_COMPROMISED}
# What names the cause: none of it may show before the attack.
CAUSE = [*ATTACKERS, auth.DISTRIBUTED_IPS[0], *TARGETS]


@pytest.fixture
def drill(request, pg_server, redis_server):
    """A copy of the seeded database on ``pg_server`` and a private Redis like ``redis_server``."""
    databases = request.config.stash[pytest_plugin.DATABASES]
    pool = request.config.stash[pytest_plugin.POOL]
    with databases.for_snippet(pg_server, read_only=False) as admin_env:
        redis = pool.start_private(redis_server.label)
        try:
            yield Drill(pg_server, admin_env, redis)
        finally:
            redis.stop()


class Drill:
    def __init__(self, pg, admin_env, redis) -> None:
        self.pg, self.admin_env, self.redis = pg, admin_env, redis
        self.monitor_env = pg.env("monitor") | {"PGDATABASE": admin_env["PGDATABASE"]}
        self.shell_env = common.shell_env(admin_env, redis)

    def sql(self, snippet, *, writes: bool = False) -> str:
        return common.output(snippet, self.pg, self.admin_env if writes else self.monitor_env)

    def shell(self, snippet) -> str:
        return common.output(snippet, [self.pg, self.redis], self.shell_env)

    def redis_cli(self, snippet) -> str:
        return common.output(snippet, self.redis, self.redis.env("admin"))


def diagnostics(drill: Drill) -> dict[str, str]:
    return {
        s.name: drill.sql(s) if s.kind == "sql" else drill.shell(s)
        for s in (PER_MINUTE, CLASSIFY, COMPROMISED, BLOCKED)
    }


def test_attacks_are_told_apart_and_stopped_without_locking_out_normal_users(drill):
    # -- the quiet baseline ----------------------------------------------------------------
    auth.bring_to_now(drill.admin_env)
    locked_before = auth.locked_accounts(drill.admin_env)
    normal = [
        login
        for login in auth.recent_logins(drill.admin_env)
        if login.username not in TARGETS and login.username not in locked_before
    ]
    assert normal, "the seed has no successful logins in the last 15 minutes to protect"
    baseline = diagnostics(drill)
    per_minute = common.table(baseline[PER_MINUTE.name], -1)
    assert all(int(r["failures"]) <= 10 for r in per_minute), (
        f"{PER_MINUTE.name}: the seed's normal traffic already fails more than 10 logins a "
        f"minute, so the drill cannot tell the attack from it:\n{baseline[PER_MINUTE.name]}"
    )
    for name in (CLASSIFY.name, COMPROMISED.name):
        assert common.table(baseline[name], -1) == [], (
            f"{name} reports an attack in normal traffic: raise its thresholds\n{baseline[name]}"
        )
    assert "0 address(es) blocked" in drill.shell(BLOCK), f"{BLOCK.name} blocked normal users"
    assert auth.blocked_addresses(drill.redis) == {}
    assert auth.locked_accounts(drill.admin_env) == locked_before

    # -- the attack ------------------------------------------------------------------------
    auth.inject_attacks(drill.admin_env)
    incident = diagnostics(drill)

    failures = [int(r["failures"]) for r in common.table(incident[PER_MINUTE.name], -1)]
    assert max(failures) > 10, f"{PER_MINUTE.name} does not show the alert's rate: {failures}"

    attacks = {
        (r["attack"], r["source"], r["target"]) for r in common.table(incident[CLASSIFY.name], -1)
    }
    expected = {
        ("brute force", auth.BRUTE_FORCE_IP, auth.BRUTE_FORCE_ACCOUNT),
        ("distributed", f"{len(auth.DISTRIBUTED_IPS)} addresses", auth.DISTRIBUTED_ACCOUNT),
    }
    stuffing = {a for a in attacks if a[0] == "credential stuffing"}
    assert attacks - stuffing == expected, (
        f"{CLASSIFY.name} labels the attacks wrongly:\n{incident[CLASSIFY.name]}"
    )
    assert {a[1] for a in stuffing} == set(auth.STUFFING_IPS), incident[CLASSIFY.name]
    assert all(a[2].endswith(" accounts") for a in stuffing), incident[CLASSIFY.name]

    compromised = {
        (r["username"], r["source"]) for r in common.table(incident[COMPROMISED.name], -1)
    }
    assert {c[0] for c in compromised} == set(auth.STUFFING_COMPROMISED), (
        f"{COMPROMISED.name} must list exactly the accounts the stuffing list got into:\n"
        f"{incident[COMPROMISED.name]}"
    )
    assert {c[1] for c in compromised} <= set(auth.STUFFING_IPS)

    for token in CAUSE:
        shown_now = [name for name, out in incident.items() if token in out]
        shown_before = [name for name, out in baseline.items() if token in out]
        if token not in auth.DISTRIBUTED_IPS:  # those addresses are on no list: by design
            assert shown_now, f"no diagnostic names {token} during the attack"
        assert not shown_before, f"{shown_before} name {token} before any attack"

    # -- IP blocking -----------------------------------------------------------------------
    out = drill.shell(BLOCK)
    blocked = auth.blocked_addresses(drill.redis)
    assert blocked == ATTACKERS, (
        f"{BLOCK.name} must block the brute-force and stuffing addresses and nothing else "
        f"(distributed-attack addresses are left to account protection); blocked {blocked}\n{out}"
    )
    assert all(0 < auth.block_ttl(drill.redis, ip) <= 3600 for ip in blocked), (
        f"{BLOCK.name}: every block must expire within the hour"
    )
    drill.shell(BLOCK)  # again: the same blocks, renewed
    assert auth.blocked_addresses(drill.redis) == ATTACKERS, f"{BLOCK.name} is not idempotent"
    listed = drill.shell(BLOCKED)
    assert sorted(line.split()[0] for line in listed.splitlines()) == sorted(ATTACKERS), listed

    # -- account protection ----------------------------------------------------------------
    out = drill.sql(LOCK, writes=True)
    locked = auth.locked_accounts(drill.admin_env)
    assert locked - locked_before == TARGETS, (
        f"{LOCK.name} must lock the brute-forced, the distributed-attack target and the "
        f"compromised accounts, and nothing else; it locked {sorted(locked - locked_before)}\n{out}"
    )
    until = common.psql(drill.admin_env, "SELECT username, locked_until FROM users ORDER BY id")
    drill.sql(LOCK, writes=True)
    assert common.psql(drill.admin_env, "SELECT username, locked_until FROM users ORDER BY id") == (
        until
    ), f"{LOCK.name} run twice changed the locks: it must be idempotent"
    revoked = common.psql(
        drill.admin_env,
        "SELECT DISTINCT u.username FROM sessions AS s JOIN users AS u ON u.id = s.user_id "
        "WHERE s.revoked_at IS NOT NULL ORDER BY 1",
    ).split()
    assert set(revoked) <= set(auth.STUFFING_COMPROMISED), (
        f"{LOCK.name} revoked sessions of accounts that were not taken over: {revoked}"
    )

    # -- who gets in now -------------------------------------------------------------------
    refused = auth.refused_logins(drill.admin_env, drill.redis, normal)
    assert refused == {}, f"normal users are locked out after the runbook: {refused}"
    attackers = [auth.Login(auth.BRUTE_FORCE_ACCOUNT, auth.BRUTE_FORCE_IP)] + [
        auth.Login(auth.DISTRIBUTED_ACCOUNT, ip) for ip in auth.DISTRIBUTED_IPS[:3]
    ]
    attackers += [auth.Login(user, auth.STUFFING_IPS[0]) for user in auth.STUFFING_COMPROMISED]
    assert set(auth.refused_logins(drill.admin_env, drill.redis, attackers)) == set(attackers)

    # -- unblocking one address touches only that key ----------------------------------------
    drill.redis_cli(UNBLOCK)
    remaining = auth.blocked_addresses(drill.redis)
    assert remaining == {ip: why for ip, why in ATTACKERS.items() if ip != auth.BRUTE_FORCE_IP}, (
        f"{UNBLOCK.name} must remove the block of {auth.BRUTE_FORCE_IP} only: {remaining}"
    )
