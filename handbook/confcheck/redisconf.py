"""conf/redis/: read redis.conf, users.acl and sentinel.conf, boot real Redis with them.

The three files are deploy-time templates: ``${NAME}`` marks a secret that ``envsubst``
fills in from the Kubernetes secret; ``render()`` does the same with the secrets a test
makes up, and refuses a placeholder it has no value for.

``boot_redis()`` and ``boot_sentinel()`` start ``redis-server`` (``--sentinel`` for
sentinel.conf) from a *boot copy*: the rendered file, except the directives in
``OVERRIDES`` / ``SENTINEL_OVERRIDES`` (each with its reason), replaced in place by test
values, and the directives a version does not know (``SINCE``), commented out.
``expected_config()`` says what ``CONFIG GET`` must answer for every other directive.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis

from handbook.paths import CONF, rel
from handbook.servers import cleanup, production, scratch
from handbook.servers.base import ServerStartError, major_of
from handbook.servers.ports import HOST, free_port

REDIS_CONF = CONF / "redis" / "redis.conf"
USERS_ACL = CONF / "redis" / "users.acl"
SENTINEL_CONF = CONF / "redis" / "sentinel.conf"
MASTER_NAME = "erpgo"  # ERPGO_REDIS_SENTINEL_MASTER in conf/erpgo/options.yml
ADMIN = "erpgo_admin"

# One list for every test server and this boot test (handbook/servers/production.py).
OVERRIDES: dict[str, str] = production.REDIS_OVERRIDES
SENTINEL_OVERRIDES: dict[str, str] = {
    "port": "a free port",
    "bind": "127.0.0.1 only",
    "dir": "the sentinel's temp dir",
    "logfile": "the sentinel's temp dir",
    "sentinel monitor": "the address of the Redis the test booted (quorum unchanged)",
}
# Directives a Redis version before this one does not know: left out there.
SINCE: dict[str, tuple[int, int]] = production.REDIS_SINCE
# Directives that may repeat; CONFIG GET joins their values ("3600 1 300 100").
REPEATABLE = ("save",)
# Not settings CONFIG GET reports: checked by behaviour in tests/test_redis_conf.py.
NOT_CONFIG = ("rename-command", "include", "user")
CASE_SENSITIVE = ("masterauth", "masteruser", "dbfilename", "appendfilename", "requirepass")
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
MEMORY = {"k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
START_TIMEOUT = 20


class ConfError(ValueError):
    """A line of a Redis config file is wrong; the message names file and line."""


@dataclass(frozen=True)
class Directive:
    key: str  # lower case; "sentinel monitor" for sentinel directives
    args: tuple[str, ...]
    line: int
    path: Path

    @property
    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}"


def parse(path: Path, text: str | None = None) -> list[Directive]:
    """Every directive of a redis.conf-style file, quotes handled as Redis does."""
    text = path.read_text(encoding="utf-8") if text is None else text
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            words = shlex.split(stripped, comments=False, posix=True)
        except ValueError as exc:
            raise ConfError(f"{rel(path)}:{number}: cannot split {stripped!r}: {exc}") from None
        key = words[0].lower()
        args = tuple(words[1:])
        if key == "sentinel" and args:
            key, args = f"sentinel {args[0].lower()}", args[1:]
        found.append(Directive(key, args, number, path))
    return found


def placeholders(path: Path) -> list[str]:
    """The ``${NAME}`` secrets a template needs, in order of appearance."""
    names = PLACEHOLDER.findall(path.read_text(encoding="utf-8"))
    return list(dict.fromkeys(names))


def render(path: Path, secrets_: Mapping[str, str]) -> str:
    """``path`` with its ``${NAME}`` placeholders filled in (what envsubst does at deploy)."""
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if "$" in PLACEHOLDER.sub("", line):
            raise ConfError(
                f"{rel(path)}:{number}: a `$` that is not a ${{NAME}} placeholder: envsubst "
                "would replace it; remove it"
            )
        for name in PLACEHOLDER.findall(line):
            if name not in secrets_:
                raise ConfError(f"{rel(path)}:{number}: no value for the secret ${{{name}}}")
    return PLACEHOLDER.sub(lambda m: secrets_[m.group(1)], text)


def make_secrets(*paths: Path) -> dict[str, str]:
    """A fresh random value for every placeholder of ``paths``."""
    return {name: secrets.token_hex(16) for path in paths for name in placeholders(path)}


def _in_version(key: str, version: tuple[int, ...]) -> bool:
    return version >= SINCE.get(key, (0, 0))


def boot_text(
    path: Path, rendered: str, overrides: Mapping[str, str], version: tuple[int, ...]
) -> str:
    """The boot copy: each overridden line replaced in place by its test line (after a
    comment quoting the original), lines this version does not know commented out."""
    lines = rendered.splitlines()
    directives = parse(path, rendered)
    stale = sorted(set(overrides) - {d.key for d in directives})
    if stale:
        raise ConfError(
            f"handbook/confcheck/redisconf.py overrides "
            f"{', '.join(stale)}, which {rel(path)} does not "
            "set: remove them from the overrides"
        )
    for item in directives:
        original = lines[item.line - 1]
        if item.key in overrides:
            lines[item.line - 1] = f"# overridden for the test: {original}\n{overrides[item.key]}"
        elif not _in_version(item.key, version):
            lines[item.line - 1] = f"# not in this version: {original}"
    return "\n".join(lines) + "\n"


def _bytes(value: str) -> str:
    match = re.fullmatch(r"(\d+)([kmg]b?)", value.lower())
    return str(int(match.group(1)) * MEMORY[match.group(2)]) if match else value


def expected_config(
    directives: list[Directive], version: tuple[int, ...], overridden: Mapping[str, str]
) -> dict[str, tuple[str, Directive]]:
    """What ``CONFIG GET <key>`` must answer for each directive that is not overridden,
    not version-gated and a real setting: {key: (value, directive)}."""
    expected = {}
    for item in directives:
        if item.key in overridden or item.key in NOT_CONFIG or not _in_version(item.key, version):
            continue
        value = " ".join(_bytes(a) for a in item.args)
        if item.key not in CASE_SENSITIVE:
            value = value.lower()
        if item.key in expected and item.key in REPEATABLE:
            expected[item.key] = (f"{expected[item.key][0]} {value}", expected[item.key][1])
            continue
        if item.key in expected:
            raise ConfError(
                f"{item.where}: {item.key} is already set on line {expected[item.key][1].line}"
            )
        expected[item.key] = (value, item)
    return expected


def config_problems(
    expected: Mapping[str, tuple[str, Directive]], actual: Mapping[str, str]
) -> list[str]:
    problems = []
    for key, (want, item) in expected.items():
        got = actual.get(key)
        if got is None:
            problems.append(
                f"{item.where}: CONFIG GET {key} returns nothing: the server does not know it; "
                "remove it, or list the version that has it in "
                "handbook/confcheck/redisconf.py SINCE"
            )
            continue
        if key not in CASE_SENSITIVE:
            got = got.lower()
        if got != want:
            problems.append(
                f"{item.where}: {key} {' '.join(item.args)!r} means {want!r}, but the server "
                f"runs with {got!r}: fix the value in the file"
            )
    return problems


# ---------------------------------------------------------------------------
# Booting


@dataclass
class Booted:
    binary: Path
    version: tuple[int, ...]
    scratch: Path
    port: int
    conf: Path  # the boot copy
    secrets: dict[str, str]
    directives: list[Directive]  # of the source file, rendered
    overrides: dict[str, str]  # key -> the directive line used instead
    proc: subprocess.Popen | None = None
    _token: int | None = field(default=None, repr=False)

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def client(self, user: str | None = None, password: str | None = None) -> redis.Redis:
        """A redis-py client of this server, as ``user`` (or the default user); close it."""
        return redis.Redis(
            host=HOST, port=self.port, username=user, password=password,
            decode_responses=True, socket_timeout=5, socket_connect_timeout=5,
        )  # fmt: skip

    def call(
        self, *commands: tuple[str, ...], user: str | None, password: str | None
    ) -> list[object]:
        """Send ``commands`` in one round trip; their replies in order, as redis-py reads
        them, an error reply as the ``redis.ResponseError`` it stands for (NOPERM:
        ``redis.exceptions.NoPermissionError``). A refused login raises
        ``redis.AuthenticationError``."""
        with self.client(user, password) as client, client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute(raise_on_error=False)

    def log(self) -> str:
        text = ""
        for name in ("redis.log", "stdout.log"):
            with contextlib.suppress(OSError):
                text += (self.scratch / name).read_text(errors="replace")
        return "\n".join("    " + line for line in text.strip().splitlines()[-15:])

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()  # redis-server shuts down cleanly on SIGTERM
                cleanup.end_process(self.proc)
        finally:
            scratch.remove(self.scratch)
            cleanup.unregister(self._token)
            self._token = None


def version_of(binary: Path) -> tuple[int, ...]:
    result = subprocess.run(
        [os.fspath(binary), "--version"], capture_output=True, text=True, timeout=20, check=False
    )
    match = re.search(r"v=(\d+\.\d+\S*)", result.stdout)
    if not match:
        raise ServerStartError(f"{binary} --version: {result.stdout or result.stderr!r}")
    return major_of("redis", match.group(1))


def _launch(
    binary: Path,
    source: Path,
    rendered: str,
    overrides: Callable[[Path, int], dict[str, str]],
    secrets_: dict[str, str],
    ready: Callable[[Booted], bool],
    sentinel: bool = False,
) -> Booted:
    version = version_of(binary)
    directory = scratch.make("redisconf")
    port = free_port()
    lines = overrides(directory, port)
    booted = Booted(
        binary, version, directory, port, directory / source.name, secrets_,
        parse(source, rendered), lines,
    )  # fmt: skip
    booted._token = cleanup.register(f"{source.name} server in {directory}", booted.stop)
    try:
        booted.conf.write_text(boot_text(source, rendered, lines, version))
        booted.conf.chmod(0o600)
        args = [os.fspath(binary), str(booted.conf), *(["--sentinel"] if sentinel else [])]
        with (directory / "stdout.log").open("ab") as out:
            booted.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=directory, start_new_session=True,
            )  # fmt: skip
        scratch.record(directory, server_pid=booted.proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if booted.proc.poll() is not None:
                break
            with contextlib.suppress(OSError, redis.RedisError):
                if ready(booted):
                    return booted
            time.sleep(0.02)
        raise ServerStartError(
            f"{binary} did not start from {rel(source)} (boot copy {booted.conf}); its log:\n"
            f"{booted.log() or '    (empty)'}\nFix the directive the log names in the file "
            "(or list it in handbook/confcheck/redisconf.py with the reason it cannot apply here)."
        )
    except BaseException:
        booted.stop()
        raise


def boot_redis(binary: Path, conf: Path = REDIS_CONF, acl: Path = USERS_ACL) -> Booted:
    """Start ``binary`` from a boot copy of redis.conf and a rendered users.acl."""
    secrets_ = make_secrets(conf, acl)

    def overrides(directory: Path, port: int) -> dict[str, str]:
        users = directory / "users.acl"
        users.write_text(render(acl, secrets_))
        users.chmod(0o600)
        return {
            "bind": f"bind {HOST}",
            "port": f"port {port}",
            "unixsocket": f"unixsocket {directory / 'redis.sock'}",
            "logfile": f"logfile {directory / 'redis.log'}",
            "dir": f"dir {directory}",
            "aclfile": f"aclfile {users}",
        }

    def ready(booted: Booted) -> bool:
        with booted.client(ADMIN, secrets_["REDIS_ADMIN_PASSWORD"]) as client:
            return client.ping()

    return _launch(binary, conf, render(conf, secrets_), overrides, secrets_, ready)


def boot_sentinel(binary: Path, master: Booted, conf: Path = SENTINEL_CONF) -> Booted:
    """Start ``binary --sentinel`` from a boot copy of sentinel.conf, watching ``master``
    (a server from ``boot_redis``, whose users.acl holds the sentinel's user)."""
    secrets_ = make_secrets(conf)
    # The sentinel's Redis user must have the password the booted master knows it by.
    secrets_["REDIS_SENTINEL_USER_PASSWORD"] = master.secrets["REDIS_SENTINEL_USER_PASSWORD"]
    quorum = next(d.args[3] for d in parse(conf) if d.key == "sentinel monitor")

    def overrides(directory: Path, port: int) -> dict[str, str]:
        return {
            "port": f"port {port}",
            "bind": f"bind {HOST}",
            "dir": f"dir {directory}",
            "logfile": f"logfile {directory / 'redis.log'}",
            "sentinel monitor": f"sentinel monitor {MASTER_NAME} {HOST} {master.port} {quorum}",
        }

    def ready(booted: Booted) -> bool:
        with booted.client(None, secrets_["SENTINEL_PASSWORD"]) as client:
            return client.ping()

    return _launch(binary, conf, render(conf, secrets_), overrides, secrets_, ready, True)
