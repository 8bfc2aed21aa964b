"""The deployment and rollback drills' parts: release queries, lock holders, data checksums.

Two ERPGo releases meet the expand/contract change of ``snippets/migrations``:
release 1.4 reads and writes ``users.email_verified`` (added by 0006); release 1.5
reads and writes ``users.email_verified_at`` (added and backfilled by 0007, the expand
step). 0009, the contract step, drops the flag, so it may run only once no 1.4 pod
is left. :class:`Release14` and :class:`Release15` send the SQL each release's user
repository sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from handbook.drills.common import connect, psql
from handbook.paths import rel
from handbook.schema import migrations as mig

LOCK_TIMEOUT_ERROR = "canceling statement due to lock timeout"  # SQLSTATE 55P03
MAX_LOCK_TIMEOUT_MS = 10_000  # a migration may make queries queue for at most this long
EXPAND, CONTRACT = 7, 9  # the versions of the expand and the contract migration


# -- the two releases' queries ----------------------------------------------------------------


@dataclass
class Release14:
    """ERPGo 1.4's user repository: the boolean flag."""

    conn: psycopg.Connection

    def sign_up(self, email: str) -> int:
        row = self.conn.execute(
            "INSERT INTO users (email, username, password_hash, email_verified) "
            "VALUES (%s, %s, 'argon2id$drill', false) RETURNING id",
            (email, email.split("@")[0]),
        ).fetchone()
        assert row is not None
        return row[0]

    def confirm_email(self, user_id: int) -> None:
        self.conn.execute("UPDATE users SET email_verified = true WHERE id = %s", (user_id,))

    def is_verified(self, user_id: int) -> bool:
        row = self.conn.execute(
            "SELECT email_verified FROM users WHERE id = %s", (user_id,)
        ).fetchone()
        assert row is not None, f"user {user_id} not found"
        return row[0]


@dataclass
class Release15:
    """ERPGo 1.5's user repository: the confirmation time."""

    conn: psycopg.Connection

    def sign_up(self, email: str) -> int:
        row = self.conn.execute(
            "INSERT INTO users (email, username, password_hash) "
            "VALUES (%s, %s, 'argon2id$drill') RETURNING id",
            (email, email.split("@")[0]),
        ).fetchone()
        assert row is not None
        return row[0]

    def confirm_email(self, user_id: int) -> None:
        self.conn.execute("UPDATE users SET email_verified_at = now() WHERE id = %s", (user_id,))

    def is_verified(self, user_id: int) -> bool:
        row = self.conn.execute(
            "SELECT email_verified_at IS NOT NULL FROM users WHERE id = %s", (user_id,)
        ).fetchone()
        assert row is not None, f"user {user_id} not found"
        return row[0]


# -- lock safety ------------------------------------------------------------------------------

_SET_LOCK_TIMEOUT = re.compile(
    r"^SET\s+(LOCAL\s+)?lock_timeout\s*(=|TO)\s*'?(?P<value>\d+)\s*(?P<unit>ms|s|min)?'?$", re.I
)
_HARMLESS = re.compile(r"^(BEGIN|START TRANSACTION|COMMIT|SET\s+\w+|RESET\s+\w+)\b", re.I)
_UNITS = {"ms": 1, "s": 1000, "min": 60_000, None: 1}


def _statements(text: str) -> Iterator[tuple[int, str]]:
    """(line, statement) pairs; comments dropped, dollar-quoted bodies kept whole."""
    code = re.sub(r"--[^\n]*", "", text)
    start, line, index, dollar = 0, 1, 0, None
    while index < len(code):
        if dollar:
            end = code.find(dollar, index)
            index = len(code) if end < 0 else end + len(dollar)
            dollar = None
            continue
        if match := re.match(r"\$\w*\$", code[index:]):
            dollar = match.group(0)
            index += len(dollar)
            continue
        if code[index] == ";":
            statement = code[start:index].strip()
            if statement:
                leading = code[start:index]
                first = line + leading[: len(leading) - len(leading.lstrip())].count("\n")
                yield first, " ".join(statement.split())
            line += code[start : index + 1].count("\n")
            start = index + 1
        index += 1


def lock_timeout_problems(path: Path) -> list[str]:
    """Why ``path`` does not set a bounded lock_timeout before its first locking statement."""
    bounded = False
    for line, statement in _statements(path.read_text(encoding="utf-8")):
        match = _SET_LOCK_TIMEOUT.match(statement)
        if match:
            millis = int(match["value"]) * _UNITS[match["unit"] and match["unit"].lower()]
            if millis == 0 or millis > MAX_LOCK_TIMEOUT_MS:
                return [
                    f"{rel(path)}:{line}: lock_timeout {match['value']}{match['unit'] or ''} "
                    f"is {'no limit' if millis == 0 else 'too long'}: use at most "
                    f"{MAX_LOCK_TIMEOUT_MS // 1000}s so queries never queue longer behind it"
                ]
            bounded = True
            continue
        if _HARMLESS.match(statement):
            continue
        if not bounded:
            return [
                f"{rel(path)}:{line}: the first statement that takes locks comes before any "
                "SET lock_timeout: start the file with SET lock_timeout = '5s'; so a busy table "
                "makes the migration fail fast instead of queueing every query behind it"
            ]
        return []
    return []


@contextmanager
def long_transaction(env: dict[str, str], table_name: str) -> Iterator[int]:
    """A report-style transaction that read ``table_name`` and stays open; yields its pid."""
    conn = connect(env, "erpgo-report", autocommit=True)
    try:
        conn.execute("BEGIN")
        conn.execute(f"SELECT count(*) FROM {table_name}")
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        yield row[0]
    finally:
        conn.close()


# -- data that survives a down and up ---------------------------------------------------------

_ALTER = re.compile(r"ALTER TABLE (?:ONLY )?(?P<table>[\w.]+) (?P<actions>.*)", re.I)
_ADD_COLUMN = re.compile(r"ADD COLUMN (?:IF NOT EXISTS )?(?P<column>\w+)", re.I)
_CREATE_TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(?P<table>[\w.]+)", re.I)


def qualified(table_name: str) -> str:
    return table_name if "." in table_name else f"public.{table_name}"


def owned(migration: mig.Migration) -> tuple[set[str], dict[str, set[str]]]:
    """Tables the up file creates and columns it adds: data its down may rightly lose."""
    tables: set[str] = set()
    columns: dict[str, set[str]] = {}
    for _, statement in _statements(migration.up.read_text(encoding="utf-8")):
        if match := _CREATE_TABLE.match(statement):
            tables.add(qualified(match["table"]))
        elif match := _ALTER.match(statement):
            added = {m["column"] for m in _ADD_COLUMN.finditer(match["actions"])}
            if added:
                columns.setdefault(qualified(match["table"]), set()).update(added)
    return tables, columns


def data_sums(env: dict[str, str], skip_columns: dict[str, set[str]]) -> dict[str, str]:
    """``rows:md5`` of every table of the public and ops schemas, without the given columns."""
    names = psql(
        env,
        "SELECT string_agg(schemaname || '.' || tablename, ' ' ORDER BY 1) FROM pg_tables "
        "WHERE schemaname IN ('public', 'ops') AND tablename <> 'schema_migrations'",
    ).split()
    parts = []
    for name in names:
        drop = "{" + ",".join(sorted(skip_columns.get(name, ()))) + "}"
        parts.append(
            f"SELECT '{name}', count(*) || ':' || md5(coalesce(string_agg(r, E'\\n' ORDER BY r), "
            f"'')) FROM (SELECT (to_jsonb(t) - '{drop}'::text[])::text AS r FROM {name} AS t) AS x"
        )
    output = psql({**env, "PGTZ": "UTC"}, " UNION ALL ".join(parts))
    return dict(line.split("|", 1) for line in output.splitlines())
