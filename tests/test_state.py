"""Where state lives, and the server settings the runbooks depend on, agree with conf/.

- Sessions have one home, PostgreSQL's ``sessions`` table: the schema creates it, and
  no page puts them in Redis.
- ``idle_in_transaction_session_timeout``: the pool runbook states the value
  ``postgresql.conf`` sets, and on a real server started from that file a leaked
  transaction is ended as the runbook says (the client's error, the log line, the
  ``sessions_fatal`` counter its snippet reads).
- The WAL archive: the disaster-recovery page names the directory ``archive_command``
  writes to, and ERPGo's catalogue the same ``archive_timeout``.
- IP blocks in an ``allkeys-lru`` cache: on a real Redis started from ``redis.conf``
  (a small ``maxmemory``), evictions take IP blocks like any key, even one its address
  keeps reading (Redis's LRU is sampled and counts in seconds), and nothing but the
  cache runbook's check shows it.
"""

from __future__ import annotations

import re
import subprocess

import psycopg
import pytest
import yaml

from handbook.drills import common
from handbook.paths import CONF, DOCS, SNIPPETS, rel
from handbook.pytest_plugin import POOL, unavailable
from handbook.servers.base import Server

PG_CONF = CONF / "postgresql" / "postgresql.conf"
POOL_RUNBOOK = DOCS / "runbooks" / "connection-pool-exhaustion.md"
DR_PAGE = DOCS / "architecture" / "disaster-recovery.md"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def conf_setting(name: str) -> tuple[str, int]:
    """(value as written, line) of a postgresql.conf setting."""
    for number, line in enumerate(PG_CONF.read_text(encoding="utf-8").splitlines(), 1):
        match = re.match(rf"\s*{name}\s*=\s*('(?:[^']*)'|\S+)", line)
        if match:
            return match[1].strip("'"), number
    pytest.fail(f"{rel(PG_CONF)}: {name} is not set")


def sentences(text: str) -> list[tuple[int, str]]:
    """(line, sentence) of a page's prose, fenced blocks left out."""
    found, fence, start, buffer = [], False, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", ":::")):
            fence = not fence
            continue
        if fence:
            continue
        if not buffer:
            start = number
        buffer.append(line)
        if line.strip() == "" or re.search(r"[.:]\s*$", line):
            found.append((start, " ".join(buffer)))
            buffer = []
    return found


# --------------------------------------------------------------------------- sessions


def test_sessions_live_in_postgresql_on_every_page():
    migration = (SNIPPETS / "migrations" / "0002_create_sessions.up.sql").read_text()
    assert "CREATE TABLE sessions" in migration
    for page in ("architecture/index.md", "onboarding/codebase.md"):
        text = " ".join((DOCS / page).read_text(encoding="utf-8").split())
        assert "login sessions included" in text, f"docs/{page}: say where sessions live"
    for path in PAGES:
        for line, sentence in sentences(path.read_text(encoding="utf-8")):
            says_redis = "Redis" in sentence and re.search(r"\bsessions\b", sentence)
            if says_redis and "PostgreSQL" not in sentence and "no session" not in sentence:
                pytest.fail(
                    f"{rel(path)}:{line}: a sentence puts sessions beside Redis without saying "
                    f"they live in PostgreSQL (table sessions): {sentence.strip()[:160]}"
                )


# ------------------------------------------------------------ the idle-in-transaction timeout


def test_the_pool_runbook_states_the_timeout_postgresql_conf_sets():
    value, line = conf_setting("idle_in_transaction_session_timeout")
    cited = f"`idle_in_transaction_session_timeout = {value}`"
    text = POOL_RUNBOOK.read_text(encoding="utf-8")
    assert cited in text, (
        f"{rel(POOL_RUNBOOK)}: state the server's timeout as {cited} "
        f"({rel(PG_CONF)}:{line} sets it)"
    )


def _psql(server: Server, sql: str, role: str = "admin") -> str:
    done = subprocess.run(
        ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=server.env(role), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def pg_labels(config) -> list[str]:
    pool = config.stash[POOL]
    return [c.label for c in pool.candidates("pg", required=False) if not c.read_only]


@pytest.fixture
def private_pg(request):
    pool = request.config.stash[POOL]
    labels = pg_labels(request.config)
    if not labels:
        unavailable("no local PostgreSQL server (see README)")
    servers = [pool.start_private(label) for label in labels]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


# The leaking session's own idle_in_transaction_session_timeout, instead of the file's
# 60 s: any value proves the server ends a session idle in its transaction, and the test
# polls for the end rather than waiting a fixed time, so it waits this long and no more.
LEAK_TIMEOUT = "200ms"


def test_a_leaked_transaction_is_ended_as_the_pool_runbook_says(private_pg):
    """Started from conf/postgresql/postgresql.conf, the server ends a session idle in its
    transaction: the leaking session shortens its own timeout (LEAK_TIMEOUT) so that the
    test takes a moment; the end, the counter and the log line are polled for."""
    for server in private_pg:
        leak_is_ended(server)


def leak_is_ended(server: Server) -> None:
    value, _ = conf_setting("idle_in_transaction_session_timeout")
    snippet = SNIPPETS / "sql/state/idle_timeout_ends.sql"
    running = _psql(server, "SHOW idle_in_transaction_session_timeout")
    assert running in ("1min", value), f"{server.describe()} runs {running}, conf sets {value}"
    database = _psql(server, "SELECT current_database()")
    before = int(_psql(server, "SELECT sessions_fatal FROM pg_stat_database "
                               "WHERE datname = current_database()"))  # fmt: skip
    leak = common.connect(
        server.env("admin"), "leaking-client", autocommit=False,
        options=f"-c idle_in_transaction_session_timeout={LEAK_TIMEOUT}",
    )  # fmt: skip
    with leak:
        leak.execute("SELECT count(*) FROM pg_class").fetchone()  # BEGIN, then idle
        pid = leak.info.backend_pid
        common.wait_for(
            lambda: (
                _psql(server, f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}") == "0"
            ),
            f"the server ending the session idle in its transaction ({LEAK_TIMEOUT})",
        )
        with pytest.raises(psycopg.Error) as ended:  # 25P03, then the connection closes
            leak.execute("SELECT 'still here'").fetchone()
    assert "terminating connection due to idle-in-transaction timeout" in str(ended.value)

    def fatal() -> int:
        done = subprocess.run(
            ["psql", "-X", "-A", "-v", "ON_ERROR_STOP=1", "-f", str(snippet)],
            env=server.env("monitor"), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{rel(snippet)} on {server.describe()}: {done.stderr}"
        row = next(line for line in done.stdout.splitlines() if line.startswith(f"{database}|"))
        return int(row.split("|")[1])

    # the ended session's statistics reach pg_stat_database as its backend exits
    common.wait_for(lambda: fatal() > before, f"{rel(snippet)} counting the ended session")
    assert fatal() == before + 1, (rel(snippet), before)
    if server.provider != "local":
        return  # a container logs to its own stdout, not to files in server.scratch
    line = "FATAL:  terminating connection due to idle-in-transaction timeout"
    common.wait_for(
        lambda: any(
            line in p.read_text(errors="replace") for p in server.scratch.rglob("*.log")
            if p.is_file()
        ),
        f"the server log's {line!r}",
    )  # fmt: skip


# -------------------------------------------------------------------------- the WAL archive


def test_the_dr_page_names_the_archive_target_and_timeout_of_postgresql_conf():
    command, line = conf_setting("archive_command")
    directories = set(re.findall(r"(/\S+?)/%f", command))
    assert len(directories) == 1, f"{rel(PG_CONF)}:{line}: one archive directory expected"
    (directory,) = directories
    text = DR_PAGE.read_text(encoding="utf-8")
    assert f"`{directory}`" in text, (
        f"{rel(DR_PAGE)}: name the archive target {directory} ({rel(PG_CONF)}:{line})"
    )
    timeout, line = conf_setting("archive_timeout")
    options = yaml.safe_load((CONF / "erpgo" / "options.yml").read_text(encoding="utf-8"))
    option = next(o for o in options["options"] if o["name"] == "ERPGO_BACKUP_WAL_ARCHIVE_TIMEOUT")
    assert option["default"] == timeout, (
        f"conf/erpgo/options.yml: ERPGO_BACKUP_WAL_ARCHIVE_TIMEOUT is {option['default']}, "
        f"{rel(PG_CONF)}:{line} sets archive_timeout = {timeout}"
    )
    assert f"{int(timeout.rstrip('s')) // 60} minutes" in " ".join(text.split())


# ------------------------------------------------------------------ IP blocks and evictions


def _cli(server: Server, *args: str) -> str:
    env = server.env("admin")
    done = subprocess.run(
        ["redis-cli", "--no-auth-warning", "-e", "-u", env["REDIS_URL"], *args],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _security_keys(server: Server) -> dict[str, int]:
    snippet = SNIPPETS / "shell/state/security_keys.sh"
    done = subprocess.run(
        ["bash", str(snippet)], env=server.env("monitor"),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{rel(snippet)}: {done.stderr}"
    return {line.split(":")[0]: int(line.rsplit(":", 1)[1]) for line in done.stdout.splitlines()}


def test_evictions_take_ip_blocks_and_only_the_cache_runbooks_check_shows_it(request):
    pool = request.config.stash[POOL]
    labels = [c.label for c in pool.candidates("redis", required=False) if not c.read_only]
    if not labels:
        unavailable("no local Redis server (see README)")
    server = pool.start_private(labels[0], {"maxmemory": "2mb"})
    try:
        assert _cli(server, "CONFIG", "GET", "maxmemory-policy").split() == [
            "maxmemory-policy", "allkeys-lru"
        ], "conf/redis/redis.conf sets allkeys-lru"  # fmt: skip
        _cli(server, "SET", "erpgo:blocked_ip:203.0.113.7", "brute-force", "EX", "3600")
        _cli(server, "SET", "erpgo:blocked_ip:198.51.100.9", "credential-stuffing", "EX", "3600")
        assert _security_keys(server)["ip blocks"] == 2
        value = "x" * 1024
        for batch in range(40):  # 20 MB of cache entries through a 2 MB cache
            pipe = [f"SET erpgo:product:{batch}:{i} {value} EX 600" for i in range(500)]
            pipe.append("GET erpgo:blocked_ip:198.51.100.9")  # that address keeps trying
            subprocess.run(
                ["redis-cli", "--no-auth-warning", "-u", server.env("admin")["REDIS_URL"]],
                input="\n".join(pipe) + "\n", env=server.env("admin"),
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
        after = _security_keys(server)
        assert after["ip blocks"] < 2, "an evicting cache took no IP block: revisit the pages"
        assert after["evicted keys since the last restart or statistics reset"] > 0
    finally:
        server.stop()
