"""``handbook diagnose`` on real servers: healthy baselines name no cause, induced
incidents name theirs, nothing is written, and every error is located, not a traceback.

Each test runs the real command (``python -m handbook diagnose``) against a private
PostgreSQL and Redis of its own. The incidents are the drills' own (``handbook.drills``):
the API's leaked transactions, a lock blocker, a cache that misses. The command's
``--help``, its errors and its markdown are recorded under ``snippets/incident/diagnose/``
for docs/reference/diagnose.md; a run whose output differs fails, and
``--update-outputs`` rewrites them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import handbook.pytest_plugin
from handbook.drills import auth, common, errors
from handbook.drills import pool as drill
from handbook.incident import runbooks
from handbook.paths import ROOT, SNIPPETS
from handbook.prometheus.monitoring import boot_prometheus
from handbook.prometheus.tools import ToolMissing
from handbook.pytest_plugin import unavailable
from handbook.schema.databases import Databases
from handbook.servers.ports import free_port

# the six runbooks an incident drill covers
INCIDENTS = (
    "authentication-failures",
    "connection-pool-exhaustion",
    "database-connectivity",
    "high-error-rate",
    "high-latency",
    "low-cache-hit-rate",
)
SETTINGS = {"max_connections": "20", "superuser_reserved_connections": "1"}
LEAKS = 14  # as the pool drill: with the healthy sessions, above 90 % of 20
RECORDED = SNIPPETS / "incident" / "diagnose"


@pytest.fixture(scope="module")
def servers(request, pg_server, redis_server):
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    pg = pool.start_private(pg_server.label, SETTINGS)
    try:
        redis = pool.start_private(redis_server.label, {})
        try:
            Databases().ensure(pg)
            yield pg, redis
        finally:
            redis.stop()
    finally:
        pg.stop()


@pytest.fixture
def env(servers):
    """The engineer's environment: the monitoring accounts, as the pages tell them."""
    pg, redis = servers
    env = pg.env("monitor") | {"PGDATABASE": drill.DATABASE}
    redis_env = redis.env("monitor")
    env |= {k: v for k, v in redis_env.items() if k == "REDIS_URL" or k.startswith("REDISCLI")}
    if redis.bindir:
        env["PATH"] = f"{env['PATH']}{os.pathsep}{redis.bindir}"
    env.pop("PROMETHEUS_URL", None), env.pop("HANDBOOK_PGBOUNCER_DSN", None)
    env["COLUMNS"] = "100"
    return env


def diagnose(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "handbook", "diagnose", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def findings(env, runbook) -> dict:
    result = diagnose(env, runbook, "--format", "json")
    assert "Traceback" not in result.stderr, (
        f"handbook diagnose {runbook} crashed:\n{result.stderr}"
    )
    assert result.returncode in (0, 1), f"handbook diagnose {runbook}: {result.stderr}"
    return json.loads(result.stdout)


def record(request, name: str, text: str) -> None:
    """Compare ``text`` with the recorded output the page shows; rewrite it on request."""
    request.getfixturevalue("recorded_output")(RECORDED / name, text, "docs/reference/diagnose.md")


def test_the_steps_are_the_pages_own():
    """Each runbook's steps are its investigation section's snippets, in the page's order."""
    books = runbooks.runbooks()
    for name in INCIDENTS:
        book = books[name]
        page = book.path.read_text(encoding="utf-8")
        section = page.split("## Investigation", 1)[1].split("\n## ", 1)[0]
        included = re.findall(r"```\{snippet\} (\S+)", section)
        shown = [s.snippet.name.removeprefix("snippets/") for s in book.steps]
        assert shown == included, f"{book.page}: steps {shown} are not the page's {included}"


@pytest.mark.parametrize("runbook", INCIDENTS)
def test_a_healthy_baseline_names_no_cause(env, runbook):
    result = findings(env, runbook)
    assert result["causes"] == [], f"handbook diagnose {runbook} on a healthy server: {result}"
    statuses = {f["status"] for f in result["findings"]}
    assert "ok" in statuses, f"handbook diagnose {runbook} ran no step: {result['findings']}"


def test_a_writing_step_is_refused(env):
    result = findings(env, "high-latency")
    refused = [f for f in result["findings"] if f["status"] == "refused"]
    assert [f["snippet"] for f in refused] == [
        "snippets/redis/latency/enable_latency_monitor.redis"
    ], f"handbook diagnose high-latency refused {refused}: expected the CONFIG SET step only"
    assert not refused[0]["output"], "a refused step must never run"


def snapshot(pg, redis) -> dict:
    """What diagnose must not change: rows, settings, sessions, Redis keys and config."""
    tables = common.admin_sql(
        pg,
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        drill.DATABASE,
    )
    rows = {
        t: common.admin_sql(pg, f'SELECT count(*) FROM "{t}"', drill.DATABASE)
        for t in tables.split(",")
    }
    settings = common.admin_sql(
        pg,
        "SELECT md5(string_agg(name || '=' || setting, ',' ORDER BY name)) FROM pg_settings; "
        "SELECT count(*) FROM pg_db_role_setting",
    )
    client = common.redis_client(redis)
    try:
        keys = (client.dbsize(), sorted(client.config_get("*").items()))
    finally:
        client.close()
    return {"rows": rows, "settings": settings, "redis": keys}


def test_nothing_is_written_during_an_incident(servers, env):
    """Pointed at a server in the middle of a leak: no rows, settings or sessions change."""
    pg, redis = servers
    with drill.sessions(pg) as s:
        s.idle()
        leaks = [s.leak(order_id) for order_id in range(1, 4)]
        pids = {c.info.backend_pid for c in leaks}
        before = snapshot(pg, redis)
        for runbook in INCIDENTS:
            findings(env, runbook)
        after = snapshot(pg, redis)
        alive = drill.pids(pg, f"pid IN ({','.join(map(str, pids))})")
    assert alive == pids, f"handbook diagnose ended sessions {sorted(pids - alive)}"
    assert after["rows"] == before["rows"], "handbook diagnose changed rows"
    assert after["settings"] == before["settings"], "handbook diagnose changed settings"
    assert after["redis"] == before["redis"], "handbook diagnose changed Redis"


def test_a_pool_leak_is_named(servers, env):
    pg, _ = servers
    with drill.sessions(pg) as s:
        s.idle(), s.idle(), s.busy(), s.idle(drill.WORKER)
        for order_id in range(1, LEAKS + 1):
            s.leak(order_id)
        result = findings(env, "DatabaseConnectionPoolExhausted")
        shown = diagnose(env, "DatabaseConnectionPoolExhausted")
    # the text form: each step's title from the page, its command, its table, the page's
    # "what to look for", and the verdict
    book = runbooks.find("connection-pool-exhaustion")
    step = next(s for s in book.steps if s.snippet.name.endswith("connections_by_state.sql"))
    for expected in (
        f"Step {step.number}. {step.title}",
        "FROM pg_stat_activity",
        f"What to look for: {step.guidance[:40]}",
        "Verdict: PostgreSQL is",
        "Cause found:",
    ):
        assert expected in shown.stdout, (
            f"handbook diagnose's text lacks {expected!r}:\n{shown.stdout}"
        )
    for column in ("pct_of_max", "pct_used"):  # both results' tables, as rich draws them
        assert re.search(rf"┃\s*{column}\s*┃", shown.stdout), f"no {column} table:\n{shown.stdout}"
    assert shown.returncode == 1, f"a cause found must exit 1, got {shown.returncode}"
    causes = " ".join(result["causes"])
    assert "idle in transaction" in causes and "erpgo-api" in causes, result["causes"]
    assert "% full (above 90 %" in causes, f"pct_used above 90 % not named: {result['causes']}"


def test_a_lock_blocker_is_named(servers, env):
    pg, _ = servers
    with drill.sessions(pg) as s:
        blocker = s.leak(1).info.backend_pid
        waiter = s.connect(drill.API)
        waiter.pgconn.send_query(b"UPDATE orders SET status = status WHERE id = 1")
        common.wait_for(
            lambda: drill.pids(pg, f"{blocker} = ANY(pg_blocking_pids(pid))"),
            "the UPDATE waiting on the leaked lock",
        )
        result = findings(env, "HighResponseTime")
    assert any(f"pid {blocker} blocks" in c for c in result["causes"]), result


def test_a_cold_cache_is_named(servers, env):
    _, redis = servers
    client = common.redis_client(redis)
    try:
        client.config_resetstat()
        client.set("erpgo:product:1", "{}", ex=600)
        for product in range(1, 41):  # one hit in 40 lookups
            client.get(f"erpgo:product:{product}")
        result = findings(env, "LowCacheHitRate")
    finally:
        client.config_resetstat()
        client.close()
    assert any("hit rate 2.5 % (under 70 %)" in c for c in result["causes"]), result


def test_failing_transactions_are_named(servers, env):
    """The high-error-rate runbook's step 5 names deadlocks, then serialization failures,
    from the drill's own workloads on a database of the reference schema."""
    pg, _ = servers
    admin = errors.create_database(pg, "erpgo_errors")
    with errors.running(admin, "deadlocks") as workload:
        common.wait_for(lambda: workload.failures["40P01"], "a deadlock in the workload")
        result = findings(env, "HighErrorRate")
    assert any("deadlock(s) in erpgo_errors" in c for c in result["causes"]), result
    with errors.running(admin, "serialization") as workload:
        common.wait_for(lambda: workload.failures["40001"], "a serialization failure")
        result = findings(env, "HighErrorRate")
    assert any("erpgo_errors's transactions rolled back" in c for c in result["causes"]), result


def test_a_brute_force_is_named(servers, env):
    """The authentication runbook's classification names the attack, its source and target."""
    pg, _ = servers
    admin = pg.env("admin") | {"PGDATABASE": drill.DATABASE}
    common.psql(
        admin,
        "INSERT INTO login_attempts (user_id, username, ip, user_agent, success, reason, "
        f"attempted_at) SELECT u.id, u.username, '{auth.BRUTE_FORCE_IP}', 'curl/8', false, "
        "'bad_password', now() - n * interval '1 second' FROM users AS u, "
        f"generate_series(1, 30) AS n WHERE u.username = '{auth.BRUTE_FORCE_ACCOUNT}'",
    )
    try:
        result = findings(env, "HighFailedLoginRate")
    finally:  # the other tests' healthy baseline must not see the attack
        common.psql(admin, f"DELETE FROM login_attempts WHERE ip = '{auth.BRUTE_FORCE_IP}'")
    expected = f"brute force from {auth.BRUTE_FORCE_IP} on {auth.BRUTE_FORCE_ACCOUNT} (30 failures)"
    assert any(expected in c for c in result["causes"]), result["causes"]


# -- errors, and what the page shows -------------------------------------------------------


def clean(text: str, port: int | None = None) -> str:
    if port is not None:
        text = text.replace(f":{port}", ":<port>").replace(f"port {port}", "port <port>")
    return re.sub(r"\(PostgreSQL [^)]*\)", "(PostgreSQL)", text)


def test_help(request, env):
    result = diagnose(env | {"COLUMNS": "88"}, "--help")
    assert result.returncode == 0, result.stderr
    record(request, "help.txt", result.stdout)


def test_unknown_runbook_is_a_listed_error(request, env):
    result = diagnose(env, "PoolExhausted")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "unknown runbook or alert 'PoolExhausted'" in result.stderr
    assert "DatabaseConnectionPoolExhausted" in result.stderr, "the known alerts are not listed"
    record(request, "unknown-runbook.txt", result.stderr)


def test_a_missing_variable_names_the_step_that_needs_it(request, env):
    bare = {k: v for k, v in env.items() if not k.startswith("PG")}
    result = diagnose(bare, "connection-pool-exhaustion")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    book = runbooks.find("connection-pool-exhaustion")
    first = next(s for s in book.steps if s.snippet.kind == "sql")
    assert f"{book.page}:{first.line}: step {first.number}" in result.stderr, result.stderr
    assert "PGHOST or HANDBOOK_PG_DSN is not set" in result.stderr, result.stderr
    record(request, "missing-variable.txt", result.stderr)


def test_an_unreachable_server_is_a_finding(request, env):
    port = free_port()
    dead = env | {"PGHOST": "127.0.0.1", "PGPORT": str(port)}
    result = diagnose(dead, "connection-pool-exhaustion", "--format", "markdown")
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == 1, f"a dead server must be a finding (exit 1): {result.stderr}"
    assert f"PostgreSQL at 127.0.0.1:{port} does not answer" in result.stdout, result.stdout
    record(request, "unreachable.md.txt", clean(result.stdout, port))


def test_the_markdown_for_the_incident_channel(request, env):
    result = diagnose(env, "connection-pool-exhaustion", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert "](https://" in result.stdout and "#connection-pool-exhaustion)" in result.stdout
    summary = result.stdout.split("\n<details>", 1)[0].rstrip() + "\n"
    record(request, "healthy.md.txt", summary)


def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("handbook")
    assert script.exists(), (
        f"{script}: no console script: pyproject.toml's [project.scripts] names handbook; "
        "reinstall the package (pip install -e .)"
    )


def test_a_dsn_names_the_server(env):
    """HANDBOOK_PG_DSN instead of PG*: the same server, the same steps."""
    dsn = (
        f"postgresql://{env['PGUSER']}:{env.get('PGPASSWORD', '')}@{env['PGHOST']}:"
        f"{env['PGPORT']}/{env['PGDATABASE']}"
    )
    bare = {k: v for k, v in env.items() if not k.startswith("PG")} | {"HANDBOOK_PG_DSN": dsn}
    result = findings(bare, "connection-pool-exhaustion")
    statuses = {f["snippet"]: f["status"] for f in result["findings"]}
    assert statuses["snippets/sql/pool/connections_by_state.sql"] == "ok", result["findings"]


def test_promql_steps_ask_a_real_prometheus(env):
    """The PromQL steps go to the Prometheus given (Debian's, booted from conf/), and a
    Prometheus that does not answer is a finding."""
    try:
        prometheus = boot_prometheus()
    except ToolMissing as exc:
        unavailable(str(exc))
    try:
        url = f"http://127.0.0.1:{prometheus.port}"
        result = findings(env | {"PROMETHEUS_URL": url}, "connection-pool-exhaustion")
    finally:
        prometheus.stop()
    step = result["findings"][0]
    assert step["snippet"].endswith(".promql") and step["status"] == "ok", step
    assert step["output"].startswith("labels | value"), step
    dead = f"http://127.0.0.1:{free_port()}"
    result = findings(env | {"PROMETHEUS_URL": dead}, "connection-pool-exhaustion")
    step = result["findings"][0]
    assert step["status"] == "unreachable", step
    assert f"Prometheus at {dead} does not answer" in result["causes"], result["causes"]
