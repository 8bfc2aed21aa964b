"""The incident-channel message a rollback starts with, and what it must say.

``snippets/shell/rollback/incident_message.sh`` prints it; the fields are those an
incident channel needs to act without asking: which incident and how bad, what
triggered it, who is affected, what is being done (roll back the app, the schema or
both), between which releases, the schema version right now, who leads, and when the
next update comes.
"""

from __future__ import annotations

import re

REQUIRED = (
    "Severity",
    "Status",
    "Trigger",
    "Impact",
    "Decision",
    "Release",
    "Schema version",
    "Incident commander",
    "Started",
    "Next update",
)
TITLE = re.compile(r"^ERPGo emergency rollback: (?P<incident>\S.*)$")
FIELD = re.compile(r"^(?P<name>[A-Z][A-Za-z ]+): (?P<value>.*)$")
PLACEHOLDER = re.compile(r"<[^<>]+>")


def fields(message: str) -> dict[str, str]:
    """``{"Incident": ..., "Severity": ..., ...}`` from the message's lines."""
    lines = message.strip().splitlines()
    found: dict[str, str] = {}
    if lines and (title := TITLE.match(lines[0])):
        found["Incident"] = title["incident"].strip()
    for line in lines[1:]:
        if match := FIELD.match(line):
            found[match["name"]] = match["value"].strip()
    return found


def problems(message: str) -> list[str]:
    """What keeps the message from being posted: missing fields, empty or unfilled values."""
    found = fields(message)
    result = []
    for name in ("Incident", *REQUIRED):
        value = found.get(name)
        if value is None:
            result.append(f"no {name!r} line")
        elif not value:
            result.append(f"{name!r} is empty")
        elif placeholder := PLACEHOLDER.search(value):
            result.append(f"{name!r} still says {placeholder.group(0)}: fill it in")
    return result
