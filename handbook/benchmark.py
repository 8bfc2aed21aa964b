"""Benchmark of the snippet harness: ``python -m handbook.benchmark`` (or ``tox -e benchmark``).

Reports, per available server: how long it takes to start; the floor (a bare
``psql -X -c 'select 1'`` on the warm server); the median wall time of each SQL
snippet run as the tests run it, and its ratio to the floor (target: 1.5x or
less); and the wall time of the whole snippet suite. Numbers, not assertions.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from handbook.databases import Databases
from handbook.paths import ROOT, SNIPPETS, rel
from handbook.runners import sql as sql_runner
from handbook.servers.pool import ServerPool
from handbook.snippet import parse

RUNS = 7


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    pool = ServerPool()
    databases = Databases()
    sql_snippets = [
        parse(p) for p in sorted(SNIPPETS.rglob("*.sql")) if p.parent.name != "migrations"
    ]
    print(f"# Snippet harness benchmark ({RUNS} runs each, median)\n")
    try:
        print("| server | start (s) | floor: psql select 1 (ms) |")
        print("|---|---|---|")
        rows = []
        for kind in ("pg", "redis"):
            for cand in pool.candidates(kind):
                seconds = timed(lambda c=cand: pool.get(c.label))
                server = pool.get(cand.label)
                floor = ""
                if kind == "pg":
                    env = server.env("admin")
                    runs = [
                        timed(lambda e=env: subprocess.run(["psql", "-X", "-c", "select 1"], env=e,
                                                           capture_output=True, check=True))
                        for _ in range(RUNS)
                    ]  # fmt: skip
                    floor_s = statistics.median(runs)
                    floor = f"{floor_s * 1000:.1f}"
                    databases.ensure(server)
                    for snippet in sql_snippets:
                        with databases.for_snippet(server, snippet.read_only) as senv:
                            times = [
                                timed(lambda s=snippet, v=server, e=senv: sql_runner.run(s, v, e))
                                for _ in range(RUNS)
                            ]
                        median = statistics.median(times)
                        rows.append((cand.label, rel(snippet.path), median, median / floor_s))
                print(f"| {server.describe()} | {seconds:.2f} | {floor} |")
        print("\n| server | snippet | median (ms) | x floor |")
        print("|---|---|---|---|")
        for label, name, median, ratio in rows:
            print(f"| {label} | {name} | {median * 1000:.1f} | {ratio:.2f} |")
    finally:
        pool.stop_all()
    suite = timed(
        lambda: subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "snippets"],
            cwd=ROOT, capture_output=True, check=False,
        )
    )  # fmt: skip
    print(f"\nWhole snippet suite (`pytest snippets`): {suite:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
