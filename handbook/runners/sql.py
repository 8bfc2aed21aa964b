"""Run a SQL snippet the way a reader does: ``psql -X -v ON_ERROR_STOP=1 -f <file>``."""

from __future__ import annotations

import re

from handbook.runners.base import Outcome, Target, execute
from handbook.snippet import Snippet

# psql -b prints: "psql:<file>:<line>: ERROR:  <message>", then "LINE <n>: ...", then
# "psql:<file>:<line>: STATEMENT:  <the statement as sent>".
PSQL_ERROR = re.compile(
    r"^psql:.*?:(?P<line>\d+): (?P<level>ERROR|FATAL|PANIC):\s+(?P<msg>.*)$", re.M
)
POSITION = re.compile(r"^LINE (?P<n>\d+): ", re.M)
STATEMENT = re.compile(r"^psql:.*?:\d+: STATEMENT:  (?P<sql>.*)\Z", re.M | re.S)


def error_line(stderr: str, end_line: int) -> int:
    """The file line the server's error points at.

    psql names the line where the failing statement ends; counting the statement's
    lines back from there gives its first line, and the server's error position
    (``LINE n``) the line within it. Without a position, the statement's first line.
    """
    statement = STATEMENT.search(stderr)
    if not statement:
        return end_line
    first = end_line - statement["sql"].rstrip("\n").count("\n")
    position = POSITION.search(stderr)
    return first + int(position["n"]) - 1 if position else first


def run(snippet: Snippet, target: Target) -> Outcome:
    """psql with the target's PG* variables (its PATH picks the psql); ``target.variables``
    are psql variables, as a reader passes them (``psql -v min_idle='5 s'``), for snippets
    that document a knob with a default (``\\if :{?min_idle} ... \\endif``)."""
    command = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "--echo-errors"]
    for name, value in target.variables.items():
        command += ["-v", f"{name}={value}"]
    command += ["-f", str(snippet.path)]
    result = execute(snippet, target, command)
    if isinstance(result, Outcome):
        return result
    output = result.stdout + result.stderr
    error = PSQL_ERROR.search(result.stderr)
    if result.returncode == 0 and not error:
        return Outcome(True, result.stdout, returncode=0)
    if error:
        line = error_line(result.stderr[error.start() :], int(error["line"]))
        message = f"{snippet.name}:{line}: {error['level']}: {error['msg']}"
    else:
        message = f"{snippet.name}:{snippet.body_start}: psql exited {result.returncode}"
    return Outcome(False, output, f"{message} ({target.servers})", result.returncode)


# psql's aligned output: a header line, a "----+----" rule, rows, then "(N rows)".
RULE = re.compile(r"^-+(\+-+)*$")
ROWS_FOOTER = re.compile(r"^\(\d+ rows?\)$")


def tables(output: str) -> list[list[dict[str, str]]]:
    """Every result table in psql's aligned output, each a list of {column: value}.

    The drills and ``handbook diagnose`` read what a SQL snippet printed through this.
    """
    lines = output.splitlines()
    found = []
    for index, line in enumerate(lines):
        if index == 0 or not RULE.match(line.strip()):
            continue
        columns = [c.strip() for c in lines[index - 1].split("|")]
        rows = []
        for row in lines[index + 1 :]:
            if ROWS_FOOTER.match(row.strip()) or not row.strip():
                break
            values = [v.strip() for v in row.split("|", len(columns) - 1)]
            rows.append(dict(zip(columns, values, strict=False)))
        found.append(rows)
    return found
