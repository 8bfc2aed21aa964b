"""Benchmark of the snippet harness: ``python -m handbook.benchmark`` (or ``tox -e benchmark``).

``python -m handbook.benchmark --diagnostics`` instead seeds the reference schema at
production scale (a million login attempts, a few hundred sessions) on each local
PostgreSQL and reports the median wall time of each read-only diagnostic the runbooks
show (target: 100 ms).

Reports, per available server (local binaries, and containers when a Docker engine
answers: ``HANDBOOK_PG``/``HANDBOOK_REDIS`` ``auto``): how long it takes to start; the
floor (a bare ``psql -X -c 'select 1'`` on the warm server); the median wall time of
each SQL snippet run as the tests run it, and its ratio to the floor (target: 1.5x or
less); per server, the median of those medians, so a container's figures stand next to
a local server's; and the wall time of the whole snippet suite. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from handbook.paths import ROOT, SNIPPETS, rel
from handbook.runners import Target
from handbook.runners import sql as sql_runner
from handbook.schema import diagnostics, migrations, seed
from handbook.schema.databases import Databases, psql
from handbook.servers.pool import ServerPool
from handbook.snippet import parse

RUNS = 7


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def diagnostics_benchmark(runs: int = 5) -> int:
    """Each read-only diagnostic on a production-scale database, per local PostgreSQL."""
    pool = ServerPool(pg="local", redis="local")
    databases = Databases()
    name = "erpgo_production_benchmark"
    scale = seed.SCALES["production"]
    print(f"# Diagnostics at production scale ({runs} runs each, median)\n")
    print(f"Seed: {scale.login_attempts:,} login attempts, {scale.sessions} sessions, "
          f"{scale.users:,} users, {scale.orders:,} orders.\n")  # fmt: skip
    rows = []
    try:
        for cand in pool.candidates("pg"):
            server = pool.get(cand.label)
            databases.ensure(server)  # grants the monitoring role read access
            psql(server, f"CREATE DATABASE {name}")
            env = server.env("admin") | {"PGDATABASE": name}
            seconds = timed(lambda e=env: (migrations.apply(e, migrations.discover()),
                                           seed.seed(e, scale)))  # fmt: skip
            print(f"- {server.describe()}: migrated and seeded in {seconds:.1f} s")
            monitor = server.env("monitor") | {"PGDATABASE": name}
            floor = statistics.median(
                timed(lambda m=monitor: subprocess.run(["psql", "-X", "-c", "select 1"], env=m,
                                                       capture_output=True, check=True))
                for _ in range(runs)
            )  # fmt: skip
            for snippet in diagnostics.diagnostics():
                # the runbooks' diagnostics: what runs during an incident, on production
                if not snippet.page.startswith("runbooks/"):
                    continue
                if snippet.gate("pg", server.major, server.features):
                    continue
                target = Target.on(server, monitor)
                outcome = sql_runner.run(snippet, target)  # warm-up, and a check
                times = [
                    timed(lambda s=snippet, t=target: sql_runner.run(s, t)) for _ in range(runs)
                ]
                status = "ok" if outcome.ok else "FAILED"
                rows.append((cand.label, snippet.name, statistics.median(times), floor, status))
            psql(server, f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        pool.stop_all()
    print("\n| server | diagnostic | median (ms) | minus psql floor (ms) | target 100 ms |")
    print("|---|---|---|---|---|")
    for label, snippet, median, floor, status in rows:
        verdict = "met" if median * 1000 <= diagnostics.TARGET_MS else "MISSED"
        if status != "ok":
            verdict = status
        print(f"| {label} | {snippet} | {median * 1000:.1f} | {(median - floor) * 1000:.1f} "
              f"| {verdict} |")  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m handbook.benchmark", description=__doc__)
    parser.add_argument("--diagnostics", action="store_true",
                        help="time each diagnostic on a production-scale database")  # fmt: skip
    if parser.parse_args().diagnostics:
        return diagnostics_benchmark()
    pool = ServerPool()
    databases = Databases()
    sql_snippets = [
        parse(p) for p in sorted(SNIPPETS.rglob("*.sql")) if p.parent.name != "migrations"
    ]
    print(f"# Snippet harness benchmark ({RUNS} runs each, median)\n")
    try:
        print("| server | start (s) | floor: psql select 1 (ms) |")
        print("|---|---|---|")  # "..., docker": a container's start, from create to ready
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
                            target = Target.on(server, senv)
                            times = [
                                timed(lambda s=snippet, t=target: sql_runner.run(s, t))
                                for _ in range(RUNS)
                            ]
                        median = statistics.median(times)
                        rows.append((cand.label, rel(snippet.path), median, median / floor_s))
                print(f"| {server.describe()} | {seconds:.2f} | {floor} |")
        print("\n| server | snippet | median (ms) | x floor |")
        print("|---|---|---|---|")
        for label, name, median, ratio in rows:
            print(f"| {label} | {name} | {median * 1000:.1f} | {ratio:.2f} |")
        # Per server: a container's snippet time beside a local server's.
        print("\n| server | provider | SQL snippets | median per snippet (ms) | median x floor |")
        print("|---|---|---|---|---|")
        for cand in pool.candidates("pg"):
            mine = [(median, ratio) for label, _, median, ratio in rows if label == cand.label]
            if mine:
                per_snippet = statistics.median(m for m, _ in mine) * 1000
                ratio = statistics.median(r for _, r in mine)
                print(f"| {cand.label} | {cand.provider} | {len(mine)} | {per_snippet:.1f} "
                      f"| {ratio:.2f} |")  # fmt: skip
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
