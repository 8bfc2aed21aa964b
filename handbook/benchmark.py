"""Benchmark of the snippet harness: ``python -m handbook.benchmark`` (or ``tox -e benchmark``).

``python -m handbook.benchmark --diagnostics`` instead seeds the reference schema at
production scale (a million login attempts, a few hundred sessions) on each local
PostgreSQL and reports the median wall time of each read-only diagnostic the runbooks
show (target: 100 ms).

Reports, per available server (local binaries, and containers when a Docker engine
answers: ``HANDBOOK_PG``/``HANDBOOK_REDIS`` ``auto``): how long it takes to start; the
floor (a bare ``psql -X -c 'select 1'`` on the warm server, as the read-only snippets'
role, in their database: psql by hand as a page has the reader run it); the median wall
time of each SQL snippet run as the tests run it, and its ratio to the floor (target:
1.5x or less); per server, the median of those medians, so a container's figures stand next to
a local server's; and the wall time of the whole snippet suite. Numbers, not assertions.

It also times what a writer waits for: the site built clean and again after one page
changed (``docs``), and verifying each runbook page alone, ``pytest docs/runbooks/X.md``
(``pages``); ``--full`` adds the whole test run serially and on two cores (``-n 2``),
which takes as long as the suite. ``--parts docs,pages`` runs only some of the parts.
Every figure goes to ``build/benchmark.json`` with the machine and the date, merged
with the parts an earlier run measured; the verification page renders it
(``{benchmark-figures}``, ``handbook/sphinxext/benchmark.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handbook.paths import BUILD, DOCS, ROOT, SNIPPETS, rel
from handbook.runners import Target
from handbook.runners import sql as sql_runner
from handbook.schema import diagnostics, migrations, seed
from handbook.schema.databases import Databases, psql
from handbook.servers.pool import ServerPool
from handbook.site import build, build_kept
from handbook.snippet import parse

RUNS = 7
REPORT = BUILD / "benchmark.json"
PARTS = ("harness", "docs", "pages", "full")
DEFAULT_PARTS = ("harness", "docs", "pages")
EDITED_PAGE = DOCS / "runbooks" / "high-latency.md"  # the page "edited" for the rebuild
SUMMARY = re.compile(r"\d+ (passed|failed|skipped|deselected|error|errors|xfailed)\b")


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


def machine() -> dict:
    """The machine the figures were measured on, and how busy it was when they started."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "load": round(load, 2) if load is not None else None,
    }


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def pytest_run(*args: str) -> dict:
    """One real pytest process, as ``tox -e tests -- ARGS`` runs it: wall time and outcome."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    last = [line for line in result.stdout.splitlines() if SUMMARY.search(line)]
    summary = last[-1].strip("= ") if last else f"exit {result.returncode}"
    return {"seconds": round(seconds, 1), "exit": result.returncode, "summary": summary}


def docs_benchmark() -> dict:
    """The site built clean (a new output dir), then again after one page changed."""
    out = Path(tempfile.mkdtemp(prefix="handbook-benchmark-site-"))
    try:
        start = time.perf_counter()
        clean = build(ROOT, out)
        clean_s = time.perf_counter() - start
        stat = EDITED_PAGE.stat()
        os.utime(EDITED_PAGE, ns=(stat.st_atime_ns, time.time_ns()))  # "saved" unchanged
        try:
            start = time.perf_counter()
            again = build(ROOT, out)
            incremental_s = time.perf_counter() - start
        finally:
            os.utime(EDITED_PAGE, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    figures = {
        "clean_s": round(clean_s, 1),
        "incremental_s": round(incremental_s, 1),
        "edited": rel(EDITED_PAGE),
        "ok": clean.returncode == 0 and again.returncode == 0,
    }
    print("\n| site build | seconds |\n|---|---|")
    print(f"| clean (new output directory) | {figures['clean_s']} |")
    print(f"| incremental, after saving {figures['edited']} | {figures['incremental_s']} |")
    if not figures["ok"]:
        print(f"the site build FAILED: {(clean.stderr or again.stderr)[-2000:]}")
    return figures


def pages_benchmark() -> dict:
    """``pytest docs/runbooks/X.md`` for each runbook, as a writer runs it after saving the
    page: start-up and servers included, from a kept site build that an earlier run left
    (brought up to date first, and timed apart: a checkout's first run builds it whole)."""
    with tempfile.TemporaryDirectory(prefix="handbook-benchmark-") as scratch:
        start = time.perf_counter()
        warm = build_kept(ROOT, Path(scratch) / "site")
        warm_s = time.perf_counter() - start
    print(f"\nthe kept site build, brought up to date first: {warm_s:.1f} s"
          + ("" if warm.returncode == 0 else f" (FAILED: {warm.stderr[-2000:]})"))  # fmt: skip
    pages = {}
    print("\n| verify one page (`tox -e tests -- PAGE`) | seconds | result |\n|---|---|---|")
    for page in sorted((DOCS / "runbooks").glob("*.md")):
        if page.name == "index.md":
            continue
        stat = page.stat()
        os.utime(page, ns=(stat.st_atime_ns, time.time_ns()))  # "saved", unchanged
        try:
            pages[rel(page)] = figures = pytest_run(rel(page))
        finally:
            os.utime(page, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        print(f"| {rel(page)} | {figures['seconds']} | {figures['summary']} |")
    return pages


def full_benchmark(workers: int) -> dict:
    """The whole test run (``tox -e tests``), serially (``-n 0``) and on ``workers`` cores."""
    serial = pytest_run("-n", "0")
    parallel = pytest_run("-n", str(workers))
    print("\n| whole test run | seconds | result |\n|---|---|---|")
    print(f"| serial | {serial['seconds']} | {serial['summary']} |")
    print(f"| `-n {workers}` | {parallel['seconds']} | {parallel['summary']} |")
    return {"serial": serial, "parallel": parallel, "workers": workers}


def save(measured: dict[str, dict], path: Path = REPORT) -> None:
    """Merge this run's parts into ``build/benchmark.json`` (each part keeps its date)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data.update(measured)
    data["generated"] = now()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\nfigures: {rel(path)}")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handbook.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--diagnostics", action="store_true",
                        help="time each diagnostic on a production-scale database")  # fmt: skip
    parser.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                        help=f"what to measure, of {', '.join(PARTS)} "
                        f"(default {','.join(DEFAULT_PARTS)})")  # fmt: skip
    parser.add_argument("--full", action="store_true",
                        help="also the whole test run, serial and parallel (slow)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel run")
    args = parser.parse_args()
    if args.diagnostics:
        return diagnostics_benchmark()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()] + (
        ["full"] if args.full else []
    )
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown {unknown}: choose from {', '.join(PARTS)}")
    measured: dict[str, dict] = {}
    stamp = {"measured": now(), "machine": machine()}
    if "harness" in parts:
        measured["harness"] = {**stamp, **harness_benchmark()}
    if "docs" in parts:
        measured["docs"] = {**stamp, **docs_benchmark()}
    if "pages" in parts:
        measured["pages"] = {**stamp, "pages": pages_benchmark()}
    if "full" in parts:
        measured["full"] = {**stamp, **full_benchmark(args.workers)}
    save(measured)
    return 0


def harness_benchmark() -> dict:
    """Servers' start, the psql floor, each SQL snippet's median, the snippet suite."""
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
        started: dict[str, dict] = {}
        for kind in ("pg", "redis"):
            for cand in pool.candidates(kind):
                seconds = timed(lambda c=cand: pool.get(c.label))
                server = pool.get(cand.label)
                floor = ""
                if kind == "pg":
                    databases.ensure(server)
                    # psql by hand as the page has the reader run it: the read-only
                    # snippets' role (its password check included) and database, not the
                    # superuser's (a few ms quicker to log in)
                    with databases.for_snippet(server, True) as env:
                        runs = [
                            timed(lambda e=env: subprocess.run(
                                ["psql", "-X", "-c", "select 1"], env=e, capture_output=True,
                                check=True))
                            for _ in range(RUNS)
                        ]  # fmt: skip
                    floor_s = statistics.median(runs)
                    floor = f"{floor_s * 1000:.1f}"
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
                started[cand.label] = {
                    "server": server.describe(),  # "PostgreSQL 17.12, docker"
                    "start_s": round(seconds, 2),
                    "floor_ms": float(floor) if floor else None,
                }
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
    per_server = {}
    for label in sorted({row[0] for row in rows}):
        mine = [(median, ratio) for name, _, median, ratio in rows if name == label]
        per_server[label] = {
            **started.get(label, {}),
            "snippets": len(mine),
            "median_ms": round(statistics.median(m for m, _ in mine) * 1000, 1),
            "median_x_floor": round(statistics.median(r for _, r in mine), 2),
            "within_1_5": sum(1 for _, r in mine if r <= 1.5),
        }
    for label, figures in started.items():
        per_server.setdefault(label, figures)  # Redis: its start only
    return {"servers": dict(sorted(per_server.items())), "snippet_suite_s": round(suite, 1)}


if __name__ == "__main__":
    sys.exit(main())
