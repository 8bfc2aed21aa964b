"""Integration test: the real schema on a real PostgreSQL server from the test harness.

``pg_server`` runs the test once per PostgreSQL version the harness has (15 and 18
here); the test makes a database of its own and drops it, whatever happens.
"""

import subprocess
import uuid

import pytest

from handbook.schema import migrations
from handbook.schema.databases import psql


@pytest.fixture
def database(pg_server):
    name = f"example_{uuid.uuid4().hex[:8]}"
    psql(pg_server, f"CREATE DATABASE {name}")
    try:
        yield pg_server.env("admin") | {"PGDATABASE": name}
    finally:
        psql(pg_server, f"DROP DATABASE {name} WITH (FORCE)")


def test_users_emails_are_stored_in_lowercase_only(database):
    migrations.apply(database, migrations.discover())
    insert = (
        "INSERT INTO users (email, username, password_hash) VALUES ('Ada@Example.com', 'ada', 'x')"
    )
    result = subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", insert],
        env=database,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "users_email_lowercase_check" in result.stderr
