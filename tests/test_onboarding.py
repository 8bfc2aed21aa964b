"""The onboarding guide works to the letter: its setup sequence, and its troubleshooting page.

The setup test runs the steps of docs/onboarding/setup.md in page order, as a new hire
with an empty HOME (handbook/guide/onboarding.py). The troubleshooting tests produce each
failure the page describes on real servers and check that the text the page quotes is
what the failing command really prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import childrun
import pytest

import handbook.pytest_plugin
from handbook.guide import onboarding
from handbook.paths import DOCS, ROOT
from handbook.pytest_plugin import unavailable
from handbook.servers.base import ServerUnavailable
from handbook.servers.ports import free_port

# The setup page's steps, in order; the snippets' verified-by headers point here.
SETUP = [
    "shell/onboarding/check_prerequisites.sh",
    "shell/onboarding/install_packages.sh",
    "shell/onboarding/clone.sh",
    "shell/onboarding/create_venv.sh",
    "shell/onboarding/start_services.sh",
    "shell/onboarding/verify_services.sh",
    "shell/onboarding/run_runbook_query.sh",
    "shell/onboarding/stop_services.sh",
]
STOOD_IN_FOR = {"install_packages.sh", "clone.sh", "create_venv.sh"}
TROUBLESHOOTING = DOCS / "onboarding" / "troubleshooting.md"
FIX = "sql/onboarding/enable_pg_stat_statements.sql"


@pytest.fixture
def servers_findable(request: pytest.FixtureRequest) -> None:
    """The dev servers come from the same places as the harness's: none there, no sequence."""
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    missing = None
    try:
        pool.candidates("pg")
        pool.candidates("redis")
    except ServerUnavailable as exc:
        missing = f"the setup sequence needs PostgreSQL and Redis binaries: {exc}"
    if missing:
        unavailable(missing)


def _names(steps) -> list[str]:
    return [s.snippet.name.removeprefix("snippets/") for s in steps]


def test_setup_page_lists_the_steps_in_order():
    steps = onboarding.setup_steps()
    assert _names(steps) == SETUP, (
        f"{onboarding.rel(onboarding.SETUP_PAGE)}: the steps changed; update SETUP in "
        "tests/test_onboarding.py (and the verified-by headers) to match the page"
    )
    skipped = {s.snippet.path.name for s in steps if not s.runs}
    assert skipped == STOOD_IN_FOR, (
        f"steps the runner stands in for are {sorted(skipped)}: only network/root steps may be "
        "lint-only without 'verified-by: tests/test_onboarding.py'"
    )


def test_install_step_installs_what_ci_installs():
    """Step 2 installs nothing that .ci/run (the CI machine) does not install too."""
    step = ROOT / "snippets" / SETUP[1]
    words = step.read_text(encoding="utf-8").split("--no-install-recommends", 1)[1].split()
    packages = {w for w in words if w not in ("\\",)}
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # The packages=( list up to its closing line; comments (which may hold parentheses) out.
    lines = [line.split("#", 1)[0].strip() for line in ci.split("packages=(\n", 1)[1].splitlines()]
    listed = lines[: lines.index(")")]
    ci_packages = {w for line in listed for w in line.split()} | {
        "git"
    }  # git comes with every CI image (the checkout)
    assert packages <= ci_packages, (
        f"snippets/{SETUP[1]}: installs {sorted(packages - ci_packages)}, which .ci/run "
        "does not: add them to the packages list of .ci/run or drop them from the step"
    )


@pytest.mark.covers("20.5")
@pytest.mark.usefixtures("servers_findable")
def test_setup_sequence_runs_as_written():
    results = onboarding.run_setup()
    failed = [r for r in results if not r.ok]
    if failed:
        r = failed[0]
        pytest.fail(f"{r.message}\n--- output ---\n{r.output.rstrip()}", pytrace=False)
    assert [r.step.snippet.name.removeprefix("snippets/") for r in results] == SETUP
    ran = {r.step.snippet.path.name: r for r in results if r.ran}
    assert set(ran) == {name.rsplit("/", 1)[1] for name in SETUP} - STOOD_IN_FOR
    started = ran["start_services.sh"].output
    assert "dev servers started" in started and "PostgreSQL" in started, started
    verify = next(r for r in results if r.step.snippet.path.name == "verify_services.sh")
    expected = onboarding.expected_output(verify.step)
    assert verify.output == expected, (
        f"{verify.step.snippet.name}.out:1: the page shows {expected!r}, the step printed "
        f"{verify.output!r}: fix the step or the .out file"
    )
    query = ran["run_runbook_query.sh"].output
    assert "erpgo" in query and "active" in query, (
        f"snippets/{SETUP[6]}: the connection count should show the new hire's own active "
        f"session:\n{query}"
    )
    assert "dev servers stopped" in ran["stop_services.sh"].output


@pytest.mark.covers("20.5")
@pytest.mark.usefixtures("servers_findable")
def test_servers_are_stopped_when_a_step_fails(monkeypatch):
    """A sequence that fails after starting the servers still stops them."""
    steps = onboarding.setup_steps()
    start = next(s for s in steps if s.snippet.path.name == "start_services.sh")
    verify = next(s for s in steps if s.snippet.path.name == "verify_services.sh")
    seen = {}
    real_run_step = onboarding.run_step

    def run_step(step, checkout, env):
        if step is verify:  # the servers run now: fail as a broken step would
            seen["state"] = onboarding.devservers.state_dir(env)
            seen["pid"] = int((seen["state"] / "daemon.pid").read_text())
            return onboarding.StepResult(step, True, 1, "", "made to fail by the test")
        return real_run_step(step, checkout, env)

    monkeypatch.setattr(onboarding, "run_step", run_step)
    results = onboarding.run_steps([start, verify])
    assert results[0].ok, results[0].message
    assert not results[1].ok
    assert not onboarding.scratch.process_alive(seen["pid"]), (
        "handbook/guide/onboarding.py: the dev servers outlived a failed sequence: new_hire() must "
        "stop them on the way out"
    )
    assert not seen["state"].exists(), (
        "handbook/guide/onboarding.py: the scratch HOME was not removed"
    )


# -- troubleshooting: each quoted error is what the failing command really prints ----------


def _page() -> str:
    return TROUBLESHOOTING.read_text(encoding="utf-8")


def _assert_quoted(quote: str, output: str) -> None:
    assert f"`{quote}`" in _page(), (
        f"{onboarding.rel(TROUBLESHOOTING)}: no longer quotes `{quote}`: quote the error text "
        "the test produces (below), in backticks"
    )
    assert quote in output, (
        f"{onboarding.rel(TROUBLESHOOTING)}: quotes `{quote}`, but the real failure prints:\n"
        f"{output}\nupdate the page and this test to the real text"
    )


def test_troubleshooting_servers_not_started():
    """Skipping the start step: the verify step fails, saying what to run."""
    steps = [s for s in onboarding.setup_steps() if s.snippet.path.name == "verify_services.sh"]
    (result,) = onboarding.run_steps(steps)
    assert not result.ok
    _assert_quoted("handbook.guide.devservers: no dev servers are running", result.output)
    _assert_quoted("python -m handbook.guide.devservers start", result.output)


def test_troubleshooting_wrong_port(pg_server, redis_server):
    """A terminal still holding the ports of servers that were restarted."""
    port = str(free_port())
    env = pg_server.env("admin") | {"PGPORT": port}
    psql = subprocess.run(
        ["psql", "-XAtc", "SELECT 1"], env=env, capture_output=True, text=True, check=False
    )
    assert psql.returncode == 2, psql.stderr
    # The page writes the port as <port>: it is whatever the terminal still holds.
    output = psql.stderr.replace(port, "<port>")
    _assert_quoted(
        'psql: error: connection to server at "127.0.0.1", port <port> failed: Connection refused',
        output,
    )
    _assert_quoted("Is the server running on that host and accepting TCP/IP connections?", output)
    url = redis_server.admin_env["REDIS_URL"].rsplit(":", 1)[0] + f":{port}/0"
    cli = subprocess.run(
        ["redis-cli", "--no-auth-warning", "-u", url, "PING"],
        env=redis_server.env("admin") | {"REDIS_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode != 0
    output = (cli.stdout + cli.stderr).replace(port, "<port>")
    _assert_quoted("Could not connect to Redis at 127.0.0.1:<port>: Connection refused", output)


def test_troubleshooting_missing_extension(pg_server):
    """A database made without the extension (from template0, as restores do)."""
    name = f"newhire_{os.getpid()}"
    admin = pg_server.env("admin")
    create = ["psql", "-XAtc", f"CREATE DATABASE {name} TEMPLATE template0"]
    subprocess.run(create, env=admin, check=True, capture_output=True)
    try:
        query = subprocess.run(
            ["psql", "-XAtc", "SELECT count(*) FROM pg_stat_statements"],
            env=admin | {"PGDATABASE": name},
            capture_output=True,
            text=True,
            check=False,
        )
        _assert_quoted('ERROR:  relation "pg_stat_statements" does not exist', query.stderr)
        # The page's fix, run as the page shows it, in that database.
        fix = subprocess.run(
            ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-f", str(ROOT / "snippets" / FIX)],
            env=admin | {"PGDATABASE": name},
            capture_output=True,
            text=True,
            check=False,
        )
        assert fix.returncode == 0 and fix.stdout.splitlines()[-1] == "t", (
            f"snippets/{FIX}: the page's fix does not fix it:\n{fix.stdout}{fix.stderr}"
        )
        assert f"```{{snippet}} {FIX}" in _page()
    finally:
        drop = ["psql", "-XAtc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]
        subprocess.run(drop, env=admin, check=False, capture_output=True)


# -- the testing page's coverage command --------------------------------------------------

COVERAGE = "shell/onboarding/coverage.sh"


def _run_from_checkout(script: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The command as the page writes it; only plugins it never uses stay unloaded.
    lean = " ".join(childrun.LEAN)
    env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} {lean}".strip()
    return subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.covers("20.5")
def test_coverage_command_measures_and_gates():
    path = ROOT / "snippets" / COVERAGE
    result = _run_from_checkout(path.read_text(encoding="utf-8"))
    assert result.returncode == 0, f"snippets/{COVERAGE}: failed:\n{result.stdout}{result.stderr}"
    assert "handbook/guide/workflow.py" in result.stdout
    assert "Required test coverage of 90% reached" in result.stdout
    # The gate bites: the same command over the five unit examples alone (about 60 %) fails.
    fewer = path.read_text(encoding="utf-8").replace(
        "tests/test_workflow.py", "snippets/python/onboarding/test_onboarding_unit.py"
    )
    result = _run_from_checkout(fewer)
    assert result.returncode != 0 and "not reached" in result.stdout + result.stderr, (
        f"snippets/{COVERAGE}: --cov-fail-under does not fail the run:\n{result.stdout}"
    )


def test_troubleshooting_servers_died(tmp_path):
    """A daemon that died without `stop`: `env` says so and names its log."""
    home = tmp_path / "home"
    state = onboarding.devservers.state_dir({"HOME": str(home)})
    state.mkdir(parents=True)
    child = subprocess.Popen(["true"])  # its pid is gone once waited for
    child.wait()
    (state / "daemon.pid").write_text(f"{child.pid}\n")
    result = subprocess.run(
        ["python", "-m", "handbook.guide.devservers", "env"],
        cwd=ROOT,
        env=onboarding.clean_env(home),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "daemon.log" in result.stderr
    _assert_quoted("handbook.guide.devservers: the dev servers stopped unexpectedly", result.stderr)
