"""Test servers configured as production is: conf/'s files, with a short listed set of overrides.

Every local PostgreSQL and Redis the tests start, shared or private, runs from a *boot
copy* of ``conf/postgresql/postgresql.conf`` (with ``pg_hba.conf``) or
``conf/redis/redis.conf`` (with ``users.acl``): the file line for line, except the keys
listed here, each with its reason. Their lines are commented out in place (so every
other setting keeps its line number) and the test values follow. So
``idle_in_transaction_session_timeout``, ``statement_timeout`` on the roles,
``maxmemory-policy`` and the renamed commands hold in every snippet test and drill, and
the config-boot tests (``tests/test_postgresql_conf.py``, ``tests/test_redis_conf.py``)
check the same lists.

A drill that needs another value asks for it in ``start_private(settings=...)``; only the
keys of ``DRILL_SETTINGS`` may differ from the file there, each with the reason written
next to it. A setting equal to the file's value is always accepted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from handbook.paths import CONF, rel

from .base import ServerConfigError

PG_CONF = CONF / "postgresql" / "postgresql.conf"
PG_HBA = CONF / "postgresql" / "pg_hba.conf"
REDIS_CONF = CONF / "redis" / "redis.conf"
HERE = "handbook/servers/production.py"

# PostgreSQL: the only keys of postgresql.conf whose value a test server replaces, and why.
PG_OVERRIDES: dict[str, str] = {
    "listen_addresses": "production listens on the database network; tests on 127.0.0.1",
    "port": "a free port, so that parallel servers do not collide",
    "unix_socket_directories": "the server's temp dir instead of /var/run/postgresql",
    "unix_socket_permissions": "0700: on a shared test machine only the server's account",
    "hba_file": "the copy of conf/postgresql/pg_hba.conf beside the boot copy",
    "ssl_cert_file": "a self-signed certificate made for the test",
    "ssl_key_file": "the key of that certificate",
    "archive_command": "copies WAL into the temp dir instead of the archive volume",
    "shared_buffers": "16GB is a quarter of the production host's RAM; 128MB on a test machine",
    "wal_buffers": "scaled down with shared_buffers (shared memory, allocated at start)",
    "wal_keep_size": "4GB of WAL kept for a replica fills a test machine's disk; 64MB",
    "max_wal_size": "8GB between checkpoints is the production disk's size; 1GB",
    "min_wal_size": "2GB of recycled WAL is the production disk's size; 80MB",
}
PG_TEST_VALUES = {
    "shared_buffers": "128MB",
    "wal_buffers": "4MB",
    "wal_keep_size": "64MB",
    "max_wal_size": "1GB",
    "min_wal_size": "80MB",
    "listen_addresses": "127.0.0.1",
    "unix_socket_permissions": "0700",
}
# Only where the build lacks a feature.
PG_NO_SSL: dict[str, str] = {
    "ssl": "this PostgreSQL build has no SSL support (ssl_library is empty): TLS is "
    "tested on the builds that have it; here hostssl rules become host rules",
}
PG_NO_PRELOAD: dict[str, str] = {
    "shared_preload_libraries": "this PostgreSQL build ships no pg_stat_statements: the "
    "snippets that need it are not applicable here (their extension: header says so)",
}
# Not in the file, set on every test server: a test server's data is thrown away.
PG_ADDED: dict[str, str] = {
    "fsync": "off: a test server's data is thrown away; durability only costs test time",
}
# Keys a PostgreSQL major does not know (removed or not yet there): {key: (min, max)}.
# None so far; a key listed here is left out of the boot copy on other majors.
PG_VERSION_RANGE: dict[str, tuple[int, int]] = {}

# Redis: the only directives of redis.conf a test server replaces, and why.
REDIS_OVERRIDES: dict[str, str] = {
    "bind": "production binds the cache network; tests bind 127.0.0.1 only",
    "port": "a free port, so that parallel servers do not collide",
    "unixsocket": "a socket in the server's temp dir",
    "logfile": "the server's temp dir instead of /var/log/redis",
    "dir": "RDB and AOF files go to the server's temp dir",
    "aclfile": "the rendered copy of conf/redis/users.acl in the temp dir",
}
# Directives a Redis version before this one does not know: left out there.
REDIS_SINCE: dict[str, tuple[int, int]] = {
    "enable-protected-configs": (7, 0),
    "enable-module-command": (7, 0),
}

# What a drill (a private server) may set differently from conf/, and why.
DRILL_SETTINGS: dict[str, dict[str, str]] = {
    "pg": {
        "max_connections": "the pool drills fill a server of 20 connections, not 200",
        "superuser_reserved_connections": "with 20 connections, 1 reserved slot leaves 19 "
        "for the pool drill's sessions",
        "deadlock_timeout": "the high-error-rate drill resolves its deadlocks in 100 ms "
        "instead of 1 s, so that it produces many of them quickly",
        "synchronous_commit": "the promotion drill measures synchronous replication "
        "(remote_apply) beside production's asynchronous one",
        "archive_command": "the backup drills archive into a directory they read back",
        "ssl_cert_file": "the certificate rotation drill serves certificates of its own",
        "ssl_key_file": "the certificate rotation drill serves certificates of its own",
    },
    "redis": {
        "maxmemory": "the cache drills fill a few megabytes, not 12 GB, to make Redis evict",
        "maxmemory-policy": "the low-cache-hit-rate drill reproduces a wrong policy "
        "(volatile-lru) to show the runbook's fix",
        "enable-debug-command": "the high-latency drill blocks Redis with DEBUG SLEEP",
        "rename-command": "the high-latency drill reproduces a client calling KEYS and "
        "DEBUG, which production's redis.conf renames away: 'keep' leaves the renames out",
        "repl-diskless-sync-delay": "the Sentinel drill's master has one replica to sync: "
        "0 starts the transfer at once instead of waiting 5 s for more replicas",
    },
}


def check_drill_settings(
    kind: str, settings: Mapping[str, str], file_values: Mapping[str, str]
) -> None:
    """Refuse a private server's setting that is neither the file's value nor declared in
    ``DRILL_SETTINGS`` with its reason."""
    allowed = DRILL_SETTINGS[kind]
    odd = sorted(
        key
        for key, value in settings.items()
        if key not in allowed and file_values.get(key.lower()) != str(value)
    )
    if odd:
        source = rel(PG_CONF if kind == "pg" else REDIS_CONF)
        raise ServerConfigError(
            f"setting(s) {', '.join(odd)} differ from {source}: a test server runs as "
            f"production does; if a drill needs another value, add the key to "
            f"{HERE} DRILL_SETTINGS[{kind!r}] with the reason"
        )


# ---------------------------------------------------------------------------
# postgresql.conf


class ConfError(ValueError):
    """A line of a config file is wrong; the message names file and line."""


@dataclass(frozen=True)
class Setting:
    key: str  # lower case, as pg_settings names it
    value: str  # unquoted
    line: int
    path: Path

    @property
    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}"


_LINE = re.compile(
    r"""^\s*(?P<key>[A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*
        (?P<value>'(?:[^'\\]|''|\\.)*'|[^\s#']+)\s*(?:\#.*)?$""",
    re.VERBOSE,
)


def _unquote(raw: str) -> str:
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        body = raw[1:-1].replace("''", "'")
        return re.sub(r"\\(.)", r"\1", body)
    return raw


def pg_quote(value: object) -> str:
    text = str(value)
    if "\n" in text or "\0" in text:
        raise ServerConfigError(f"PostgreSQL setting value {text!r} may not hold a newline")
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def parse(path: Path = PG_CONF) -> list[Setting]:
    """Every ``key = value`` line of a postgresql.conf; a line that is neither that, a
    comment nor blank raises ConfError naming the line. A key set twice is an error."""
    settings: dict[str, Setting] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfError(
                f"{rel(path)}:{number}: not a `name = value` line: {stripped!r}; quote values "
                "holding spaces or '#' with single quotes"
            )
        key = match.group("key").lower()
        if key in settings:
            raise ConfError(
                f"{rel(path)}:{number}: {key} is already set on line {settings[key].line}; "
                "keep one of them (the later would silently win)"
            )
        settings[key] = Setting(key, _unquote(match.group("value")), number, path)
    return list(settings.values())


def pg_boot_text(
    settings: list[Setting],
    source: str,
    overrides: Mapping[str, str],
    major: int,
    added: Mapping[str, str] | None = None,
) -> str:
    """The boot copy: ``source`` with overridden (and version-missing) lines commented out
    in place and the overrides appended, then ``added`` (keys the file does not set)."""
    lines = source.splitlines()
    for item in settings:
        low, high = PG_VERSION_RANGE.get(item.key, (0, 10**6))
        if item.key in overrides:
            lines[item.line - 1] = f"# overridden for the test: {lines[item.line - 1]}"
        elif not low <= major <= high:
            lines[item.line - 1] = f"# not in PostgreSQL {major}: {lines[item.line - 1]}"
    lines += ["", f"# --- test overrides ({HERE}) ---"]
    lines += [f"{key} = {pg_quote(value)}" for key, value in overrides.items()]
    if added:
        lines += ["", "# --- set by the test, not in the file (drills, throwaway data) ---"]
        lines += [f"{key} = {pg_quote(value)}" for key, value in added.items()]
    return "\n".join(lines) + "\n"


def pg_hba_text(tls: bool, path: Path = PG_HBA) -> str:
    """pg_hba.conf as written; without TLS in the build, hostssl rules become host rules."""
    text = path.read_text(encoding="utf-8")
    return text if tls else re.sub(r"(?m)^hostssl(\s)", r"host\1   ", text)


def make_certificate(directory: Path, common_name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway self-signed certificate and key in ``directory``: P-256, valid two days,
    the address as subjectAltName, CA:TRUE so that it can be its own root (PgBouncer's
    ``server_tls_ca_file``). Made with the ``cryptography`` library (the ``tests`` group),
    as ``openssl req -x509`` would, so that a machine without the openssl CLI boots TLS."""
    import datetime  # here: only servers that turn TLS on need these
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(common_name))
    except ValueError:
        alt = x509.DNSName(common_name)
    now = datetime.datetime.now(datetime.UTC)
    public = private.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(private, hashes.SHA256())
    )
    crt, key = directory / "server.crt", directory / "server.key"
    crt.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    return crt, key


# ---------------------------------------------------------------------------
# redis.conf


def redis_directives(text: str) -> list[tuple[str, tuple[str, ...], int]]:
    """(key, args, line) of every directive; ``rename-command`` keeps its command."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = shlex.split(stripped)
        found.append((words[0].lower(), tuple(words[1:]), number))
    return found


def redis_boot_text(
    rendered: str, values: Mapping[str, str], version: tuple[int, ...], keep_renames: bool
) -> str:
    """redis.conf (placeholders filled in) with each overridden directive replaced in place
    by its test line, the directives this version lacks commented out, and, for a drill
    that asks (``rename-command: keep``), the renames left out."""
    lines = rendered.splitlines()
    seen = set()
    for key, _, number in redis_directives(rendered):
        original = lines[number - 1]
        if key in values:
            lines[number - 1] = f"# overridden for the test: {original}\n{key} {values[key]}"
            seen.add(key)
        elif version < REDIS_SINCE.get(key, (0, 0)):
            lines[number - 1] = f"# not in this version: {original}"
        elif key == "rename-command" and keep_renames:
            lines[number - 1] = f"# kept for a drill ({HERE} DRILL_SETTINGS): {original}"
    stale = sorted(set(values) - seen)
    if stale:
        raise ConfError(
            f"{HERE} overrides {', '.join(stale)}, which {rel(REDIS_CONF)} does not set: "
            "remove them from REDIS_OVERRIDES"
        )
    return "\n".join(lines) + "\n"
