"""``build/verification.json``: what each run verified, on which servers, and what it did not.

The pytest plugin records one entry per snippet and server label; the Sphinx
extension reads the file to show readers, next to each snippet, where it ran.
A run of a few snippets updates their entries and keeps the others.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from handbook.paths import REPORT, ROOT

OUTCOMES = ("passed", "failed", "not-applicable", "lint-only", "not-run")


@dataclass
class Entry:
    snippet: str  # "snippets/sql/pool/idle_in_transaction.sql"
    label: str  # "pg15", "redis7.0", "promtool", "lint"
    outcome: str  # one of OUTCOMES
    server: str = ""  # "PostgreSQL 15.20"
    provider: str = ""  # "local", "docker", "external"
    reason: str = ""  # why it was not run, or the failure message

    @property
    def key(self) -> str:
        return f"{self.snippet}[{self.label}]"


class Report:
    def __init__(self, path: Path = REPORT) -> None:
        self.path = path
        self.entries: dict[str, Entry] = {}
        self.servers: dict[str, str] = {}  # label -> "PostgreSQL 15.20, local (bin dir)"
        # "tests/test_site.py::test_name" -> "passed"/"failed" for tests marked covers(...)
        self.proofs: dict[str, str] = {}
        # "postgres_exporter@pg15" -> "postgres_exporter 0.11.1 against PostgreSQL 15.20, local"
        self.exporters: dict[str, str] = {}

    def add(self, entry: Entry) -> None:
        if entry.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {entry.outcome!r}")
        self.entries[entry.key] = entry

    def not_verified(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.outcome not in ("passed", "failed")]

    def write(self) -> None:
        """Merge this run's entries into the file, dropping entries of deleted snippets."""
        old = load(self.path)
        entries = {
            key: entry
            for key, entry in old.get("entries", {}).items()
            if (ROOT / entry["snippet"]).exists()
        }
        entries.update({key: asdict(entry) for key, entry in self.entries.items()})
        servers = {**old.get("servers", {}), **self.servers}
        data = {
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{platform.system()} {platform.machine()}, {platform.node()}",
            "servers": servers,
            "entries": dict(sorted(entries.items())),
            "proofs": dict(sorted({**old.get("proofs", {}), **self.proofs}.items())),
            "exporters": dict(sorted({**old.get("exporters", {}), **self.exporters}.items())),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)


def load(path: Path = REPORT) -> dict:
    """The report as written, or an empty one when no run has written it yet."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
