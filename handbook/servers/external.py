"""Servers someone else runs: ``HANDBOOK_PG_DSN`` and ``HANDBOOK_REDIS_URL``.

They are never written to: ``Server.read_only`` is True, so only read-only snippets run
there, and for PostgreSQL both environments also carry
``PGOPTIONS=-c default_transaction_read_only=on -c statement_timeout=5s`` (added to any
``options`` the DSN has). The version is asked from the server when the candidate is
made (collection time); a server that cannot be reached is a ``ServerConfigError``
naming the variable, since someone asked for it explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import Candidate, Server, ServerConfigError, ServerUnavailable
from .postgres import MONITOR_OPTIONS
from .redis import find_client

PG_DSN_VAR = "HANDBOOK_PG_DSN"
REDIS_URL_VAR = "HANDBOOK_REDIS_URL"

# libpq connection parameters and the environment variables psql reads them from.
CONNINFO_ENV = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE",
    "user": "PGUSER", "password": "PGPASSWORD", "passfile": "PGPASSFILE",
    "options": "PGOPTIONS", "application_name": "PGAPPNAME", "service": "PGSERVICE",
    "connect_timeout": "PGCONNECT_TIMEOUT", "client_encoding": "PGCLIENTENCODING",
    "sslmode": "PGSSLMODE", "sslnegotiation": "PGSSLNEGOTIATION",
    "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL", "sslcrldir": "PGSSLCRLDIR", "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER", "require_auth": "PGREQUIREAUTH",
    "channel_binding": "PGCHANNELBINDING", "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME", "gsslib": "PGGSSLIB",
    "target_session_attrs": "PGTARGETSESSIONATTRS", "load_balance_hosts": "PGLOADBALANCEHOSTS",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
}  # fmt: skip


def _psycopg():
    try:
        # Imported here: only needed when an external server is configured.
        import psycopg
        import psycopg.conninfo
    except ImportError:
        raise ServerUnavailable(
            f"{PG_DSN_VAR} is set, but reading it needs psycopg: install the `tests` "
            "dependency group (`pip install --group tests`), or unset the variable"
        ) from None
    return psycopg


def _redis():
    try:
        # Imported here: only needed when an external server is configured.
        import redis
    except ImportError:
        raise ServerUnavailable(
            f"{REDIS_URL_VAR} is set, but reading it needs redis-py: install the `tests` "
            "dependency group (`pip install --group tests`), or unset the variable"
        ) from None
    return redis


def pg_env(dsn: str) -> dict[str, str]:
    """The DSN (URI or ``key=value``) as PG* variables, read-only options added."""
    psycopg = _psycopg()
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ServerConfigError(f"{PG_DSN_VAR} is not a valid connection string: {exc}") from None
    env = {}
    for key, value in params.items():
        if value is None:
            continue
        if key not in CONNINFO_ENV:
            raise ServerConfigError(
                f"{PG_DSN_VAR} sets {key!r}, which psql cannot take from the environment: "
                "remove it from the DSN"
            )
        env[CONNINFO_ENV[key]] = str(value)
    env.setdefault("PGDATABASE", "postgres")
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {MONITOR_OPTIONS}".strip()
    return env


def _where(env: Mapping[str, str]) -> str:
    return f"{env.get('PGHOST', 'localhost')}:{env.get('PGPORT', '5432')}/{env['PGDATABASE']}"


def pg_candidate(dsn: str, client_bindir: Path | None = None) -> Candidate:
    """Connect once to learn the version; ``start()`` returns the (shared) Server."""
    psycopg = _psycopg()
    env = pg_env(dsn)
    try:
        with psycopg.connect(dsn, connect_timeout=10, options=MONITOR_OPTIONS) as conn:
            (version,) = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        raise ServerConfigError(
            f"{PG_DSN_VAR}: cannot connect to {_where(env)}: {str(exc).strip()}. "
            "Fix the DSN or unset the variable."
        ) from None
    version = version.split()[0]
    server = Server(
        kind="pg",
        product="PostgreSQL",
        version=version,
        provider="external",
        origin=_where(env),
        bindir=client_bindir,
        admin_env=env,
        monitor_env=dict(env),
        read_only=True,
        client_note=f"psql from {client_bindir or 'PATH'}",
    )
    return Candidate(
        kind="pg",
        product="PostgreSQL",
        version=version,
        provider="external",
        origin=server.origin,
        start=lambda settings=None: _shared(server, settings),
        read_only=True,
    )


def _shared(server: Server, settings: Mapping[str, str] | None) -> Server:
    if settings:
        raise ServerUnavailable(
            f"{server.describe()} at {server.origin} is external: it cannot be started "
            "with other settings; drills need a local or Docker server"
        )
    return server


def redis_candidate(url: str) -> Candidate:
    """Ask the server its version (INFO server); ``start()`` returns the Server."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ServerConfigError(
            f"{REDIS_URL_VAR} must look like redis://user:password@host:port/0 "
            f"(or rediss:// for TLS), not {parts.scheme or '(no scheme)'}://..."
        )
    where = f"{parts.hostname}:{parts.port or 6379}"
    client = find_client()
    password = unquote(parts.password) if parts.password else None
    redis = _redis()
    try:
        with redis.Redis.from_url(url, socket_timeout=15, socket_connect_timeout=15) as server:
            fields = server.info("server")
    except (OSError, redis.RedisError) as exc:
        raise ServerConfigError(
            f"{REDIS_URL_VAR}: cannot ask {where} for INFO server: {exc}. "
            "Fix the URL or unset the variable."
        ) from None
    product = "Valkey" if "valkey_version" in fields else "Redis"
    version = str(fields.get("valkey_version") or fields["redis_version"])
    env = {"REDIS_URL": url, **({"REDISCLI_AUTH": password} if password else {})}
    server = Server(
        kind="redis",
        product=product,
        version=version,
        provider="external",
        origin=where,
        bindir=client.path.parent if client else None,
        admin_env=env,
        monitor_env=dict(env),
        read_only=True,
        client_note=client.note if client else "no redis-cli found: install redis-tools",
    )
    return Candidate(
        kind="redis",
        product=product,
        version=version,
        provider="external",
        origin=where,
        start=lambda settings=None: _shared(server, settings),
        read_only=True,
    )
