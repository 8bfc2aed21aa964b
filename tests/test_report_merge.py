"""Shards and workers give one report: nothing lost, nothing counted twice.

A copy of the project with four snippet files is run by real pytest processes four
ways, side by side: whole, as ``--shard 1/2`` and ``--shard 2/2`` (two machines, each
its own ``build/verification.json``), and with two xdist workers (``-n 2``). One shard's
files are SQL, the other's Redis, so each shard brings servers the other lacks; the SQL
runs on one local PostgreSQL (each start costs seconds), the Redis on every local Redis,
so a file's several items must stay together. The shards' real
reports merged with ``python -m handbook.report merge`` must hold what the whole run
holds, each result once; so must the report the xdist controller wrote from its workers,
and its closing list of what a missing tool left unverified.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import childrun
import pytest

from handbook.paths import ROOT
from handbook.pytest_plugin import group_of, shard_index
from handbook.report import MergeError, merge
from handbook.servers import ServerPool

# About the harness, not a page: verifying a page leaves it out.
pytestmark = pytest.mark.whole_run(
    "runs the suite in shards and on workers to prove the split and the merge"
)

# Two files per shard (the split is by file name: handbook/pytest_plugin.py shard_index):
# the SQL ones in shard 1, the Redis ones in shard 2.
SNIPPETS = (
    "snippets/sql/pool/connections_by_state.sql",
    "snippets/sql/pool/long_running_queries.sql",
    "snippets/redis/cache/reset_stats.redis",
    "snippets/redis/latency/enable_latency_monitor.redis",
)
# A sub-run that hangs fails saying so; a whole run here takes seconds.
RUN_TIMEOUT = 300
# The newest local PostgreSQL only: the others' items are deselected, so their servers
# never start (about 5 s each per sub-run). Every local Redis stays: two items per file.
PG_LABELS = ServerPool(pg="local", redis="local", reap=False).labels("pg", required=False)
ONE_PG = ["-k", " and ".join(f"not {label}" for label in PG_LABELS[:-1])] if PG_LABELS[1:] else []


def project(where: Path, snippets: tuple[str, ...] = SNIPPETS) -> Path:
    """A copy that can run the harness: conftest, pytest settings, conf/, the snippets."""
    where.mkdir()
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, where / name)
    shutil.copytree(ROOT / "conf", where / "conf")
    for name in snippets:
        source = ROOT / name
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        for file in source.parent.glob(source.name + "*"):  # the snippet and its sidecars
            shutil.copy(file, where / name.rsplit("/", 1)[0] / file.name)
    return where


def run(where: Path, *args: str) -> dict:
    """A real pytest run in ``where``; the report it wrote."""
    args = ("-q", "--pg", "local", "--redis", "local", *ONE_PG, *args, "snippets")
    result = childrun.run_pytest(list(args), where, RUN_TIMEOUT, "a shard or worker run")
    assert result.returncode == 0, f"pytest {' '.join(args)} in {where}:\n{result.stdout[-4000:]}"
    return json.loads((where / "build" / "verification.json").read_text(encoding="utf-8"))


RUNS = {
    "whole": ("-p", "no:xdist"),
    "shard1": ("-p", "no:xdist", "--shard", "1/2"),
    "shard2": ("-p", "no:xdist", "--shard", "2/2"),
    "workers": ("-n", "2"),
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("shards")
    # Side by side: each run mostly waits for its servers to start.
    with ThreadPoolExecutor(len(RUNS)) as executor:
        done = {
            name: executor.submit(run, project(base / name), *args) for name, args in RUNS.items()
        }
        return {name: future.result() for name, future in done.items()}


def results(report: dict) -> dict[str, str]:
    """``snippet[label]`` -> outcome, for what this report's own run recorded."""
    return {k: e["outcome"] for k, e in report["entries"].items() if e["run"] == report["run"]}


def test_the_shards_split_the_files_between_them():
    shards = {name: shard_index(group_of(name), 2) for name in SNIPPETS}
    assert list(shards.values()) == [1, 1, 2, 2], (
        f"tests/test_report_merge.py: SNIPPETS must give shard 1 the two SQL files and shard 2 "
        f"the two Redis files (pick other files): {shards}"
    )


def test_each_shard_runs_its_own_part(reports):
    whole = results(reports["whole"])
    one, two = results(reports["shard1"]), results(reports["shard2"])
    assert one and two, f"a shard ran nothing: 1/2 ran {sorted(one)}, 2/2 ran {sorted(two)}"
    assert not set(one) & set(two), f"both shards ran {sorted(set(one) & set(two))}"
    assert {**one, **two} == whole, (
        f"the shards together ran {sorted({**one, **two})}, the whole run {sorted(whole)}"
    )


def test_merged_shards_are_the_whole_run_each_result_once(reports, tmp_path):
    paths = []
    for name in ("shard1", "shard2"):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(reports[name]), encoding="utf-8")
    out = tmp_path / "merged" / "verification.json"
    command = [sys.executable, "-m", "handbook.report", "merge", *map(str, paths), "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    merged = json.loads(out.read_text(encoding="utf-8"))
    whole = reports["whole"]
    assert results(merged) == results(whole), (
        f"merged {sorted(results(merged).items())}\nwhole {sorted(results(whole).items())}"
    )
    assert len(merged["entries"]) == len(whole["entries"])
    assert {k: v["outcome"] for k, v in merged["tests"].items()} == {
        k: v["outcome"] for k, v in whole["tests"].items()
    }
    assert set(merged["snippets"]) == set(whole["snippets"])
    assert set(merged["servers"]) == set(whole["servers"]), (
        f"merged servers {sorted(merged['servers'])}, whole run's {sorted(whole['servers'])}: "
        "each shard's servers must survive the merge (handbook/report.py merge)"
    )
    assert merged["runs"][merged["run"]]["shards"] == sorted(
        reports[name]["run"] for name in ("shard1", "shard2")
    )
    assert f"{len(whole['entries'])} snippet results" in done.stdout, done.stdout


def test_a_result_two_shards_both_ran_fails_the_merge(reports, tmp_path):
    """The same shard twice: every result in it overlaps; the merge names them."""
    shard = reports["shard1"]
    again = {**shard, "run": shard["run"] + "-again"}
    again["entries"] = {k: {**e, "run": again["run"]} for k, e in shard["entries"].items()}
    again["runs"] = {again["run"]: shard["runs"][shard["run"]]}
    with pytest.raises(MergeError, match=r"the shards overlap") as caught:
        merge([("a.json", shard), ("b.json", again)])
    first = sorted(results(shard))[0]
    assert f"{first}: in a.json and in b.json" in str(caught.value), caught.value


def test_two_workers_write_what_one_process_writes(reports):
    workers, whole = reports["workers"], reports["whole"]
    assert results(workers) == results(whole), (
        f"-n 2 recorded {sorted(results(workers).items())}\n"
        f"serially: {sorted(results(whole).items())}"
    )
    assert {k: v["outcome"] for k, v in workers["tests"].items()} == {
        k: v["outcome"] for k, v in whole["tests"].items()
    }
    assert set(workers["servers"]) == set(whole["servers"])


def test_two_workers_still_list_what_a_missing_tool_left_unverified(tmp_path):
    """The skips happen in the workers; the controller's closing summary must list them."""
    snippet = "snippets/shell/security/redis_password_1_add_new.sh"
    assert "openssl" in (ROOT / snippet).read_text(encoding="utf-8"), f"{snippet} runs openssl"
    where = project(tmp_path / "project", (snippet,))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = childrun.path_without("openssl", tmp_path / "bin")
    args = ["-q", "-n", "2", "--pg", "local", "--redis", "local", snippet]
    result = childrun.run_pytest(args, where, RUN_TIMEOUT, "a run without openssl", env)
    summary = [line for line in result.stdout.splitlines() if line.startswith("not verified here:")]
    assert summary and "(no openssl: apt-get install openssl)" in summary[0], (
        "-n 2: the controller does not list the workers' missing-tool skips "
        f"(handbook/pytest_plugin.py pytest_testnodedown):\n{result.stdout[-3000:]}"
    )
