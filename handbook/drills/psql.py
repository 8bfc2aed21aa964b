"""What every drill does with psql: run set-up SQL, and read a snippet's result tables back.

Runbook snippets run through ``handbook.runners`` exactly as the test suite runs
them; their aligned output (what a reader sees) is turned back into rows here so a
drill can assert on it. Set-up SQL that is not a runbook step goes through
:func:`psql`, which fails loudly with the SQL that broke.
"""

from __future__ import annotations

import re
import subprocess

_SEPARATOR = re.compile(r"^-+(\+-+)*$")
_ROWS_FOOTER = re.compile(r"^\(\d+ rows?\)$")


class DrillError(RuntimeError):
    """A drill step that is not the runbook's own failed; the message says which."""


def tables(output: str) -> list[list[dict[str, str]]]:
    """Every result table in psql's aligned output, each a list of {column: value}."""
    lines = output.splitlines()
    found = []
    for index, line in enumerate(lines):
        if index == 0 or not _SEPARATOR.match(line.strip()):
            continue
        columns = [c.strip() for c in lines[index - 1].split("|")]
        rows = []
        for row in lines[index + 1 :]:
            if _ROWS_FOOTER.match(row.strip()) or not row.strip():
                break
            values = [v.strip() for v in row.split("|", len(columns) - 1)]
            rows.append(dict(zip(columns, values, strict=False)))
        found.append(rows)
    return found


def table(output: str, index: int = 0) -> list[dict[str, str]]:
    """The ``index``-th result table (``-1``: the last); DrillError if there is none."""
    found = tables(output)
    if not -len(found) <= index < len(found):
        raise DrillError(f"expected result table {index} in psql's output, got:\n{output}")
    return found[index]


def psql(env: dict[str, str], sql: str) -> str:
    """Run drill set-up SQL (a psql script) with ``env``; unaligned rows, fields split by |."""
    result = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        input=sql,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        database = env.get("PGDATABASE", "?")
        raise DrillError(
            f"drill set-up SQL failed on database {database}: {result.stderr.strip()}\nSQL:\n{sql}"
        )
    return result.stdout
