"""The reference schema's migrations, the golang-migrate bookkeeping, and the seed data.

Everything runs on real PostgreSQL: every local or Docker server the handbook's pool
offers (pg15 and pg18 on a machine with the Debian package and the tests group), each
started once per session; every test gets a database of its own.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from handbook.paths import DOCS, rel
from handbook.pytest_plugin import REPORT
from handbook.report import Entry
from handbook.schema import migrations as mig
from handbook.schema import seed as sd

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [pytest.mark.covers("20.3")]

MIGRATIONS = mig.discover()
ANCHOR = "2026-01-05 12:00:00+00"


# -- the shared servers of the handbook's pool (handbook.pytest_plugin) ----------------------


@dataclass
class PG:
    label: str
    version: str
    env: dict[str, str]

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env={**self.env, "PGDATABASE": database},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"psql -c {sql!r} failed: {result.stderr}"
        return result.stdout.strip()


@pytest.fixture(scope="session")
def pg(pg_server) -> PG:
    """A server per PostgreSQL label the pool offers (pg15, pg18, ...), as its superuser."""
    return PG(pg_server.label, pg_server.version, pg_server.env("admin"))


_names = itertools.count(1)


def _database(pg: PG) -> dict[str, str]:
    name = f"handbook_{os.getpid()}_{next(_names)}"
    pg.psql(f"CREATE DATABASE {name}")
    return {**pg.env, "PGDATABASE": name}


@pytest.fixture
def db(pg: PG):
    """An empty database of its own on the session's server, dropped afterwards."""
    env = _database(pg)
    yield env
    pg.psql(f"DROP DATABASE {env['PGDATABASE']} WITH (FORCE)")


def _query(env: dict[str, str], sql: str) -> str:
    result = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"psql -c {sql!r} failed: {result.stderr}"
    return result.stdout.strip()


# -- discovery and the files themselves ------------------------------------------------------


def test_discover_finds_every_pair_in_version_order():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert len(MIGRATIONS) >= 5
    for m in MIGRATIONS:
        assert m.up.name == f"{m.up.name[:4]}_{m.name}.up.sql"
        assert m.down == m.up.with_name(f"{m.up.name[:4]}_{m.name}.down.sql")
        assert m.down.exists()
    on_disk = sorted(p.name for p in mig.MIGRATIONS.iterdir())
    assert on_disk == sorted([m.up.name for m in MIGRATIONS] + [m.down.name for m in MIGRATIONS])


@pytest.mark.parametrize(
    "path", [p for m in MIGRATIONS for p in (m.up, m.down)], ids=lambda p: p.name
)
def test_file_has_header_and_sets_lock_timeout_first(path: Path):
    lines = path.read_text().splitlines()
    where = rel(path)
    assert re.match(r"^-- \S.{10,}$", lines[0]), (
        f"{where}:1: start with a one-line '-- ' comment saying what the migration does"
    )
    page = lines[1].removeprefix("-- page: ")
    assert lines[1].startswith("-- page: ") and (DOCS / page).is_file(), (
        f"{where}:2: the second line must be '-- page: <the docs/ page that shows it>'"
    )
    assert lines[2] == "-- mode: writes", f"{where}:3: the third line must be '-- mode: writes'"
    statements = [
        (n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("--")
    ]
    number, first = statements[0]
    assert first == "SET lock_timeout = '5s';", (
        f"{where}:{number}: the first statement must be SET lock_timeout = '5s'; (the "
        "deployment runbook relies on every migration giving up on a busy table)"
    )
    body = [line.strip().upper() for _, line in statements]
    assert body[1] == "BEGIN;" and body[-1] == "COMMIT;", (
        f"{where}: wrap the statements in BEGIN; ... COMMIT; so a failure changes nothing"
    )


def _pair(directory: Path, stem: str, up: str = "SELECT 1;\n", down: str = "SELECT 1;\n"):
    (directory / f"{stem}.up.sql").write_text(up)
    (directory / f"{stem}.down.sql").write_text(down)


def test_discover_rejects_a_bad_name_naming_the_file(tmp_path: Path):
    _pair(tmp_path, "0001_create_things")
    (tmp_path / "create_more_things.sql").write_text("SELECT 1;\n")
    with pytest.raises(mig.MigrationError) as error:
        mig.discover(tmp_path)
    assert f"{tmp_path}/create_more_things.sql: not a golang-migrate migration file name" in str(
        error.value
    )
    assert "NNNN_name.up.sql" in str(error.value)


def test_discover_rejects_a_missing_pair_naming_the_file_to_add(tmp_path: Path):
    _pair(tmp_path, "0001_create_things")
    (tmp_path / "0002_add_column.up.sql").write_text("SELECT 1;\n")
    with pytest.raises(mig.MigrationError) as error:
        mig.discover(tmp_path)
    assert (
        f"{tmp_path}/0002_add_column.up.sql: has no down migration; add 0002_add_column.down.sql"
    ) in str(error.value)


def test_discover_rejects_two_names_for_one_version(tmp_path: Path):
    _pair(tmp_path, "0001_create_things")
    _pair(tmp_path, "0001_create_other_things")
    with pytest.raises(mig.MigrationError, match="version 1 is already used by"):
        mig.discover(tmp_path)


# -- applying and rolling back, as golang-migrate records it ----------------------------------


def test_apply_all_on_an_empty_database_records_golang_migrate_state(db):
    assert mig.state(db) == mig.State(None, False)
    applied = mig.apply(db, MIGRATIONS)
    assert applied == MIGRATIONS
    last = MIGRATIONS[-1].version
    assert mig.state(db) == mig.State(last, False)
    assert _query(db, "SELECT version, dirty FROM schema_migrations") == f"{last}|f"
    columns = _query(
        db,
        "SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', ' "
        "ORDER BY ordinal_position) FROM information_schema.columns "
        "WHERE table_name = 'schema_migrations'",
    )
    assert columns == "version bigint NO, dirty boolean NO"
    key = _query(
        db,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'schema_migrations'::regclass AND contype = 'p'",
    )
    assert key == "PRIMARY KEY (version)"
    tables = _query(
        db,
        "SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class "
        "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
    )
    assert tables.split() == sorted(
        ["schema_migrations", "users", "sessions", "login_attempts", "products", "warehouses",
         "inventory", "orders", "order_items"]
    )  # fmt: skip
    assert mig.apply(db, MIGRATIONS) == []  # already there: nothing to do


def test_apply_stops_at_a_target_and_continues_from_it(db):
    assert [m.version for m in mig.apply(db, MIGRATIONS, target=2)] == [1, 2]
    assert mig.state(db) == mig.State(2, False)
    assert [m.version for m in mig.apply(db, MIGRATIONS)] == [m.version for m in MIGRATIONS[2:]]


def test_rollback_one_at_a_time_down_to_no_version(db):
    mig.apply(db, MIGRATIONS)
    for migration in reversed(MIGRATIONS):
        assert mig.rollback_one(db, MIGRATIONS) == migration
        previous = migration.version - 1 or None
        assert mig.state(db) == mig.State(previous, False)
    # golang-migrate leaves the table empty at "no version", with nothing else behind
    assert _query(db, "SELECT count(*) FROM schema_migrations") == "0"
    left = _query(
        db,
        "SELECT string_agg(relname, ' ') FROM pg_class c "
        "WHERE relnamespace = 'public'::regnamespace "
        "AND relname NOT IN ('schema_migrations', 'schema_migrations_pkey') "
        # objects of extensions the server provides (pg_stat_statements) are not the schema's
        "AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype = 'e')",
    )
    assert left == "", f"left behind after rolling everything back: {left}"
    with pytest.raises(mig.MigrationError, match="nothing to roll back"):
        mig.rollback_one(db, MIGRATIONS)


@pytest.fixture(scope="module")
def chain(pg: PG):
    """One database per server that test_reversibility takes through the migrations in
    order: each check starts where the one before left it, at its predecessor, instead of
    applying every predecessor again on an empty database."""
    env = _database(pg)
    yield env
    pg.psql(f"DROP DATABASE {env['PGDATABASE']} WITH (FORCE)")


@pytest.mark.parametrize("migration", MIGRATIONS, ids=lambda m: m.filename)
def test_reversibility(chain, migration, pg_server, request):
    """Up, down, up of each migration on top of its predecessors (mig.reversibility)."""
    earlier = [m.version for m in MIGRATIONS if m.version < migration.version]
    db = chain
    if mig.state(chain) != mig.State(earlier[-1] if earlier else None, False):
        # run alone (-k), or after a check that failed: a database of its own, which
        # reversibility brings to the predecessor itself
        db = request.getfixturevalue("db")
    result = mig.reversibility(db, migration, MIGRATIONS)
    # The pages that show the migration say where this ran (build/verification.json).
    for path in (migration.up, migration.down):
        request.config.stash[REPORT].add(
            Entry(rel(path), pg_server.label, "passed" if result else "failed",
                  server=pg_server.describe(), provider=pg_server.provider,
                  reason="" if result else result.report()[:500])
        )  # fmt: skip
    assert result, result.report()
    assert mig.state(db) == mig.State(migration.version, False)


def test_reversibility_reports_a_down_that_leaves_something_behind(db, tmp_path: Path):
    for m in MIGRATIONS[:1]:
        shutil.copy(m.up, tmp_path)
        shutil.copy(m.down, tmp_path)
    _pair(tmp_path, "0002_add_index",
          up="CREATE INDEX users_created_at_idx ON users (created_at);\n"
             "CREATE INDEX users_updated_at_idx ON users (updated_at);\n",
          down="DROP INDEX users_created_at_idx;\n")  # fmt: skip
    migrations = mig.discover(tmp_path)
    result = mig.reversibility(db, migrations[1], migrations)
    assert not result
    report = result.report()
    assert report.startswith(
        f"{tmp_path}/0002_add_index.down.sql: does not exactly reverse "
        f"{tmp_path}/0002_add_index.up.sql"
    )
    assert "+CREATE INDEX users_updated_at_idx ON public.users USING btree (updated_at);" in report
    # ... and the second up then trips over what the down left behind, naming file and line
    assert (
        f"{tmp_path}/0002_add_index.up.sql failed when run again after "
        f"{tmp_path}/0002_add_index.down.sql:\n"
        f"{tmp_path}/0002_add_index.up.sql:2: ERROR: "
        'relation "users_updated_at_idx" already exists'
    ) in report


BROKEN_UP = """\
-- Add a column whose type does not exist (a deliberately broken migration).
-- page: runbooks/deployment.md
-- mode: writes

SET lock_timeout = '5s';

BEGIN;

CREATE TABLE audit_log (id bigint PRIMARY KEY);
ALTER TABLE users
    ADD COLUMN nickname text,
    ADD COLUMN mood no_such_type;

COMMIT;
"""


def _with_broken(tmp_path: Path, up: str = BROKEN_UP, down: str = "SELECT 1;\n") -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for m in MIGRATIONS:
        shutil.copy(m.up, directory)
        shutil.copy(m.down, directory)
    _pair(directory, f"{len(MIGRATIONS) + 1:04d}_broken", up=up, down=down)
    return directory


def test_broken_migration_leaves_it_dirty_and_names_file_and_line(db, tmp_path: Path):
    directory = _with_broken(tmp_path)
    migrations = mig.discover(directory)
    broken, last_good = migrations[-1], migrations[-2].version
    with pytest.raises(mig.MigrationError) as error:
        mig.apply(db, migrations)
    message = str(error.value)
    # line 12 holds the bad type; psql itself reports line 12 too (where the statement ends)
    assert message.startswith(f'{broken.up}:12: ERROR: type "no_such_type" does not exist'), message
    assert (error.value.file, error.value.line) == (broken.up, 12)
    assert f"force {last_good}`" in message and f"force(env, {last_good})" in message
    assert "so it changed nothing" in message
    assert mig.state(db) == mig.State(broken.version, True)
    assert _query(db, "SELECT to_regclass('audit_log') IS NULL") == "t"  # rolled back
    # Like golang-migrate, nothing runs on a dirty database until a person forces a version.
    with pytest.raises(mig.DirtyDatabaseError, match=f"Dirty database version {broken.version}"):
        mig.apply(db, migrations)
    mig.force(db, last_good)
    assert mig.state(db) == mig.State(last_good, False)
    broken.up.write_text(BROKEN_UP.replace("no_such_type", "text"))
    assert mig.apply(db, migrations) == [broken]
    assert mig.state(db) == mig.State(broken.version, False)


def test_broken_line_is_found_inside_a_multi_line_statement(db, tmp_path: Path):
    up = BROKEN_UP.replace("ADD COLUMN mood no_such_type;", "ADD COLUMN mood no_such_type,\n"
                           "    ADD COLUMN shoe_size integer;")  # fmt: skip
    directory = _with_broken(tmp_path, up=up)
    with pytest.raises(mig.MigrationError) as error:
        mig.apply(db, mig.discover(directory))
    assert str(error.value).startswith(
        f"{directory}/{len(MIGRATIONS) + 1:04d}_broken.up.sql:12: ERROR: "
        'type "no_such_type" does not exist '
        "(the statement ends at line 13)"
    ), error.value


def test_failed_down_leaves_the_previous_version_dirty(db, tmp_path: Path):
    directory = _with_broken(
        tmp_path, up=BROKEN_UP.replace("no_such_type", "text"), down="DROP TABLE no_such_table;\n"
    )
    migrations = mig.discover(directory)
    mig.apply(db, migrations)
    with pytest.raises(mig.MigrationError) as error:
        mig.rollback_one(db, migrations)
    assert str(error.value).startswith(
        f'{migrations[-1].down}:1: ERROR: table "no_such_table" does not exist'
    )
    assert "does not run in one transaction" in str(error.value)
    # golang-migrate marks the version it was going down to as dirty
    assert mig.state(db) == mig.State(migrations[-2].version, True)


def test_a_concurrent_run_holding_golang_migrates_lock_stops_apply(db):
    key = mig.lock_id(db["PGDATABASE"], "public")
    holder = subprocess.Popen(
        ["psql", "-X", "-q", "-At"], env=db, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        holder.stdin.write(f"SELECT pg_advisory_lock({key}), 'held';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "|held"
        with pytest.raises(mig.MigrationError, match=f"advisory lock {key}"):
            mig.apply(db, MIGRATIONS)
        assert mig.state(db) == mig.State(None, False)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
        holder.stderr.close()
    assert mig.apply(db, MIGRATIONS) == MIGRATIONS


def test_lock_id_matches_golang_migrate():
    # crc32("/erpgo\x00public\x00schema_migrations") * 1486364155 mod 2**32, as
    # golang-migrate's database.GenerateAdvisoryLockId computes it for the CLI's URL path
    assert (
        mig.lock_id("erpgo")
        == (zlib.crc32(b"/erpgo\x00public\x00schema_migrations") * 1486364155) % 2**32
    )


def test_schema_dump_drops_what_varies_between_runs(db):
    mig.apply(db, MIGRATIONS[:1])
    dump = mig.schema_dump(db)
    assert "CREATE TABLE public.users (" in dump
    for volatile in ("\\restrict", "\\unrestrict", "-- Dumped", "SET ", "set_config"):
        assert volatile not in dump


# -- seed data -----------------------------------------------------------------------------


SEED_FACTS = """
SELECT json_build_object(
  'reasons', (SELECT string_agg(DISTINCT reason, ',' ORDER BY reason) FROM login_attempts),
  'failure_share', (SELECT round(avg((NOT success)::int), 3) FROM login_attempts),
  'distinct_ips', (SELECT count(DISTINCT ip) FROM login_attempts),
  'max_failed_per_minute', (SELECT max(n) FROM (SELECT count(*) AS n FROM login_attempts
      WHERE NOT success GROUP BY date_trunc('minute', attempted_at)) AS m),
  'unknown_with_user', (SELECT count(*) FROM login_attempts
      WHERE reason = 'unknown_user' AND user_id IS NOT NULL),
  'locked_users', (SELECT count(*) FROM users WHERE locked_until > :'anchor'::timestamptz),
  'live_sessions', (SELECT count(*) FROM sessions WHERE expires_at > :'anchor'::timestamptz),
  'negative_stock', (SELECT count(*) FROM inventory WHERE quantity < 0),
  'wrong_totals', (SELECT count(*) FROM orders o WHERE total <> (SELECT sum(quantity * unit_price)
      FROM order_items i WHERE i.order_id = o.id)),
  'newest', (SELECT max(attempted_at) <= :'anchor'::timestamptz
                    AND max(attempted_at) > :'anchor'::timestamptz - interval '5 minutes'
             FROM login_attempts)
)
"""


def _facts(env: dict[str, str], anchor: str) -> dict:
    result = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-v", f"anchor={anchor}", "-f", "-"],
        input=SEED_FACTS, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_seed_small_is_deterministic_and_has_the_expected_shape(pg, monkeypatch):
    monkeypatch.delenv("HANDBOOK_SCALE", raising=False)
    sums = []
    for _ in range(2):
        env = _database(pg)
        try:
            mig.apply(env, MIGRATIONS)
            before = mig.schema_dump(env)
            result = sd.seed(env, anchor=ANCHOR)
            assert result.scale == sd.SCALES["small"]
            assert sd.counts(env) == sd.expected_counts(result.scale)
            assert mig.schema_dump(env) == before, "seeding must leave the schema as it was"
            sums.append(sd.checksums(env))
            facts = _facts(env, ANCHOR)
        finally:
            pg.psql(f"DROP DATABASE {env['PGDATABASE']} WITH (FORCE)")
    assert sums[0] == sums[1]
    assert facts["reasons"] == "bad_password,locked,unknown_user"
    assert 0.01 < facts["failure_share"] < 0.05
    assert facts["distinct_ips"] > 150
    assert facts["max_failed_per_minute"] < 10  # below HighFailedLoginRate on its own
    assert facts["unknown_with_user"] == 0
    assert facts["locked_users"] == sd.SCALES["small"].locked_users
    assert 0 < facts["live_sessions"] < sd.SCALES["small"].sessions
    assert facts["negative_stock"] == facts["wrong_totals"] == 0
    assert facts["newest"] is True


def test_seed_defaults_to_now_and_reads_the_scale_from_env(db):
    mig.apply(db, MIGRATIONS)
    result = sd.seed({**db, "HANDBOOK_SCALE": "small"})
    assert result.scale.name == "small"
    now = _query(db, "SELECT date_trunc('minute', now())::text")
    assert _query(db, f"SELECT '{result.anchor}'::timestamptz <= '{now}'::timestamptz "
                      f"AND '{result.anchor}'::timestamptz > '{now}'::timestamptz - "
                      "interval '2 minutes'") == "t"  # fmt: skip
    facts = _facts(db, result.anchor)
    assert facts["newest"] is True  # "the last few minutes" queries find normal traffic


def test_seed_refuses_a_database_that_already_has_data(db):
    mig.apply(db, MIGRATIONS)
    sd.seed(db, "small", anchor=ANCHOR)
    with pytest.raises(mig.MigrationError, match="already holds ERPGo data"):
        sd.seed(db, "small", anchor=ANCHOR)


def test_seed_refuses_an_unmigrated_database_naming_the_line(db):
    with pytest.raises(sd.SeedError) as error:
        sd.seed(db, "small")
    message = str(error.value)
    assert "ERROR:  the ERPGo schema is missing" in message
    assert "apply snippets/migrations first" in message
    where = re.search(r"^handbook/schema/seed\.py:(\d+): ERROR:", message, re.MULTILINE)
    assert where, message
    line = Path(sd.__file__).read_text().splitlines()[int(where[1]) - 1]
    assert line == "$check$;", f"{where[0]} points at {line!r}"


def test_unknown_scale_names_the_choices():
    with pytest.raises(ValueError, match="use one of: small, production"):
        sd.scale_from_env({"HANDBOOK_SCALE": "huge"})


@pytest.mark.skipif(
    os.environ.get("HANDBOOK_SCALE") != "production",
    reason="production-scale seed runs only with HANDBOOK_SCALE=production (about 20 s each)",
)
def test_seed_production_scale_has_the_promised_size(db):
    # Load time is a benchmark figure (python -m handbook.benchmark), never a test assertion.
    mig.apply(db, MIGRATIONS)
    result = sd.seed(db)
    assert result.scale.name == "production"
    counts = sd.counts(db)
    assert counts == sd.expected_counts(result.scale)
    assert counts["login_attempts"] >= 1_000_000 and counts["sessions"] >= 200
