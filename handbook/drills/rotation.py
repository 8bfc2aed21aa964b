"""The secret-rotation drills' moving parts: a client that keeps logging in, secrets, certificates.

``LoginLoop`` plays an ERPGo instance whose pool keeps opening fresh connections: in a
thread it reads the current credentials from the secret file before every attempt (as
a pod does after a rollout), logs in, and records who it logged in as and every
failure. A rotation is zero-downtime when the loop saw logins with the old and the new
credentials and no failure at all.

``make_certificate`` makes a self-signed server certificate with the ``openssl`` CLI
(the one the page's snippets use); ``install_tls_files`` puts one where a dedicated
PostgreSQL server, running as its own OS account, can read it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import redis

from handbook.drills.common import DrillError, connect, require_tool
from handbook.servers.account import Account
from handbook.servers.base import Server

Credentials = dict[str, str]


def read_secret(path: Path) -> Credentials:
    """The ``KEY=value`` lines of a secret file written by the rotation snippets."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values


def fingerprint(password: str) -> str:
    """What Redis stores for a password (``ACL GETUSER`` shows it): its SHA-256 in hex."""
    return hashlib.sha256(password.encode()).hexdigest()


class LoginLoop:
    """Log in again and again with whatever the secret file holds at that moment."""

    def __init__(self, secret: Path, login: Callable[[Credentials], str]) -> None:
        self.secret = secret
        self.login = login  # logs in with the credentials, returns who it logged in as
        self.logins: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="login-loop", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            credentials = read_secret(self.secret)
            try:
                self.logins[self.login(credentials)] += 1
            except Exception as exc:  # every failed login counts, whatever raised it
                self.failures.append(f"{type(exc).__name__}: {str(exc).strip()}")

    @property
    def attempts(self) -> int:
        return sum(self.logins.values()) + len(self.failures)

    def __enter__(self) -> LoginLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def pg_login(server: Server, database: str = "postgres") -> Callable[[Credentials], str]:
    """A fresh PostgreSQL connection per call, as ERPGO_DB_USER with ERPGO_DB_PASSWORD."""

    def login(credentials: Credentials) -> str:
        env = server.admin_env | {
            "PGDATABASE": database,
            "PGUSER": credentials["ERPGO_DB_USER"],
            "PGPASSWORD": credentials["ERPGO_DB_PASSWORD"],
        }
        with connect(env, "erpgo-api") as conn:
            return conn.execute("SELECT current_user").fetchone()[0]

    return login


def redis_login(server: Server) -> Callable[[Credentials], str]:
    """A fresh Redis connection per call: AUTH as the secret's user, then PING.

    Returns the fingerprint of the password that worked, so a drill can tell the old
    password's logins from the new one's.
    """
    url = urlsplit(server.admin_env["REDIS_URL"])

    def login(credentials: Credentials) -> str:
        password = credentials["ERPGO_REDIS_PASSWORD"]
        with redis.Redis(
            host=url.hostname or "127.0.0.1",
            port=url.port or 6379,
            username=credentials["ERPGO_REDIS_USERNAME"],
            password=password,
            socket_timeout=5,
        ) as client:
            if client.ping() is not True:
                raise ConnectionError("PING did not answer PONG")
        return fingerprint(password)

    return login


def openssl(*args: str | os.PathLike) -> str:
    """Run the ``openssl`` CLI (ToolMissing when it is not installed); its output."""
    result = subprocess.run(
        [require_tool("openssl", "openssl"), *map(os.fspath, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DrillError(f"openssl {' '.join(map(str, args[:2]))} failed: {result.stderr}")
    return result.stdout


def make_certificate(directory: Path, name: str, serial: int) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1, valid two days: (cert, key) files."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
        "-set_serial", hex(serial), "-addext", "subjectAltName=IP:127.0.0.1",
    )  # fmt: skip
    return cert, key


def install_tls_files(directory: Path, cert: Path, key: Path, account: Account) -> None:
    """``server.crt`` and ``server.key`` in ``directory``, owned by the server's account
    (PostgreSQL refuses a key others can read)."""
    directory.chmod(0o755)
    for source, target, mode in ((cert, "server.crt", 0o644), (key, "server.key", 0o600)):
        shutil.copyfile(source, directory / target)
        (directory / target).chmod(mode)
        account.own(directory / target)


def serial_of(output: str) -> str:
    """The ``serial=...`` value in ``openssl x509 -serial`` output ("" when absent)."""
    for line in output.splitlines():
        if line.startswith("serial="):
            return line.split("=", 1)[1].strip().upper().lstrip("0")
    return ""
