"""Who a client connects as: the accounts production defines, loaded into every test server.

PostgreSQL roles come from ``conf/postgresql/roles.sql`` (admitted by
``conf/postgresql/pg_hba.conf``), Redis users from ``conf/redis/users.acl``. Test servers
get exactly these, and nothing of the harness's own: ``pg_script()`` is roles.sql (run in
``postgres`` when a server starts, and in each ERPGo database before it is migrated)
followed by a password made up per server for each LOGIN role, sent as a SCRAM verifier;
``redis_acl()`` is users.acl with a made-up password for each ``${NAME}`` placeholder.

The harness itself connects as the accounts production's administrators use:
``postgres`` (initdb's bootstrap superuser; pg_hba.conf admits it) and ``erpgo_admin``
(users.acl). Snippets run as the user their ``user:`` header names; ``user_problems()``
checks that header against these files, and ``read_only()`` says whether an account can
change nothing (what a ``mode: read-only`` snippet must run as).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import quote

from handbook.paths import CONF, rel

ROLES_SQL = CONF / "postgresql" / "roles.sql"
PG_HBA = CONF / "postgresql" / "pg_hba.conf"
USERS_ACL = CONF / "redis" / "users.acl"
PG_SUPERUSER = "postgres"  # made by initdb; pg_hba.conf admits it on the local socket
REDIS_ADMIN = "erpgo_admin"  # users.acl: every command, every key
MONITOR = "erpgo_monitor"  # the runbooks' diagnostics, in PostgreSQL and in Redis
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
KINDS = ("pg", "redis")
# Redis commands that read or introspect and change nothing: a user granted only these
# (after -@all) is read-only. @read is every command that reads keys.
READS = frozenset({
    "@read", "ping", "echo", "hello", "select", "auth", "info", "dbsize", "time", "lastsave",
    "role", "command", "config|get", "client|list", "client|info", "client|id",
    "client|getname", "acl|whoami", "slowlog|get", "slowlog|len", "latency|latest",
    "latency|history", "latency|doctor", "memory|stats", "memory|usage", "memory|doctor",
    "scan", "type", "ttl", "pttl", "exists", "object", "get",
})  # fmt: skip


class AccountError(ValueError):
    """An account file or a ``user:`` header is wrong; the message names file and line."""


# ---------------------------------------------------------------------------
# conf/postgresql/roles.sql


@dataclass
class PgRole:
    name: str
    line: int  # its ALTER ROLE ... LOGIN/NOLOGIN line (else where it is created)
    login: bool = False
    settings: dict[str, str] = field(default_factory=dict)  # ALTER ROLE ... SET
    member_of: list[str] = field(default_factory=list)  # GRANT x TO name

    @property
    def read_only(self) -> bool:
        """Every transaction read-only (the role's own setting), and no superuser."""
        return self.settings.get("default_transaction_read_only", "").lower() in ("on", "true")


def _without_comments(text: str) -> str:
    """roles.sql with ``--`` comments blanked, line numbers kept (it has none in strings)."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@cache
def _pg_roles(path: Path, mtime: float) -> dict[str, PgRole]:
    text = _without_comments(path.read_text(encoding="utf-8"))
    where = rel(path)
    created = re.search(r"ARRAY\s*\[(?P<names>[^\]]*)\]", text)
    if not created:
        raise AccountError(
            f"{where}:1: no ARRAY['role', ...] of roles to create: keep the DO block that "
            "creates every role roles.sql configures"
        )
    roles: dict[str, PgRole] = {}
    for match in re.finditer(r"'([a-z_][a-z0-9_]*)'", created["names"]):
        name = match.group(1)
        roles[name] = PgRole(name, _line_of(text, created.start("names") + match.start()))
    statements = re.finditer(r"(?P<stmt>(?:ALTER ROLE|GRANT)\b[^;]*);", text, re.S)
    for found in statements:
        stmt = " ".join(found["stmt"].split())
        line = _line_of(text, found.start())
        if match := re.fullmatch(r"ALTER ROLE (\w+) SET (\w+) = '?([^']*)'?", stmt):
            role, key, value = match.groups()
            _known(roles, role, where, line).settings[key] = value
        elif match := re.fullmatch(r"ALTER ROLE (\w+) (.*)", stmt):
            words = match.group(2).split()
            role = _known(roles, match.group(1), where, line)
            role.login = "LOGIN" in words or (role.login and "NOLOGIN" not in words)
            role.line = line  # its attributes: what a message about the role points at
        elif match := re.fullmatch(r"GRANT (\w+(?:, \w+)*) TO (\w+(?:, \w+)*)", stmt):
            for grantee in (g.strip() for g in match.group(2).split(",")):
                _known(roles, grantee, where, line).member_of += [
                    g.strip() for g in match.group(1).split(",")
                ]
    return roles


def _known(roles: dict[str, PgRole], name: str, where: str, line: int) -> PgRole:
    if name not in roles:
        raise AccountError(
            f"{where}:{line}: role {name} is configured but not created: add it to the "
            "ARRAY of the DO block at the top"
        )
    return roles[name]


def pg_roles(path: Path = ROLES_SQL) -> dict[str, PgRole]:
    """The roles roles.sql creates, with their LOGIN attribute, settings and memberships."""
    return _pg_roles(path, path.stat().st_mtime)


def pg_login_roles(path: Path = ROLES_SQL) -> list[str]:
    return [name for name, role in pg_roles(path).items() if role.login]


def hba_users(path: Path = PG_HBA) -> dict[str, int]:
    """Users pg_hba.conf names (``+group`` as the group's name), with their first line."""
    found: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 4:
            for user in fields[2].split(","):
                found.setdefault(user.lstrip("+"), number)
    return found


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password``.

    ``ALTER ROLE ... PASSWORD '<verifier>'`` keeps the password itself out of the server's
    logs and out of pg_stat_statements (what psql's ``\\password`` does too).
    """
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def pg_passwords(path: Path = ROLES_SQL) -> dict[str, str]:
    """A fresh password for every LOGIN role of roles.sql."""
    return {name: secrets.token_hex(16) for name in pg_login_roles(path)}


def pg_script(passwords: Mapping[str, str], path: Path = ROLES_SQL) -> str:
    """psql input, run as the superuser in ``postgres``: roles.sql, then the passwords (as
    SCRAM verifiers). An ERPGo database gets roles.sql's grants when it is built
    (``schema.databases``), as production runs the file in its database."""
    text = path.read_text(encoding="utf-8")
    unknown = sorted(set(passwords) - set(pg_login_roles(path)))
    if unknown:
        raise AccountError(f"{rel(path)}: no LOGIN role {', '.join(unknown)} to set a password for")
    lines = [text]
    lines += [
        f"ALTER ROLE {name} PASSWORD '{scram_verifier(password)}';"
        for name, password in passwords.items()
    ]
    return "\n".join(lines) + "\n"


def pg_env(common: Mapping[str, str], user: str, password: str) -> dict[str, str]:
    """The PG* variables a reader sets for ``user`` (the password as ``PGPASSWORD``)."""
    return {**common, "PGUSER": user, "PGPASSWORD": password}


# ---------------------------------------------------------------------------
# conf/redis/users.acl


@dataclass(frozen=True)
class RedisUser:
    name: str
    line: int
    enabled: bool
    rules: tuple[str, ...]  # everything after the name, placeholders unrendered
    placeholders: tuple[str, ...]  # the ${NAME} secrets its passwords come from

    @property
    def read_only(self) -> bool:
        """Denied everything (``-@all``) but commands that change nothing (``READS``)."""
        grants = [r[1:].lower() for r in self.rules if r.startswith("+")]
        return (
            "-@all" in self.rules
            and "allcommands" not in self.rules
            and all(g in READS for g in grants)
        )


@cache
def _redis_users(path: Path, mtime: float) -> dict[str, RedisUser]:
    users = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if words[0] != "user" or len(words) < 3:
            raise AccountError(
                f"{rel(path)}:{number}: every line of an ACL file is `user NAME RULES...` "
                "(ACL files take no comments)"
            )
        rules = tuple(words[2:])
        users[words[1]] = RedisUser(
            words[1],
            number,
            "on" in rules and "off" not in rules,
            rules,
            tuple(PLACEHOLDER.findall(line)),
        )
    return users


def redis_users(path: Path = USERS_ACL) -> dict[str, RedisUser]:
    return _redis_users(path, path.stat().st_mtime)


def redis_passwords(path: Path = USERS_ACL) -> dict[str, str]:
    """A fresh value for every ``${NAME}`` placeholder of users.acl."""
    names = PLACEHOLDER.findall(path.read_text(encoding="utf-8"))
    return {name: secrets.token_hex(16) for name in dict.fromkeys(names)}


def redis_user_passwords(secrets_: Mapping[str, str], path: Path = USERS_ACL) -> dict[str, str]:
    """{user: password} for the enabled users, from the placeholder values."""
    return {
        user.name: secrets_[user.placeholders[0]]
        for user in redis_users(path).values()
        if user.enabled and user.placeholders
    }


def redis_acl(secrets_: Mapping[str, str], path: Path = USERS_ACL) -> str:
    """users.acl with its placeholders filled in (what envsubst does at deploy time)."""
    return render(path, secrets_)


def render(path: Path, secrets_: Mapping[str, str]) -> str:
    """A conf/ template with its ``${NAME}`` placeholders filled in, as envsubst does."""
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        for name in PLACEHOLDER.findall(line):
            if name not in secrets_:
                raise AccountError(f"{rel(path)}:{number}: no value for the secret ${{{name}}}")
    return PLACEHOLDER.sub(lambda m: secrets_[m.group(1)], text)


def redis_env(address: str, user: str, password: str) -> dict[str, str]:
    """``REDIS_URL=redis://user:password@host:port/0`` and ``REDISCLI_AUTH``.

    The URL carries the user *and* the password: redis-cli reads ``redis://name@host`` as
    a password, and a password in the URL wins over ``REDISCLI_AUTH``.
    """
    return {
        "REDIS_URL": f"redis://{quote(user, safe='')}:{quote(password, safe='')}@{address}/0",
        "REDISCLI_AUTH": password,
    }


# ---------------------------------------------------------------------------
# Who a snippet runs as


def known(kind: str) -> dict[str, str]:
    """{user: where conf/ defines it} for a server kind."""
    if kind == "pg":
        roles = {n: f"{rel(ROLES_SQL)}:{r.line}" for n, r in pg_roles().items() if r.login}
        hba = hba_users()
        if PG_SUPERUSER in hba:
            roles[PG_SUPERUSER] = f"{rel(PG_HBA)}:{hba[PG_SUPERUSER]}"
        return roles
    return {n: f"{rel(USERS_ACL)}:{u.line}" for n, u in redis_users().items() if u.enabled}


def read_only(kind: str, user: str) -> bool:
    if kind == "pg":
        role = pg_roles().get(user)
        return role is not None and role.read_only
    account = redis_users().get(user)
    return account is not None and account.read_only


def users_for(kinds: Iterable[str], value: str) -> dict[str, str]:
    """A ``user:`` header value as {kind: user}.

    ``erpgo_monitor`` names the same user on every server the snippet needs;
    ``pg=erpgo_monitor, redis=erpgo_admin`` names one per kind.
    """
    kinds = list(kinds)
    parts = [p.strip() for p in re.split(r"[,\s]+", value) if p.strip()]
    if len(parts) == 1 and "=" not in parts[0]:
        return dict.fromkeys(kinds, parts[0])
    chosen = {}
    for part in parts:
        kind, sep, name = part.partition("=")
        if not sep or kind not in KINDS or not name:
            raise AccountError(
                f"cannot read {part!r}: write one user (user: erpgo_monitor) or one per "
                "server (user: pg=erpgo_monitor, redis=erpgo_admin)"
            )
        chosen[kind] = name
    return chosen


def user_problems(kinds: Iterable[str], value: str | None, mode: str) -> list[str]:
    """What is wrong with a snippet's ``user:`` header (empty when nothing is)."""
    kinds = list(kinds)
    if not kinds:
        return []
    if not value:
        example = "erpgo_monitor" if mode == "read-only" else "postgres"
        return [
            f"no 'user:' header: name the account the page tells the reader to use "
            f"(e.g. '{example}'), one of those conf/ defines"
        ]
    try:
        chosen = users_for(kinds, value)
    except AccountError as exc:
        return [str(exc)]
    problems = []
    for kind in kinds:
        name = chosen.get(kind)
        source = rel(ROLES_SQL) if kind == "pg" else rel(USERS_ACL)
        defined = known(kind)
        if name is None:
            problems.append(f"no user for {kind}: add {kind}=<user> ({', '.join(defined)})")
        elif name not in defined:
            problems.append(
                f"{name} is not a {'PostgreSQL role' if kind == 'pg' else 'Redis user'} "
                f"that can log in in {source}: use one of {', '.join(defined)}, or define it there"
            )
        elif mode == "read-only" and not read_only(kind, name):
            problems.append(
                f"a read-only snippet runs as a read-only account, and {name} can write "
                f"({defined[name]}): use {MONITOR}, or mark the snippet 'mode: writes'"
            )
    extra = sorted(set(chosen) - set(kinds))
    if extra:
        problems.append(f"names a user for {', '.join(extra)}, which the snippet does not need")
    return problems
