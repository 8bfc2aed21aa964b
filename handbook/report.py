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
"""

from __future__ import annotations

import hashlib
import json
import platform
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from handbook.paths import REPORT

OUTCOMES = ("passed", "failed", "not-applicable", "lint-only", "not-run")
SIDECARS = (".out", ".test.yml")  # files beside a snippet that are part of what ran
SNIPPET_SUFFIXES = (".sql", ".sh", ".redis", ".promql")
RANK = {"skipped": 0, "passed": 1, "failed": 2}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
