"""conf/postgresql/postgresql.conf and pg_hba.conf: read them, check them on a real server.

Every local test server already runs from a *boot copy* of postgresql.conf and a copy
of pg_hba.conf (``handbook.servers.production``): the file line for line, except the
keys in ``OVERRIDES`` (each with its reason), commented out in place so every other
setting keeps its line number, with the test values appended. ``boot(server)`` describes
such a server for the checks; ``compare()`` then checks pg_settings rows against the
file: the value (units normalised) and that the value came from that very line
(``sourcefile``/``sourceline``). ``hba_problems()`` is the static check that no rule
trusts anyone and that TCP needs TLS and SCRAM.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from handbook.paths import CONF, rel
from handbook.schema.databases import psql
from handbook.servers import pgbouncer, production
from handbook.servers.base import Server, ServerUnavailable

CONF_FILE = production.PG_CONF
HBA_FILE = production.PG_HBA

# The only keys whose file value a test server replaces, and why (production.py, one list
# for every test server); anything else that differs from the running server is a failure.
OVERRIDES = production.PG_OVERRIDES
NO_SSL_OVERRIDES = production.PG_NO_SSL
VERSION_RANGE = production.PG_VERSION_RANGE
TEST_SHARED_BUFFERS = production.PG_TEST_VALUES["shared_buffers"]
ConfError = production.ConfError
Setting = production.Setting
parse = production.parse
make_certificate = production.make_certificate
MEMORY = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
TRUE = {"on", "true", "yes", "1", "t", "y"}
FALSE = {"off", "false", "no", "0", "f", "n"}


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


def boot(server: Server, conf: Path = CONF_FILE, hba: Path = HBA_FILE) -> Booted:
    """A dedicated local server, which runs from a boot copy of ``conf`` and a copy of
    ``hba`` (production.py), described for the checks."""
    handle = server.handle
    if server.provider != "local" or not hasattr(handle, "owner_run"):
        raise ServerUnavailable(
            f"{server.label} is a {server.provider} server: checking conf/postgresql needs a "
            "local PostgreSQL install (its data dir and boot copy)"
        )
    settings = parse(conf)
    stale = sorted(set(OVERRIDES) - {s.key for s in settings})
    if stale:
        raise ConfError(
            f"handbook/servers/production.py PG_OVERRIDES lists {', '.join(stale)}, which "
            f"{rel(conf)} does not set: remove them from PG_OVERRIDES"
        )
    keys = [*OVERRIDES, "ssl"]
    shown = psql(server, f"SELECT name, setting FROM pg_settings WHERE name IN "
                         f"({', '.join(repr(k) for k in keys)})")  # fmt: skip
    values = dict(line.split("|", 1) for line in shown.splitlines())
    tls = bool(psql(server, "SHOW ssl_library").strip())
    overrides = {k: values.get(k, "") for k in OVERRIDES}
    if not tls:
        overrides["ssl"] = values.get("ssl", "off")
    booted = handle.datadir / "postgresql.conf"
    return Booted(server, booted, handle.scratch / "pg_hba.conf", settings, overrides, tls)


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


def pooler_budget(conf: Path = CONF_FILE) -> dict[str, int]:
    """The connection budget behind PgBouncer, from the files that set it: the API pods'
    client connections, the pooler pods (conf/pgbouncer/deployment.yaml) times the
    server connections each may open (pgbouncer.ini), against PostgreSQL's limits."""
    budget = connection_budget(conf)
    ini = {k: v for k, (v, _) in pgbouncer.parse()["pgbouncer"].items()}
    pods = int(yaml.safe_load(pgbouncer.DEPLOYMENT.read_text())["spec"]["replicas"])
    per_pod = int(ini["max_db_connections"])
    servers = pods * per_pod
    usable = budget["max_connections"] - budget["superuser_reserved_connections"]
    return {
        "client_connections_max": budget["client_connections_max"],
        "pooler_pods": pods,
        "max_client_conn_per_pooler": int(ini["max_client_conn"]),
        "default_pool_size": int(ini["default_pool_size"]),
        "max_db_connections_per_pooler": per_pod,
        "server_connections_max": servers,
        "max_connections": budget["max_connections"],
        "superuser_reserved_connections": budget["superuser_reserved_connections"],
        "left_for_other_clients": usable - servers,
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
    "pooler_budget",
]
