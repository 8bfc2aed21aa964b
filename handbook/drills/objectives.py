"""Disaster-recovery objectives, and the drill report the page renders beside them.

``OBJECTIVES``: the production RTO/RPO targets, one per failure scenario, each naming
the drills that measure it. ``build/dr-report.json``: what the drills measured
(``Figures``), on which machine (CPU model and cores, never the hostname), when, on
which server versions, and with which command. The drill tests write it on every run;
so does ``python -m handbook.drills.dr`` (``dr.py``). A run updates the entries it
measured and keeps the others (each entry carries its own machine and date).

Imports nothing heavier than the standard library: the Sphinx build reads it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from handbook.paths import BUILD, CONF

REPORT = BUILD / "dr-report.json"
SENTINEL_CONF = CONF / "redis" / "sentinel.conf"
COMMAND = "python -m handbook.drills.dr"
TEST_COMMAND = "pytest -m drill tests/drills/test_disaster_recovery.py"


@dataclass(frozen=True)
class Objective:
    anchor: str  # the scenario's id, used in the page's table
    scenario: str
    rto: str  # production target: time until service is back
    rpo: str  # production target: committed data that may be lost
    drills: tuple[str, ...]  # the drill names (``Figures.name``) that measure it
    procedure: str  # what the on-call engineer does


OBJECTIVES = (
    Objective(
        "primary-failure",
        "PostgreSQL primary lost: promote the streaming replica",
        "15 min (PostgreSQLDown fires after 1 min; decide, promote, repoint ERPGo)",
        "1 min of acknowledged commits: replication is asynchronous; 0 with a synchronous standby",
        ("promotion-async", "promotion-sync"),
        "promote.sql on the replica, then point the pooler behind ERPGO_DB_HOST at it",
    ),
    Objective(
        "bad-change",
        "Data destroyed by a release or a mistaken statement: point-in-time restore",
        "4 h (restore beside production, check, switch over)",
        "0 before the chosen restore point or time",
        ("pitr-name", "pitr-time"),
        "restore_point.sql before every release; restore_pitr.sh to undo",
    ),
    Objective(
        "site-loss",
        "Primary and replica both lost: restore the last base backup and the WAL archive",
        "4 h",
        "archive_timeout (5 min) of commits on a quiet database",
        ("pitr-time",),
        "restore_pitr.sh with a time after the last archived commit",
    ),
    Objective(
        "bad-backup",
        "A backup that does not restore",
        "found within 24 h: each nightly backup is restored and compared",
        "the previous night's backup and its WAL still cover the gap",
        ("backup-verification",),
        "base_backup.sh, restore_scratch.sh, verify_restore.sql on both sides",
    ),
    Objective(
        "redis-failure",
        "Redis master lost: Sentinel promotes the replica",
        "30 s (down-after-milliseconds 5 s, then election and promotion)",
        "cache writes not yet replicated; the cache refills from PostgreSQL",
        ("sentinel-failover",),
        "automatic; sentinel_status.sh and redis_role.sh confirm it",
    ),
)

# How the page shows each measured figure: (key, label, unit).
FIGURES = {
    "pitr-name": (("restore_seconds", "restored and writable in", "s"),),
    "pitr-time": (
        ("restore_seconds", "restored and writable in", "s"),
        ("wal_archived_bytes", "WAL archived", "MB"),
    ),
    "promotion-async": (
        ("promote_to_write_seconds", "pg_promote() to first write", "s"),
        ("transactions_lost", "acknowledged commits lost", ""),
    ),
    "promotion-sync": (
        ("promote_to_write_seconds", "pg_promote() to first write", "s"),
        ("transactions_lost", "acknowledged commits lost", ""),
    ),
    "backup-verification": (
        ("backup_seconds", "base backup", "s"),
        ("backup_bytes", "size", "MB"),
        ("verify_seconds", "restore and compare", "s"),
    ),
    "sentinel-failover": (
        ("to_new_master_seconds", "master killed to new master", "s"),
        ("to_writes_seconds", "to first write", "s"),
        ("down_after_ms", "with down-after", "ms"),
    ),
}


@dataclass(kw_only=True)
class Figures:
    """One drill run as the report keeps it: which drill, on which server, what it measured
    (seconds, bytes: reported, never asserted). Each drill's result extends it with what
    it checked."""

    name: str  # "pitr-name", "promotion-async", "sentinel-failover", ...
    label: str  # the pool label of the server version: "pg18", "redis7.0"
    server: str  # "PostgreSQL 18.6"
    measured: dict[str, float] = field(default_factory=dict)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> dict[str, object]:
    """The machine, without its hostname."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
    }


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load(path: Path = REPORT) -> dict:
    """The report as written, or ``{}`` when no drill has run here yet."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def entry(drill: Figures, command: str) -> dict[str, object]:
    """One drill run's figures as a report entry."""
    return {
        "drill": drill.name,
        "label": drill.label,
        "server": drill.server,
        "measured": {k: round(float(v), 3) for k, v in drill.measured.items()},
        "when": now(),
        "machine": machine(),
        "command": command,
    }


def record(drills: Iterable[Figures], command: str, path: Path = REPORT) -> None:
    """Merge these drills' figures into the report (one entry per drill and label)."""
    data = load(path)
    entries = data.get("entries", {}) if isinstance(data.get("entries"), dict) else {}
    for drill in drills:
        entries[f"{drill.name}[{drill.label}]"] = entry(drill, command)
    data = {"generated": now(), "entries": dict(sorted(entries.items()))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def figure(value: float, unit: str) -> str:
    if unit == "MB":
        return f"{value / 1e6:.0f} MB"
    if unit == "s":
        return f"{value:.1f} s" if value >= 0.95 else f"{value * 1000:.0f} ms"
    if unit == "ms":
        return f"{value:.0f} ms"
    return f"{value:.0f}"


def production_down_after_ms(path: Path = SENTINEL_CONF) -> int | None:
    """``sentinel down-after-milliseconds`` for the master in production's sentinel.conf."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^sentinel down-after-milliseconds \S+ (\d+)\s*$", text, re.M)
    return int(match.group(1)) if match else None


def describe(item: dict) -> str:
    """One entry's figures as text: ``restored and writable in 3.3 s``."""
    measured = item.get("measured", {})
    parts = [
        f"{label} {figure(float(measured[key]), unit)}"
        for key, label, unit in FIGURES.get(str(item.get("drill")), ())
        if key in measured
    ]
    production = production_down_after_ms()
    if item.get("drill") == "sentinel-failover" and production and "down_after_ms" in measured:
        # Detection waits down-after; the election and promotion after it do not depend on it.
        elapsed = float(measured["to_new_master_seconds"])
        estimate = elapsed - float(measured["down_after_ms"]) / 1000 + production / 1000
        parts.append(f"so about {figure(estimate, 's')} with production's {production} ms")
    return ", ".join(parts)
