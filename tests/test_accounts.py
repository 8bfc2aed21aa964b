"""One source for roles, users and grants: conf/ defines them, the test servers load them.

conf/postgresql/roles.sql creates every PostgreSQL role the pages use and pg_hba.conf
admits each one that logs in; conf/redis/users.acl defines every Redis user. The test
servers get exactly these (with passwords made up per server) and nothing of the
harness's own; each snippet names the user it runs as, and that user must be one of
them (read-only snippets: one that can change nothing).
"""

from __future__ import annotations

import re
import subprocess

import pytest

from handbook import snippet as snippets
from handbook.paths import ROOT, SNIPPETS, rel
from handbook.servers import accounts
from handbook.servers.base import Server

# Code that sets up servers and runs snippets: it may hold no role, grant or ACL rule.
HARNESS = [
    ROOT / "handbook" / "servers",
    ROOT / "handbook" / "schema",
    ROOT / "handbook" / "runners",
    ROOT / "handbook" / "drills",
    ROOT / "handbook" / "pytest_plugin.py",
]
# Known exceptions, each with its reason: (file, text on the line) -> why.
EXCEPTIONS: dict[tuple[str, str], str] = {}
GRANTING = re.compile(
    r"CREATE (ROLE|USER)\b|\bGRANT\s+\w|\bREVOKE\s+\w|ALTER DEFAULT PRIVILEGES|"
    r"ACL\W+SETUSER|[\"']user \w+ on\b|\bpg_read_all_data\b|\bpg_monitor\b",
    re.IGNORECASE,
)


def server_snippets() -> list[snippets.Snippet]:
    found = []
    for path in sorted(SNIPPETS.rglob("*")):
        if path.suffix in snippets.KINDS and path.parent.name != "migrations":
            snippet = snippets.parse(path)
            if snippet.servers_needed():
                found.append(snippet)
    return found


# -- static ------------------------------------------------------------------------------


def test_every_login_role_of_roles_sql_is_admitted_by_pg_hba():
    named = accounts.hba_users()
    roles = accounts.pg_roles()
    problems = []
    for name in accounts.pg_login_roles():
        groups = [g for g in roles[name].member_of if g in named]
        if name not in named and not groups:
            problems.append(
                f"{rel(accounts.ROLES_SQL)}:{roles[name].line}: {name} can log in, but no rule "
                f"of {rel(accounts.PG_HBA)} names it (or a group it is in): add a hostssl line "
                "for where it connects from, or make it NOLOGIN"
            )
    assert not problems, "\n".join(problems)


def test_pg_hba_names_no_role_that_roles_sql_does_not_create():
    created = set(accounts.pg_roles()) | {accounts.PG_SUPERUSER, "all"}
    stray = {u: line for u, line in accounts.hba_users().items() if u not in created}
    assert not stray, "\n".join(
        f"{rel(accounts.PG_HBA)}:{line}: {user} is not a role of {rel(accounts.ROLES_SQL)}: "
        "create it there, or remove the rule"
        for user, line in stray.items()
    )


def test_every_snippet_names_a_user_conf_defines():
    problems = []
    for snippet in server_snippets():
        for problem in accounts.user_problems(snippet.servers_needed(), snippet.user, snippet.mode):
            line = snippet.header.get("user", snippet.body_start)
            problems.append(f"{snippet.name}:{line}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("kinds", "value", "mode", "expected"),
    [
        (["pg"], None, "read-only", "no 'user:' header"),
        (["pg"], "handbook_monitor", "read-only", "is not a PostgreSQL role that can log in"),
        (["redis"], "default", "read-only", "is not a Redis user"),
        (["pg"], "postgres", "read-only", "postgres can write"),
        (["redis"], "erpgo_admin", "read-only", "erpgo_admin can write"),
        (["pg", "redis"], "pg=erpgo_monitor", "read-only", "no user for redis"),
        (["pg"], "pg=erpgo_monitor redis=erpgo_admin", "writes", "does not need"),
        (["pg"], "erpgo_monitor", "read-only", None),
        (["pg", "redis"], "pg=erpgo_monitor, redis=erpgo_admin", "writes", None),
    ],
)
def test_a_wrong_user_header_is_named(kinds, value, mode, expected):
    problems = accounts.user_problems(kinds, value, mode)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_the_harness_holds_no_role_grant_or_acl_of_its_own():
    found = []
    for place in HARNESS:
        files = [place] if place.is_file() else sorted(place.rglob("*.py"))
        for path in files:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                excepted = any(rel(path) == where and text in line for where, text in EXCEPTIONS)
                if GRANTING.search(line.split("#", 1)[0]) and not excepted:
                    found.append(f"{rel(path)}:{number}: {line.strip()}")
    assert not found, (
        "roles, grants and ACL users belong in conf/postgresql/roles.sql and "
        "conf/redis/users.acl, which every test server loads; the harness defines none:\n"
        + "\n".join(found)
    )


# -- on real servers ------------------------------------------------------------------------


def psql(server: Server, sql: str, role: str = "admin", database: str = "postgres") -> str:
    result = subprocess.run(
        ["psql", "-X", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=server.env(role) | {"PGDATABASE": database},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


ROLES_QUERY = """
SELECT r.rolname, r.rolcanlogin,
       coalesce((SELECT string_agg(c, ',' ORDER BY c)
                   FROM pg_db_role_setting AS s, unnest(s.setconfig) AS c
                  WHERE s.setrole = r.oid AND s.setdatabase = 0), ''),
       coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
                   FROM pg_auth_members AS m JOIN pg_roles AS g ON g.oid = m.roleid
                  WHERE m.member = r.oid), '')
  FROM pg_roles AS r
 WHERE r.rolname !~ '^pg_' AND r.rolname <> 'postgres'
 ORDER BY 1
"""


def test_pg_server_has_the_roles_of_roles_sql_and_no_other(pg_server):
    expected = {}
    for name, role in accounts.pg_roles().items():
        settings = ",".join(sorted(f"{k}={v}" for k, v in role.settings.items()))
        expected[name] = (role.login, settings, ",".join(sorted(role.member_of)))
    actual = {}
    for line in psql(pg_server, ROLES_QUERY).splitlines():
        name, login, settings, groups = line.split("|")
        actual[name] = (login == "t", settings, groups)
    assert actual == expected, (
        f"{pg_server.label} has other roles than {rel(accounts.ROLES_SQL)} defines "
        f"(name: (login, settings, member of)):\nserver: {actual}\nfile:   {expected}"
    )
    # Every LOGIN role can log in with the password the server made up for it.
    for name in accounts.pg_login_roles():
        if name != "replicator":  # the replication protocol only: pg_basebackup uses it
            assert psql(pg_server, "SELECT current_user", name).strip() == name


def test_pg_migration_owner_owns_the_schema_and_the_application_may_use_it(pg_server, request):
    from handbook.pytest_plugin import DATABASES
    from handbook.schema.databases import SHARED

    request.config.stash[DATABASES].ensure(pg_server)
    owners = psql(
        pg_server,
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname IN ('public', 'ops')",
        database=SHARED,
    )
    assert owners.split() == ["erpgo_migrate"], owners
    app = pg_server.env("erpgo_app_blue") | {"PGDATABASE": SHARED}
    result = subprocess.run(
        ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c",
         "BEGIN; UPDATE products SET name = name WHERE id = 1; ROLLBACK;",
         "-c", "CREATE TABLE app_made(x int)"],
        env=app, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "ROLLBACK" in result.stdout, result.stderr
    assert "permission denied for schema public" in result.stderr, result.stderr


def test_redis_server_has_the_users_of_users_acl_and_no_other(redis_server):
    result = subprocess.run(
        ["redis-cli", "--no-auth-warning", "-u", redis_server.env("admin")["REDIS_URL"], "ACL",
         "LIST"],
        env=redis_server.env("admin"), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    loaded = {}
    for line in result.stdout.splitlines():
        words = line.split()
        loaded[words[1]] = "on" in words[2:]
    expected = {name: user.enabled for name, user in accounts.redis_users().items()}
    assert loaded == expected, (
        f"{redis_server.label} has other ACL users than {rel(accounts.USERS_ACL)} defines:\n"
        f"server: {loaded}\nfile:   {expected}\n{result.stderr}"
    )
