"""``build/verification.json``: what each run verified, on which servers, and what it did not.

The pytest plugin records one entry per snippet and server label; the Sphinx
extension reads the file to show readers, next to each snippet, where it ran.
A run of a few snippets updates their entries and keeps the others.

Every result is tied to the content that produced it: each entry carries the id and
time of the run that recorded it and ``content_hash()`` of what ran (the snippet's
bytes, header included, its ``.out`` or ``.test.yml`` sidecar, and the server version
it ran on). A page shows a result only while the hash of the file it renders still
matches (``is_current()``). Each run also records the hash of every snippet it saw
(``snippets``: the hash and the first run that saw it) and the outcome of every test
file (``tests``), so that a ``verified-by:`` test counts only when it passed in a run
that saw the snippet's current content (``verified_by()``).

Several processes, one report: under pytest-xdist each worker sends
:meth:`Report.results` to the controller, which :meth:`Report.absorb` s them and alone
writes the file. Several machines (``pytest --shard i/N``): each writes its own file and
``python -m handbook.report merge a.json b.json -o build/verification.json`` joins them
into one run (:func:`merge`), failing when two shards ran the same thing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from handbook.paths import REPORT

OUTCOMES = ("passed", "failed", "not-applicable", "lint-only", "not-run")
SIDECARS = (".out", ".test.yml")  # files beside a snippet that are part of what ran
SNIPPET_SUFFIXES = (".sql", ".sh", ".redis", ".promql")
RANK = {"skipped": 0, "passed": 1, "failed": 2}


def now() -> str:
    """``2026-12-03T10:15:00.123Z``: to the millisecond, so that two runs in the same second
    (a snippet edited between two quick runs) still compare in the order they ran."""
    stamp = time.time()
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(stamp))}.{int(stamp % 1 * 1000):03d}Z"


def new_run_id() -> str:
    """Sortable and unique: ``20261203T101500Z-3f9a2c``."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"


def content_hash(path: Path, server: str = "") -> str:
    """What ran: the snippet's bytes (header and body), its sidecars, the server version."""
    digest = hashlib.sha256()
    files = [path] + [path.with_name(path.name + s) for s in SIDECARS]
    for file in files:
        if file.is_file():
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    digest.update(server.encode())
    return digest.hexdigest()[:16]


@dataclass
class Entry:
    snippet: str  # "snippets/sql/pool/idle_in_transaction.sql"
    label: str  # "pg15", "redis7.0", "promtool", "lint"
    outcome: str  # one of OUTCOMES
    server: str = ""  # "PostgreSQL 15.20"
    provider: str = ""  # "local", "docker", "external"
    reason: str = ""  # why it was not run, or the failure message
    run: str = ""  # the id of the run that recorded it (set by Report.add)
    time: str = ""  # when, UTC (set by Report.add)
    hash: str = ""  # content_hash() of what ran (set by Report.add)

    @property
    def key(self) -> str:
        return f"{self.snippet}[{self.label}]"


class Report:
    def __init__(self, path: Path = REPORT, root: Path | None = None) -> None:
        self.path = path
        self.root = root or path.parent.parent  # <root>/build/verification.json
        self.run_id = new_run_id()
        self.started = now()
        self.entries: dict[str, Entry] = {}
        self.servers: dict[str, str] = {}  # label -> "PostgreSQL 15.20, local (bin dir)"
        # "tests/test_site.py::test_name" -> "passed"/"failed" for tests marked covers(...)
        self.proofs: dict[str, str] = {}
        # "tests/drills/test_x.py" -> the outcome of the file's tests in this run
        self.tests: dict[str, str] = {}
        # "postgres_exporter@pg15" -> "postgres_exporter 0.11.1 against PostgreSQL 15.20, local"
        self.exporters: dict[str, str] = {}
        self.lost: list[str] = []  # workers that ended without sending their results

    def results(self) -> dict:
        """What this process recorded, as :meth:`absorb` takes it (JSON-ready)."""
        return {
            "entries": {key: asdict(entry) for key, entry in self.entries.items()},
            "servers": dict(self.servers),
            "proofs": dict(self.proofs),
            "tests": dict(self.tests),
            "exporters": dict(self.exporters),
        }

    def absorb(self, results: dict) -> None:
        """Take another process's :meth:`results` (an xdist worker's) into this report."""
        for key, fields in results.get("entries", {}).items():
            entry = Entry(**fields)
            before = self.entries.get(key)
            if before is None or before.outcome == "not-run" or entry.outcome != "not-run":
                self.entries[key] = entry  # what ran beats what collection put aside
        self.servers.update(results.get("servers", {}))
        self.exporters.update(results.get("exporters", {}))
        for test_file, outcome in results.get("tests", {}).items():
            self.test_outcome(test_file, outcome)
        for key, outcome in results.get("proofs", {}).items():
            if RANK.get(outcome, -1) > RANK.get(self.proofs.get(key, ""), -1):
                self.proofs[key] = outcome

    def add(self, entry: Entry) -> None:
        if entry.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {entry.outcome!r}")
        entry.run, entry.time = self.run_id, now()
        path = self.root / entry.snippet
        entry.hash = content_hash(path, entry.server) if path.is_file() else ""
        self.entries[entry.key] = entry

    def test_outcome(self, test_file: str, outcome: str) -> None:
        """One test of ``test_file`` ended so (one failure fails the file)."""
        if RANK.get(outcome, -1) > RANK.get(self.tests.get(test_file, ""), -1):
            self.tests[test_file] = outcome

    def not_verified(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.outcome not in ("passed", "failed")]

    def write(self) -> None:
        """Merge this run's results into the file, dropping those of deleted snippets."""
        old = load(self.path)
        finished = now()
        entries = {
            key: entry
            for key, entry in old.get("entries", {}).items()
            if (self.root / entry["snippet"]).exists()
        }
        entries.update({key: asdict(entry) for key, entry in self.entries.items()})
        stamp = {"run": self.run_id, "time": finished}
        proofs = {k: stamped(v) for k, v in old.get("proofs", {}).items()}
        proofs.update({k: {"outcome": v, **stamp} for k, v in self.proofs.items()})
        tests = dict(old.get("tests", {}))
        tests.update({k: {"outcome": v, **stamp} for k, v in self.tests.items()})
        runs = dict(old.get("runs", {}))
        runs[self.run_id] = {
            "started": self.started,
            "finished": finished,
            "machine": f"{platform.system()} {platform.machine()}, {platform.node()}",
            "commit": commit_of(self.root),
        }
        referenced = {e.get("run", "") for e in entries.values()} | {self.run_id}
        referenced |= {p.get("run") for p in [*proofs.values(), *tests.values()]}
        data = {
            "generated": finished,
            "run": self.run_id,
            "machine": runs[self.run_id]["machine"],
            "runs": {k: v for k, v in sorted(runs.items()) if k in referenced},
            "servers": {**old.get("servers", {}), **self.servers},
            "entries": dict(sorted(entries.items())),
            "proofs": dict(sorted(proofs.items())),
            "tests": dict(sorted(tests.items())),
            "snippets": self._seen(old.get("snippets", {}), finished),
            "exporters": dict(sorted({**old.get("exporters", {}), **self.exporters}.items())),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)

    def _seen(self, old: dict, finished: str) -> dict[str, dict[str, str]]:
        """Every snippet this run saw: its hash, and since when (the first run with it)."""
        seen = {}
        snippets = self.root / "snippets"
        for path in sorted(snippets.rglob("*")) if snippets.is_dir() else []:
            if path.suffix not in SNIPPET_SUFFIXES:
                continue
            name = path.relative_to(self.root).as_posix()
            digest = content_hash(path)
            before = old.get(name, {})
            if before.get("hash") == digest:
                seen[name] = before
            else:
                seen[name] = {"hash": digest, "since": finished, "run": self.run_id}
        return seen


def commit_of(root: Path) -> str:
    """The checkout's commit, ``1a2b3c4`` (``1a2b3c4+`` with uncommitted changes to tracked
    files), or "" outside a git checkout: what a page's badge says the run tested."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = commit and git("status", "--porcelain", "--untracked-files=no")
    except OSError:  # no git on this machine
        return ""
    return f"{commit}+" if dirty else commit


def stamped(value: object) -> dict:
    """A proof as written: ``{"outcome", "run", "time"}`` (older files held the outcome)."""
    return value if isinstance(value, dict) else {"outcome": value, "run": "", "time": ""}


def load(path: Path = REPORT) -> dict:
    """The report as written, or an empty one when no run has written it yet."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def outcome_of(value: object) -> str:
    """The outcome of a proof or test record, whichever format the file holds."""
    return stamped(value)["outcome"]


def is_current(entry: dict, root: Path) -> bool:
    """Whether ``entry`` was recorded for the snippet as it is now (and the same server)."""
    path = root / entry["snippet"]
    return (
        bool(entry.get("hash"))
        and path.is_file()
        and (content_hash(path, entry.get("server", "")) == entry["hash"])
    )


def verified_by(data: dict, snippet: str, test_file: str, root: Path) -> tuple[str, dict]:
    """Whether ``test_file`` verified ``snippet`` as it is now: ``("passed", record)`` when
    its tests passed in a run that saw the snippet's current content; else ``("failed",
    record)``, ``("stale", record)`` (it ran, but on other content) or ``("not-run", {})``."""
    record = data.get("tests", {}).get(test_file)
    if not record:
        return "not-run", {}
    if record["outcome"] == "failed":
        return "failed", record
    seen = data.get("snippets", {}).get(snippet, {})
    path = root / snippet
    current = path.is_file() and seen.get("hash") == content_hash(path)
    if not current or record.get("time", "") < seen.get("since", ""):
        return "stale", record
    return ("passed", record) if record["outcome"] == "passed" else ("not-run", record)


def run_info(data: dict, run_id: str) -> str:
    """``run 20261203T101500Z-3f9a2c (2026-12-03 10:15 UTC)`` for messages and pages."""
    if not run_id:
        return "a run that recorded no id (rerun the tests)"
    started = data.get("runs", {}).get(run_id, {}).get("started", "")
    when = started.replace("T", " ").removesuffix("Z")[:16]
    return f"run {run_id} ({when} UTC)" if when else f"run {run_id}"


# -- shards: one report from several machines' -----------------------------------------------


class MergeError(ValueError):
    """Shard reports that cannot be one run: the message names what and where."""


def merge(reports: list[tuple[str, dict]]) -> tuple[dict, dict[str, int]]:
    """Join shard reports (``(name, data)`` pairs, as written) into one run's report.

    Each shard's own run becomes one merged run (id ``<first>-merged``); results older
    shards carried over keep their runs. A result that two shards' own runs both recorded
    (an entry that ran, a test file, a proof) means the shards overlapped:
    :class:`MergeError`. Returns the data and counts for the summary line.
    """
    if not reports:
        raise MergeError("no reports to merge: give the shards' verification.json files")
    shard_runs = {}
    for name, data in reports:
        if not data.get("run"):
            raise MergeError(f"{name}: not a verification report (no run): give the file a "
                             "test run wrote (build/verification.json)")  # fmt: skip
        shard_runs[data["run"]] = name
    merged_id = f"{sorted(shard_runs)[0]}-merged"
    own = {run: merged_id for run in shard_runs}
    overlaps: list[str] = []
    entries: dict[str, dict] = {}
    tests: dict[str, dict] = {}
    proofs: dict[str, dict] = {}
    came_from: dict[str, str] = {}
    for name, data in reports:
        for key, entry in data.get("entries", {}).items():
            _merge_record(entries, key, entry, name, data["run"], came_from, overlaps, "entries")
        for section, into in (("tests", tests), ("proofs", proofs)):
            for key, record in data.get(section, {}).items():
                _merge_record(into, key, stamped(record), name, data["run"], came_from,
                              overlaps, section)  # fmt: skip
    if overlaps:
        raise MergeError(
            "the shards overlap (every machine must run pytest --shard I/N with the same N "
            "and the same checkout):\n  " + "\n  ".join(overlaps)
        )
    for record in [*entries.values(), *tests.values(), *proofs.values()]:
        record["run"] = own.get(record.get("run", ""), record.get("run", ""))
    runs: dict[str, dict] = {}
    for _, data in reports:
        runs.update({k: v for k, v in data.get("runs", {}).items() if k not in own})
    mine = [data.get("runs", {}).get(data["run"], {}) for _, data in reports]
    machines = sorted({r.get("machine", "") for r in mine if r.get("machine")})
    runs[merged_id] = {
        "started": min((r.get("started", "") for r in mine), default=""),
        "finished": max((r.get("finished", "") for r in mine), default=""),
        "machine": f"{len(reports)} shards: " + "; ".join(machines),
        "shards": sorted(shard_runs),
        # One commit when every shard tested the same one; else the badge names none.
        "commit": commits.pop() if len(commits := {r.get("commit", "") for r in mine}) == 1 else "",
    }
    referenced = {r.get("run", "") for r in [*entries.values(), *tests.values(), *proofs.values()]}
    referenced.add(merged_id)
    seen: dict[str, dict] = {}
    for _, data in reports:
        for snippet, record in data.get("snippets", {}).items():
            if _replaces(seen.get(snippet), record):
                seen[snippet] = dict(record)
    for record in seen.values():
        record["run"] = own.get(record.get("run", ""), record.get("run", ""))
    servers: dict[str, str] = {}
    exporters: dict[str, str] = {}
    for _, data in reports:
        servers.update(data.get("servers", {}))
        exporters.update(data.get("exporters", {}))
    merged = {
        "generated": max(data.get("generated", "") for _, data in reports),
        "run": merged_id,
        "machine": runs[merged_id]["machine"],
        "runs": {k: v for k, v in sorted(runs.items()) if k in referenced},
        "servers": dict(sorted(servers.items())),
        "entries": dict(sorted(entries.items())),
        "proofs": dict(sorted(proofs.items())),
        "tests": dict(sorted(tests.items())),
        "snippets": dict(sorted(seen.items())),
        "exporters": dict(sorted(exporters.items())),
    }
    counts = {"reports": len(reports), "entries": len(entries), "tests": len(tests),
              "proofs": len(proofs)}  # fmt: skip
    return merged, counts


def _replaces(before: dict | None, record: dict) -> bool:
    """Which ``snippets`` record of a snippet to keep: the same content since the earliest
    shard that saw it; other content, the latest."""
    if before is None:
        return True
    later = record.get("since", "") > before.get("since", "")
    return later if before.get("hash") != record.get("hash") else not later and record != before


def _merge_record(into: dict, key: str, record: dict, name: str, run: str,
                  came_from: dict, overlaps: list[str], section: str) -> None:  # fmt: skip
    """One shard's record of ``key``: an overlap when another shard's run recorded it too
    (what collection set aside, ``not-run``, every shard records alike)."""
    before = into.get(key)
    where = f"{section}:{key}"
    ran = record.get("outcome") != "not-run" or section != "entries"
    if before is None:
        into[key] = dict(record)
        came_from[where] = name if record.get("run") == run else ""
        return
    mine = record.get("run") == run
    other = came_from.get(where, "")
    before_ran = before.get("outcome") != "not-run" or section != "entries"
    if mine and other and ran and before_ran:
        overlaps.append(f"{key}: in {other} and in {name}")
        return
    if (ran and not before_ran) or (
        ran == before_ran and record.get("time", "") > before.get("time", "")
    ):
        into[key] = dict(record)
        came_from[where] = name if mine else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handbook.report",
        description="Join the build/verification.json of several shards (pytest --shard I/N) "
        "into one report the site renders.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    joining = commands.add_parser("merge", help="merge shard reports into one")
    joining.add_argument("reports", nargs="+", type=Path, help="the shards' reports")
    joining.add_argument("-o", "--output", type=Path, default=REPORT,
                         help="the merged report (default build/verification.json)")  # fmt: skip
    args = parser.parse_args(argv)
    loaded = []
    for path in args.reports:
        data = load(path)
        if not data:
            print(f"{path}: missing or not JSON: give the report each shard's run wrote "
                  "(its build/verification.json)", file=sys.stderr)  # fmt: skip
            return 2
        loaded.append((str(path), data))
    try:
        merged, counts = merge(loaded)
    except MergeError as exc:
        print(f"python -m handbook.report merge: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    tmp.replace(args.output)
    print(f"{args.output}: run {merged['run']} from {counts['reports']} reports: "
          f"{counts['entries']} snippet results, {counts['tests']} test files, "
          f"{counts['proofs']} proofs")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
