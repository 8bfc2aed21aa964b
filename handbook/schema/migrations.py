"""The ERPGo reference schema as golang-migrate migrations, applied the way a reader would.

Files live in ``snippets/migrations`` and follow golang-migrate's naming,
``NNNN_name.up.sql`` / ``NNNN_name.down.sql``. Each file is run with
``psql -X -v ON_ERROR_STOP=1 -f FILE`` (``psql`` from the ``PATH`` in the caller's
environment), and the state is recorded exactly as golang-migrate's postgres driver
records it, so the ``migrate`` CLI and this module can take over from each other:

* the table ``schema_migrations (version bigint not null primary key, dirty boolean
  not null)`` in the current schema holds at most one row;
* before a migration runs, the row becomes ``(target, dirty=true)``; after it succeeds,
  ``(target, dirty=false)``; if it fails, the row stays dirty and nothing else runs until
  someone repairs the database and forces a version (``migrate force N``, :func:`force`).
  For an up the target is the migration's version; for a down it is the previous
  version, or golang-migrate's "nil version" -1 when the first migration is rolled back
  (stored as ``(-1, true)`` while dirty, an empty table once clean);
* the run holds the same session-level advisory lock as the ``migrate`` CLI
  (``pg_advisory_lock`` of crc32 over ``/<database>``, schema and table name, times
  golang-migrate's salt), so it never interleaves with a real ``migrate`` run; unlike the
  CLI it does not wait for the lock but fails at once, saying who holds it.

One difference stays: golang-migrate sends a whole file as one multi-statement query on
the connection it keeps for the run, while psql runs the file's statements one by one
in a session of its own. The migrations are written to mean the same either way: each
sets ``lock_timeout`` first and wraps its statements in ``BEGIN`` ... ``COMMIT``, so a
failure changes nothing.

Functions take the client's environment (``PGHOST``, ``PGPORT``, ``PGUSER``,
``PGPASSWORD``, ``PGDATABASE`` and a ``PATH`` with ``psql``/``pg_dump`` first) as a dict;
it is passed to the client programs as their whole environment.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from handbook.paths import SNIPPETS, rel

MIGRATIONS = SNIPPETS / "migrations"
TABLE = "schema_migrations"
NIL_VERSION = -1  # golang-migrate's database.NilVersion
_LOCK_SALT = 1486364155  # golang-migrate's advisoryLockIdSalt
# golang-migrate's source/file parser: ^([0-9]+)_(.*)\.(down|up)\.(.*)$ with the sql extension.
_FILE_NAME = re.compile(r"^(?P<version>[0-9]+)_(?P<name>.+)\.(?P<direction>up|down)\.sql$")
_PSQL_ERROR = re.compile(
    r"^psql:(?P<file>.+?):(?P<line>\d+): (?P<severity>ERROR|FATAL|PANIC):\s+(?P<message>.*)$"
)
_PSQL_CONTEXT = re.compile(r"^LINE (?P<line>\d+): (?P<text>.*)$")


class MigrationError(RuntimeError):
    """A migration could not be discovered, applied or rolled back; the message says what to do."""

    def __init__(self, message: str, *, file: Path | None = None, line: int | None = None):
        super().__init__(message)
        self.file = file
        self.line = line


class DirtyDatabaseError(MigrationError):
    """schema_migrations says a migration failed half-way; golang-migrate refuses to go on too."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: Path
    down: Path

    @property
    def filename(self) -> str:
        """The up file's name, e.g. ``0001_create_users.up.sql`` (test ids use it)."""
        return self.up.name


@dataclass(frozen=True)
class State:
    """What ``schema_migrations`` says: ``version`` None when no migration is recorded."""

    version: int | None
    dirty: bool


# -- discovery ---------------------------------------------------------------------------------


def discover(directory: Path | str = MIGRATIONS) -> list[Migration]:
    """Every migration in ``directory``, sorted by version.

    Every ``*.sql`` file must be named ``NNNN_name.up.sql`` or ``NNNN_name.down.sql`` and
    have its pair; one version has one name. All problems are reported at once, each
    naming its file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise MigrationError(f"{rel(directory)}: no such directory of migrations", file=directory)
    problems: list[str] = []
    found: dict[int, dict[str, Path]] = {}
    names: dict[int, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        match = _FILE_NAME.match(path.name)
        if not match:
            problems.append(
                f"{rel(path)}: not a golang-migrate migration file name; rename it to "
                "NNNN_name.up.sql or NNNN_name.down.sql (or move it out of this directory)"
            )
            continue
        version, name = int(match["version"]), match["name"]
        if names.setdefault(version, name) != name:
            problems.append(
                f"{rel(path)}: version {version} is already used by "
                f"{match['version']}_{names[version]}; give this migration the next free number"
            )
            continue
        direction = match["direction"]
        if direction in found.setdefault(version, {}):
            problems.append(f"{rel(path)}: a second {direction} file for version {version}")
            continue
        found[version][direction] = path
    migrations = []
    for version in sorted(found):
        files = found[version]
        for have, missing in (("up", "down"), ("down", "up")):
            if have in files and missing not in files:
                expected = files[have].name.replace(f".{have}.sql", f".{missing}.sql")
                problems.append(
                    f"{rel(files[have])}: has no {missing} migration; add {expected} "
                    f"(a {missing} file that exactly reverses it)"
                )
        if "up" in files and "down" in files:
            migrations.append(Migration(version, names[version], files["up"], files["down"]))
    if problems:
        raise MigrationError("\n".join(problems), file=directory)
    return migrations


# -- running the client programs ---------------------------------------------------------------


def client_env(env: dict[str, str]) -> dict[str, str]:
    full = dict(env)
    full.setdefault("PATH", os.environ.get("PATH", os.defpath))
    return full


def client_program(env: dict[str, str], name: str) -> str:
    found = shutil.which(name, path=client_env(env)["PATH"])
    if not found:
        raise MigrationError(
            f"{name} not found on the PATH given in env; put the PostgreSQL client bin "
            "directory first on env['PATH'] (e.g. /usr/lib/postgresql/15/bin)"
        )
    return found


def _psql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [client_program(env, "psql"), "-X", "-v", "ON_ERROR_STOP=1", *args],
        env=client_env(env),
        capture_output=True,
        text=True,
        check=False,
    )


def _query(env: dict[str, str], sql: str) -> str:
    """Run bookkeeping SQL; any failure is an error (these statements are ours, not a file's)."""
    result = _psql(env, "-q", "-At", "-c", sql)
    if result.returncode != 0:
        raise MigrationError(
            f"psql failed on {sql.split(';')[0]!r}: {result.stderr.strip()}\n"
            "Check the connection settings in env (PGHOST, PGPORT, PGUSER, PGDATABASE)."
        )
    return result.stdout.strip()


def _ensure_table(env: dict[str, str]) -> None:
    # golang-migrate's ensureVersionTable, verbatim apart from the schema qualification.
    _query(
        env,
        f"CREATE TABLE IF NOT EXISTS {TABLE} (version bigint not null primary key, "
        "dirty boolean not null)",
    )


def state(env: dict[str, str]) -> State:
    """The version and dirty flag recorded in ``schema_migrations`` (no table: no version)."""
    if not _query(env, f"SELECT to_regclass('{TABLE}')"):
        return State(None, False)
    row = _query(env, f"SELECT version, dirty FROM {TABLE} LIMIT 1")
    if not row:
        return State(None, False)
    version, dirty = row.split("|")
    number = int(version)
    return State(None if number == NIL_VERSION else number, dirty == "t")


def _set_version(env: dict[str, str], version: int, dirty: bool) -> None:
    # golang-migrate's postgres SetVersion: TRUNCATE and INSERT in one transaction; the nil
    # version is written only while dirty (golang-migrate issue 330).
    insert = ""
    if version >= 0 or (version == NIL_VERSION and dirty):
        insert = f"INSERT INTO {TABLE} (version, dirty) VALUES ({int(version)}, {dirty});"
    _query(env, f"BEGIN; TRUNCATE {TABLE}; {insert} COMMIT;")


def force(env: dict[str, str], version: int | None) -> None:
    """Record ``version`` (None: no migration) as clean, like ``migrate force``.

    Only after a person has checked that the schema really is at that version.
    """
    _ensure_table(env)
    with _migration_lock(env):
        _set_version(env, NIL_VERSION if version is None else version, dirty=False)


def lock_id(database: str, schema: str = "public", table: str = TABLE) -> int:
    """The advisory lock key the ``migrate`` CLI takes for ``postgres://.../<database>``.

    The CLI passes the URL path (``/erpgo``, with its slash) as the database name.
    """
    name = b"\0".join(part.encode() for part in (f"/{database}", schema, table))
    return (zlib.crc32(name) * _LOCK_SALT) % 2**32


@contextmanager
def _migration_lock(env: dict[str, str]) -> Iterator[None]:
    """Hold golang-migrate's advisory lock in a psql session for the duration of the block."""
    proc = subprocess.Popen(
        [client_program(env, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"],
        env=client_env(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    try:
        proc.stdin.write("SELECT current_database() || '|' || current_schema();\n")
        proc.stdin.flush()
        where = proc.stdout.readline().strip()
        if "|" not in where:
            proc.stdin.close()
            raise MigrationError(
                f"psql could not connect to take the migration lock: {proc.stderr.read().strip()}"
                "\nCheck the connection settings in env (PGHOST, PGPORT, PGUSER, PGDATABASE)."
            )
        database, schema = where.split("|", 1)
        key = lock_id(database, schema)
        proc.stdin.write(f"SELECT pg_try_advisory_lock({key});\n")
        proc.stdin.flush()
        if proc.stdout.readline().strip() != "t":
            proc.stdin.close()
            raise MigrationError(
                f"another migration run holds the migration lock on database {database!r} "
                f"(advisory lock {key}, the one golang-migrate takes); wait for it to finish, "
                "or find it with: SELECT pid, state, query FROM pg_stat_activity WHERE pid IN "
                f"(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = {key})"
            )
        yield
    finally:
        if not proc.stdin.closed:
            proc.stdin.close()  # ends the session, which releases the lock
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# -- running migration files ------------------------------------------------------------------


def _exact_line(path: Path, reported: int, context: list[str]) -> int:
    """psql reports the line where the failing statement ends; find the offending line.

    The ``LINE n: text`` context psql prints quotes the line the server pointed at;
    look for it at or before the reported line.
    """
    if not context:
        return reported
    text = context[0].strip()
    text = text.removeprefix("...").removesuffix("...").strip()
    if not text:
        return reported
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number in range(min(reported, len(lines)), 0, -1):
        if text in lines[number - 1]:
            return number
    return reported


def _run_file(env: dict[str, str], path: Path) -> None:
    result = _psql(env, "-f", str(path))
    if result.returncode == 0:
        return
    stderr = result.stderr.strip()
    line = None
    message = stderr or f"psql exited with status {result.returncode}"
    lines = stderr.splitlines()
    for index, text in enumerate(lines):
        match = _PSQL_ERROR.match(text)
        if match:
            context = []
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if context_match := _PSQL_CONTEXT.match(following):
                context = [context_match["text"]]
            line = _exact_line(path, int(match["line"]), context)
            message = f"{match['severity']}: {match['message']}"
            if line != int(match["line"]):
                message += f" (the statement ends at line {match['line']})"
            details = [item for item in lines[index + 1 :] if not _PSQL_ERROR.match(item)]
            if details:
                message += "\n    " + "\n    ".join(details)
            break
    where = f"{rel(path)}:{line}" if line else rel(path)
    raise MigrationError(f"{where}: {message}", file=path, line=line)


def _transactional(path: Path) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    body = re.sub(r"--[^\n]*", "", text)
    return bool(re.search(r"(?im)^\s*BEGIN\s*;", body)) and bool(
        re.search(r"(?im)^\s*COMMIT\s*;", body)
    )


def _failed(error: MigrationError, migration: Migration, direction: str, previous: int) -> None:
    path = migration.up if direction == "up" else migration.down
    recorded = migration.version if direction == "up" else previous
    # The version the schema is really at once the failed file's effects are gone: before
    # the up, or still at the migration when its down failed.
    good = previous if direction == "up" else migration.version
    if _transactional(path):
        undone = f"{path.name} runs in one transaction (BEGIN ... COMMIT), so it changed nothing"
    else:
        undo = "undo it" if direction == "up" else "put back what it removed"
        undone = (
            f"{path.name} does not run in one transaction: what it did before the failing "
            f"statement stayed done; {undo} by hand first"
        )
    force_to = "-1 (no version)" if good == NIL_VERSION else str(good)
    raise MigrationError(
        f"{error}\n"
        f"Migration {migration.version} {direction} failed: schema_migrations now records "
        f"version {recorded} as dirty, and neither golang-migrate nor this module will migrate "
        f"until that is resolved.\n"
        f"What to do: {undone}. Fix the file, then record the last good version with "
        f'`migrate -path {rel(path.parent)} -database "$DATABASE_URL" force {force_to}` '
        f"(handbook.schema.migrations.force(env, {None if good == NIL_VERSION else good})) "
        "and run the migration again.",
        file=error.file,
        line=error.line,
    ) from error


def _check_clean(env: dict[str, str], migrations: Sequence[Migration]) -> State:
    current = state(env)
    if current.dirty:
        shown = NIL_VERSION if current.version is None else current.version
        raise DirtyDatabaseError(
            f"Dirty database version {shown}. Fix and force version. (schema_migrations says a "
            "migration failed half-way: check the schema by hand, then record the version it is "
            f"really at with `migrate force N` or handbook.schema.migrations.force(env, N))"
        )
    known = {m.version for m in migrations}
    if current.version is not None and current.version not in known:
        raise MigrationError(
            f"the database is at version {current.version}, which none of the given migrations "
            f"has ({_describe(migrations)}); is this the right database and migrations directory?"
        )
    return current


def _describe(migrations: Sequence[Migration]) -> str:
    if not migrations:
        return "no migrations"
    return f"{migrations[0].filename} .. {migrations[-1].filename}"


def _ordered(migrations: Sequence[Migration]) -> list[Migration]:
    ordered = sorted(migrations, key=lambda m: m.version)
    versions = [m.version for m in ordered]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version: {_describe(ordered)}")
    return ordered


def apply(
    env: dict[str, str], migrations: Sequence[Migration], target: int | None = None
) -> list[Migration]:
    """Migrate up to ``target`` (default: the last migration); returns what was applied.

    Refuses a dirty database, like golang-migrate. A failing file leaves
    ``schema_migrations`` at its version with dirty=true and raises :class:`MigrationError`
    naming the file and line and saying how to recover.
    """
    ordered = _ordered(migrations)
    if not ordered:
        return []
    target = ordered[-1].version if target is None else target
    if target not in {m.version for m in ordered}:
        raise MigrationError(f"no migration has version {target} ({_describe(ordered)})")
    _ensure_table(env)
    with _migration_lock(env):
        current = _check_clean(env, ordered)
        if current.version is not None and target < current.version:
            raise MigrationError(
                f"the database is at version {current.version}, past the target {target}; "
                "apply() only goes up: roll back one version at a time with rollback_one()"
            )
        todo = [
            m
            for m in ordered
            if (current.version is None or m.version > current.version) and m.version <= target
        ]
        previous = NIL_VERSION if current.version is None else current.version
        for migration in todo:
            _set_version(env, migration.version, dirty=True)
            try:
                _run_file(env, migration.up)
            except MigrationError as error:
                _failed(error, migration, "up", previous)
            _set_version(env, migration.version, dirty=False)
            previous = migration.version
    return todo


def rollback_one(env: dict[str, str], migrations: Sequence[Migration]) -> Migration:
    """Run the down file of the current version, like ``migrate down 1``; returns it."""
    ordered = _ordered(migrations)
    _ensure_table(env)
    with _migration_lock(env):
        current = _check_clean(env, ordered)
        if current.version is None:
            raise MigrationError(
                "nothing to roll back: schema_migrations records no version on this database"
            )
        index = [m.version for m in ordered].index(current.version)
        migration = ordered[index]
        previous = ordered[index - 1].version if index > 0 else NIL_VERSION
        _set_version(env, previous, dirty=True)
        try:
            _run_file(env, migration.down)
        except MigrationError as error:
            _failed(error, migration, "down", previous)
        _set_version(env, previous, dirty=False)
    return migration


# -- schema comparison ------------------------------------------------------------------------

_VOLATILE_DUMP_LINE = re.compile(
    r"^(--|SET |SELECT pg_catalog\.set_config\(|\\restrict |\\unrestrict )"
)


def schema_dump(env: dict[str, str]) -> str:
    """``pg_dump --schema-only --no-owner``, without comments, SET lines and restrict tokens."""
    result = subprocess.run(
        [client_program(env, "pg_dump"), "--schema-only", "--no-owner"],
        env=client_env(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise MigrationError(
            f"pg_dump --schema-only failed: {result.stderr.strip()}\n"
            "Check the connection settings in env, and that pg_dump on env['PATH'] is at "
            "least as new as the server."
        )
    kept = [
        line.rstrip() for line in result.stdout.splitlines() if not _VOLATILE_DUMP_LINE.match(line)
    ]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept))
    return text.strip() + "\n"


@dataclass
class Reversibility:
    """The outcome of :func:`reversibility`; falsy when a check failed, ``report()`` says why."""

    migration: Migration
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def report(self) -> str:
        if self.ok:
            return f"{rel(self.migration.up)}: up, down, up leave identical schemas"
        return "\n\n".join(self.problems)


def _diff(before: str, after: str, before_label: str, after_label: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), before_label, after_label, lineterm=""
    )
    return "\n".join(lines)


def reversibility(
    env: dict[str, str], migration: Migration, migrations: Sequence[Migration] | None = None
) -> Reversibility:
    """Up, down, up of one migration on top of its predecessors, comparing schema dumps.

    ``env`` names a database at or below the migration's predecessor (an empty one is
    fine): the predecessors are applied first. ``migrations`` defaults to the migration's
    directory. The schema after the down must equal the schema before the up, and the
    second up must give the schema the first one gave. A step that fails is reported as a
    problem (and ends the check). On success the database is left at the migration's
    version.
    """
    ordered = _ordered(migrations if migrations is not None else discover(migration.up.parent))
    earlier = [m for m in ordered if m.version < migration.version]
    if earlier:
        apply(env, ordered, target=earlier[-1].version)
    current = state(env)
    expected = earlier[-1].version if earlier else None
    if current.version != expected:
        raise MigrationError(
            f"{rel(migration.up)}: reversibility needs the database at version "
            f"{expected if expected is not None else 'none'} but it is at {current.version}; "
            "use a fresh database"
        )
    result = Reversibility(migration)
    _ensure_table(env)  # golang-migrate creates it on connecting, before anything runs
    up, down = rel(migration.up), rel(migration.down)
    dumps: dict[str, str] = {"before": schema_dump(env)}
    steps = [
        ("after up", f"{up} failed", lambda: apply(env, ordered, target=migration.version)),
        ("after down", f"{down} failed", lambda: rollback_one(env, ordered)),
        ("after second up", f"{up} failed when run again after {down}",
         lambda: apply(env, ordered, target=migration.version)),
    ]  # fmt: skip
    for label, failure, step in steps:
        try:
            step()
        except MigrationError as error:
            result.problems.append(f"{failure}:\n{error}")
            break
        dumps[label] = schema_dump(env)
        if label == "after down" and dumps[label] != dumps["before"]:
            result.problems.append(
                f"{down}: does not exactly reverse {up}; make it drop (or restore) everything "
                "the up changes. Schema before the up (-) against after the down (+):\n"
                + _diff(dumps["before"], dumps[label], f"before {up}", f"after {down}")
            )
        if label == "after second up" and dumps[label] != dumps["after up"]:
            result.problems.append(
                f"{up}: running it again after {down} gives a different schema; the down leaves "
                "something behind that changes what the up does. First up (-) against second "
                "(+):\n"
                + _diff(dumps["after up"], dumps[label], f"after {up}", f"after {up} again")
            )
    return result
