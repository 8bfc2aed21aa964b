"""``python -m handbook.drills.dr``: the disaster-recovery drills without pytest.

    python -m handbook.drills.dr [--pg LABEL ...] [--redis LABEL ...] [--report PATH]

runs the backup, promotion and Sentinel drills on every local server version (or the
labels given), prints what they measured and merges the figures of the drills that
recovered correctly into ``build/dr-report.json`` (``objectives.record``), which the
disaster-recovery page renders. A drill that did not recover correctly is reported as
failed, with what went wrong, and its figures are left out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from handbook.drills import backup, objectives, promotion, sentinel
from handbook.servers.pool import ServerPool

COMMAND = objectives.COMMAND


def runs(pool: ServerPool, pg: list[str], redis: list[str]) -> list[tuple[str, Callable]]:
    """(label, drill) for every drill on every label; each drill returns its results."""
    found: list[tuple[str, Callable]] = []
    for label in pg:
        found.append((label, lambda lb: backup.backup_and_pitr(pool, lb).results))
        found.append((label, lambda lb: [promotion.promotion(pool, lb, False)]))
        found.append((label, lambda lb: [promotion.promotion(pool, lb, True)]))
    for label in redis:
        found.append((label, lambda lb: [sentinel.sentinel_failover(pool, lb)]))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", action="append", help="PostgreSQL labels (default: every local)")
    parser.add_argument("--redis", action="append", help="Redis labels (default: every local)")
    parser.add_argument(
        "--report", type=Path, default=objectives.REPORT, help="default: %(default)s"
    )
    args = parser.parse_args(argv)
    pool = ServerPool(pg="local", redis="local")
    pg = args.pg or pool.labels("pg", required=False)
    redis = args.redis or pool.labels("redis", required=False)
    if not pg and not redis:
        print("no local PostgreSQL or Redis found: see `python -m handbook.servers` notes")
        return 2
    info = objectives.machine()
    print(
        f"# Disaster-recovery drills on {info['cpu']} ({info['cores']} cores), {objectives.now()}\n"
    )
    print("| drill | server | measured |\n|---|---|---|")
    failed = 0
    try:
        for label, drill in runs(pool, pg, redis):
            try:
                results = drill(label)
            except Exception as exc:  # one drill failed: report it, run the others
                failed += 1
                print(f"| (failed) | {label} | {str(exc).splitlines()[0]} |")
                continue
            wrong = [problem for result in results for problem in result.problems()]
            if wrong:  # a drill that did not recover correctly has no figures worth showing
                failed += 1
                for problem in wrong:
                    print(f"| (failed) | {label} | {problem.splitlines()[0]} |")
                continue
            objectives.record(results, COMMAND, args.report)
            for result in results:
                text = objectives.describe({"drill": result.name, "measured": result.measured})
                print(f"| {result.name} | {result.server} | {text} |")
    finally:
        pool.stop_all()
    print(f"\nreport: {args.report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
