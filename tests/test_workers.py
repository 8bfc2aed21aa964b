"""How many xdist workers a run takes when nobody says (handbook/pytest_plugin.py
``pytest_cmdline_main``), and that a page's run on workers still says what it left to the
full run.

Each case is a real ``pytest`` with the handbook's plugins, its CPUs limited with
``sched_setaffinity`` as a container or ``taskset`` limits them. A probe plugin writes
the worker count the run settled on and stops it before any worker starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import childrun
import pytest

from handbook.paths import ROOT
from handbook.pytest_plugin import WORKERS_VAR

pytestmark = pytest.mark.whole_run("checks the harness's worker counts, not a page")

PAGE = "/".join(("docs", "runbooks", "watchdog.md"))  # spelled apart: not a test of the page

PROBE = '''\
"""Writes the worker count a run chose, then ends the run before a worker starts."""
import os
import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    with open(os.environ["WORKERS_PROBE_OUT"], "w") as out:
        out.write(str(config.option.numprocesses))
    pytest.exit("workers probe: done", returncode=0)
'''


def cpus_here() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def child_env(**extra: str) -> dict[str, str]:
    """This environment as a person's shell has it: this run tells its children to run
    serially (HANDBOOK_WORKERS=0), and a worker's children see PYTEST_XDIST_WORKER."""
    env = {k: v for k, v in os.environ.items() if k not in (WORKERS_VAR, "PYTEST_XDIST_WORKER")}
    return env | extra


def chosen(tmp: Path, name: str, cpus: list[int], *args: str, **env: str) -> str:
    """The ``numprocesses`` that ``pytest ARGS`` chooses on ``cpus``."""
    (tmp / "workers_probe.py").write_text(PROBE, encoding="utf-8")
    out = tmp / f"{name}.out"
    path = os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *childrun.LEAN, "-p", "workers_probe", *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
        env=child_env(PYTHONPATH=path, WORKERS_PROBE_OUT=str(out), **env),
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )  # fmt: skip
    if not out.exists():
        said = result.stdout[-1500:] + result.stderr[-1500:]
        return f"no count (exit {result.returncode}): {said}"
    return out.read_text(encoding="utf-8")


def test_the_default_worker_count_follows_the_cpus_and_the_kind_of_run(tmp_path):
    """Two workers per CPU for the whole run, one per CPU for a page's run, serial on one
    CPU or when asked; ``-n`` and HANDBOOK_WORKERS win."""
    many = cpus_here()
    one = many[:1]
    n = len(many)
    whole = str(n * 2) if n > 1 else "0"  # two per CPU, as the README says
    cases = {
        "whole run, one CPU": (one, (), {}, "0"),
        f"whole run, {n} CPUs": (many, (), {}, whole),
        f"a page's run, {n} CPUs": (many, (PAGE,), {}, str(n) if n > 1 else "0"),
        "a page's run, one CPU": (one, (PAGE,), {}, "0"),
        "--collect-only": (many, ("--collect-only",), {}, "0"),
        "-n 1": (many, ("-n", "1"), {}, "1"),
        f"{WORKERS_VAR}=3": (many, (), {WORKERS_VAR: "3"}, "3"),
        f"{WORKERS_VAR}=0": (many, (), {WORKERS_VAR: "0"}, "0"),
    }
    with ThreadPoolExecutor(4) as pool:
        futures = {
            name: pool.submit(chosen, tmp_path, f"case{i}", cpus, *args, **env)
            for i, (name, (cpus, args, env, _)) in enumerate(cases.items())
        }
        got = {name: future.result() for name, future in futures.items()}
    wanted = {name: case[3] for name, case in cases.items()}
    assert got == wanted, (
        "handbook/pytest_plugin.py pytest_cmdline_main / default_workers chose other worker "
        f"counts than the README and its docstring say:\n  got    {got}\n  wanted {wanted}"
    )


def test_a_bad_worker_count_is_a_usage_error_naming_the_variable(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *childrun.LEAN, "--collect-only", "-q", PAGE],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
        env=child_env(**{WORKERS_VAR: "many"}),
    )  # fmt: skip
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"{WORKERS_VAR}='many': give a number, 0 or 'auto'" in result.stderr, result.stderr


def left_to_the_full_run(*args: str) -> list[str]:
    """The "left to the full run" lines of ``pytest PAGE ARGS``, with every test deselected
    (``-k``): the page's collection, and what it leaves out, without its servers."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *childrun.LEAN, "-q", PAGE, "-k", "no_test_is_named_so",
         *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300, env=child_env(),
    )  # fmt: skip
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("left to the full run")]


def test_workers_report_what_a_page_left_to_the_full_run():
    """The items a page's run leaves out are counted where they are collected, in each
    worker; the controller prints the same lines as a serial run."""
    with ThreadPoolExecutor(2) as pool:
        serial = pool.submit(left_to_the_full_run, "-n", "0")
        workers = pool.submit(left_to_the_full_run, "-n", "2")
        serial_lines, worker_lines = serial.result(), workers.result()
    assert serial_lines, f"pytest {PAGE} leaves nothing to the full run: pick another page"
    assert worker_lines == serial_lines, (
        "with -n 2 the controller printed other 'left to the full run' lines than a serial "
        "run (handbook/pytest_plugin.py pytest_testnodedown, workeroutput "
        f"handbook_left_out):\n  -n 2: {worker_lines}\n  -n 0: {serial_lines}"
    )


DOCKER_PROBE = '''\
"""In a worker: what the controller said of the Docker engine, and what the pool took."""
import json
import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    from handbook.pytest_plugin import POOL  # here: imported early, it escapes rewriting

    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:  # the controller
        return
    heard = {
        "sent": workerinput.get("handbook_docker", "not sent"),
        # before any test has asked: only the controller's answer can have set it
        "pool": config.stash[POOL]._docker,
    }
    with open(os.environ["DOCKER_PROBE_OUT"], "w") as out:
        json.dump(heard, out)
'''


def test_workers_take_the_controllers_answer_about_the_docker_engine(tmp_path):
    """Every worker must parametrize with the same servers, so none asks the engine
    itself: the controller's answer reaches each worker's pool (handbook/pytest_plugin.py
    pytest_configure_node). Here the controller finds no engine."""
    (tmp_path / "docker_probe.py").write_text(DOCKER_PROBE, encoding="utf-8")
    out = tmp_path / "heard.json"
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *childrun.LEAN, "-p", "docker_probe", "-n", "1", "-q",
         PAGE, "-k", "no_test_is_named_so"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
        env=child_env(PYTHONPATH=path, DOCKER_PROBE_OUT=str(out),
                      DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock"),
    )  # fmt: skip
    assert out.exists(), f"no worker started (exit {result.returncode}): {result.stdout[-2000:]}"
    assert json.loads(out.read_text()) == {"sent": False, "pool": False}, (
        "the worker did not get the controller's answer about the Docker engine "
        "(handbook/pytest_plugin.py: pytest_configure_node sends handbook_docker, "
        "pytest_configure takes it)"
    )
