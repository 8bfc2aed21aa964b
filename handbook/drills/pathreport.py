"""The alert-path drills' figures: ``build/alert-path.json``, and what each drill is.

``handbook/drills/alertpath.py`` runs the drills (``tests/drills/test_alert_path.py``) and
:func:`record` merges what each measured: the seconds from the fault to the responder's
notification, and from the notification to a note naming the cause. The figures are
measured, never asserted. ``{alert-path}`` (``handbook/sphinxext/alertpath.py``) renders
them beside each alert's ``for``.

Imports nothing heavier than the standard library: the Sphinx build reads it.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from handbook.drills import objectives
from handbook.paths import BUILD

REPORT = BUILD / "alert-path.json"
TEST_COMMAND = "pytest -m drill tests/drills/test_alert_path.py"

# The `for` the drills' copy of the rules shortens, and why: the one place, for every
# drill that waits for an alert (this module's alert-path drills and
# handbook/drills/failover_monitoring.py). The real durations are pinned by the promtool
# unit tests in conf/prometheus/tests/ ("silent until for has elapsed": silent one
# evaluation before the `for`, firing at it); a drill proves that the alert goes pending,
# stays silent for the `for` its copy sets, then fires, is routed and clears.
SHORTENED_FOR = {
    "PostgreSQLDown": (
        "10s",
        "the unit tests pin the real 1m boundary; 10 s is ten of the drill's 1 s "
        "evaluations, long enough to see the alert pending and silent before it fires, "
        "and each drill that crashes a server would otherwise wait a minute for nothing",
    ),
    "DatabaseConnectionPoolExhausted": (
        "15s",
        "the drill holds its leaked sessions for the `for`: 5 minutes of a held-open "
        "server per run buys nothing the unit tests do not prove",
    ),
    "HighFailedLoginRate": (
        "15s",
        "the drill's burst stays in increase()'s 5 minute window for exactly 5 minutes, "
        "as long as the `for`: the alert would race the burst leaving the window",
    ),
}


@dataclass(frozen=True)
class Drill:
    name: str  # the report's key
    alert: str
    fault: str  # what the drill breaks, for the page


DRILLS = (
    Drill("postgres-down", "PostgreSQLDown", "PostgreSQL stops (pg_ctl stop -m immediate)"),
    Drill(
        "pool-exhaustion",
        "DatabaseConnectionPoolExhausted",
        "the API leaks transactions until 24 of its 25 pooled connections are in use",
    ),
    Drill(
        "brute-force",
        "HighFailedLoginRate",
        "a burst of 240 failed logins from one address on one account",
    ),
)


@dataclass
class Measured:
    drill: str  # a Drill's name
    alert: str
    server: str
    fault: float  # epoch seconds, the drill's clock
    received: float  # when the responder got the notification (the same machine's clock)
    diagnosed: float  # when its note named the cause

    def figures(self) -> dict[str, float]:
        return {
            "fault_to_notification_seconds": self.received - self.fault,
            "notification_to_note_seconds": self.diagnosed - self.received,
        }


def drill_for(alert: str, production: str) -> str:
    """The ``for`` the drill's Prometheus waits: the shortened one, else production's."""
    return SHORTENED_FOR.get(alert, (production, ""))[0]


def load(path: Path = REPORT) -> dict:
    """The report as written, or ``{}`` when no drill has run here yet."""
    return objectives.load(path)


def record(
    found: Measured, production_for: str, command: str = TEST_COMMAND, path: Path = REPORT
) -> None:
    """Merge one drill's figures into the report (one entry per drill). A lock file keeps
    two drills that finish together (parallel test workers) from losing one's entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _merge(found, production_for, command, path)


def _merge(found: Measured, production_for: str, command: str, path: Path) -> None:
    data = load(path)
    entries = data.get("entries", {}) if isinstance(data.get("entries"), dict) else {}
    entries[found.drill] = {
        "drill": found.drill,
        "alert": found.alert,
        "for": production_for,
        "drill_for": drill_for(found.alert, production_for),
        "server": found.server,
        "measured": {k: round(v, 3) for k, v in found.figures().items()},
        "when": objectives.now(),
        "machine": objectives.machine(),
        "command": command,
    }
    data = {"generated": objectives.now(), "entries": dict(sorted(entries.items()))}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
