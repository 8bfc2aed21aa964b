"""Servers in containers, through testcontainers' own modules (PostgresContainer,
RedisContainer, ValkeyContainer), used when a Docker engine answers
(``engine_available()``, which returns False in milliseconds when there is none).

Which images: ``HANDBOOK_DOCKER_IMAGES`` maps server labels to images, comma-separated
(``pg17=handbook/postgres:17-trixie,valkey8.1=handbook/valkey:8.1-trixie``); it replaces
the default list, the pinned official tags in ``DEFAULT_IMAGES`` (exact tags, never
``latest``: labels are known without pulling, results are repeatable). CI sets it to
the images ``python -m handbook.servers.images build`` makes from Debian, which keep the
official images' contract, so both go through the same modules and the same set-up. An
image the engine does not have is pulled by testcontainers, as for any user; where no
registry answers, that start fails naming the image and the build command.

Network: on a local Linux engine a container shares the host's network and its server
listens on 127.0.0.1 on a free port, so every connection stays on loopback; on another
engine (Docker Desktop, DOCKER_HOST=tcp://...) the server's port is published, on
127.0.0.1 when the engine is local.

Clients and files: psql is the newest local one, as for every server; the programs
whose input or output follows the server's major (``VERSION_BOUND``: pg_dump,
pg_basebackup, pg_verifybackup...) come from a local install of the same major, else
from the server's own image (``docker run`` in a throwaway container). On the host's
network the data directory is a host directory at the same path, so what a reader runs
on a database host (``df`` on ``SHOW data_directory``) runs here too.

Configuration: on the host's network a container boots from the same boot copies of
conf/postgresql/postgresql.conf (with pg_hba.conf and a TLS certificate) and
conf/redis/redis.conf as local servers (``production.py``: the same overrides, the same
drill settings), written to a host dir the container shares; elsewhere the server runs
with the image's defaults and the settings on its command line.

Accounts: the containers get the same accounts as local servers, from the same set-up
(``accounts.py``): conf/postgresql/roles.sql and conf/redis/users.acl, with passwords made
up per server.

The engine itself (whether one answers, its client, the labels on every container
and the reaping of those a killed run left) is ``dockerengine.py``; the files a
container gets from this host (boot copies, client wrappers) are ``dockerfiles.py``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from . import accounts, cleanup, scratch
from .base import Candidate, Server, ServerConfigError, ServerStartError, base_label_of
from .dockerengine import (
    engine_client,
    host_network,
    local_engine,
    logs,
    owner_labels,
    prepare_testcontainers,
    reap_once,
    remove,
)
from .dockerfiles import VERSION_BOUND, host_datadir, image_clients, pg_boot_copy, redis_boot_copy
from .pgbouncer import client_has_ssl
from .ports import HOST, free_port
from .postgres import DEFAULT_SETTINGS, MANAGED_SETTINGS, PG_STAT_STATEMENTS
from .redis import RedisClient, admin_client, reported_version, setting_args

IMAGES_VAR = "HANDBOOK_DOCKER_IMAGES"
DEFAULT_IMAGES = {
    "pg14": "postgres:14.25",
    "pg15": "postgres:15.20",
    "pg16": "postgres:16.16",
    "pg17": "postgres:17.12",
    "pg18": "postgres:18.6",
    "redis6.2": "redis:6.2.14",
    "redis7.0": "redis:7.0.15",
    "redis7.2": "redis:7.2.4",
    "redis7.4": "redis:7.4.2",
    "valkey8.1": "valkey/valkey:8.1.1",
}
BUILD_COMMAND = "python -m handbook.servers.images build"
LOCAL_PREFIX = "handbook/"  # images.py's tags: built on this engine, pulled from nowhere
LABEL_RE = re.compile(r"(pg)(\d+)|(redis|valkey)(\d+\.\d+)")
PRODUCTS = {"pg": "PostgreSQL", "redis": "Redis", "valkey": "Valkey"}

START_ATTEMPTS = 3  # a free port can be taken between choosing it and the server binding it


# -- which images ----------------------------------------------------------------------


def images(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Server label -> image: ``HANDBOOK_DOCKER_IMAGES`` when set, else ``DEFAULT_IMAGES``."""
    environ = os.environ if environ is None else environ
    value = environ.get(IMAGES_VAR, "").strip()
    if not value:
        return dict(DEFAULT_IMAGES)
    found: dict[str, str] = {}
    for entry in (e.strip() for e in value.split(",")):
        label, _, image = entry.partition("=")
        label, image = label.strip(), image.strip()
        problem = ""
        if not entry:
            problem = "an empty entry"
        elif not LABEL_RE.fullmatch(label):
            problem = f"{label!r} is not a server label (pg17, redis7.0, valkey8.1)"
        elif not image or any(c.isspace() for c in image):
            problem = f"{label} names no image"
        elif label in found:
            problem = f"{label} is named twice"
        if problem:
            raise ServerConfigError(
                f"{IMAGES_VAR}={value!r}: {problem}; write label=image pairs separated by "
                f"commas, e.g. {IMAGES_VAR}=pg17=handbook/postgres:17-trixie,"
                "redis7.0=redis:7.0.15"
            )
        found[label] = image
    return found


def _product(label: str) -> tuple[str, str, str]:
    """(kind, product, version) from a label: ("pg", "PostgreSQL", "17") for pg17."""
    match = LABEL_RE.fullmatch(label)
    assert match is not None
    if match.group(1):
        return "pg", PRODUCTS["pg"], match.group(2)
    return "redis", PRODUCTS[match.group(3)], match.group(4)


def _version(label: str, image: str) -> str:
    """The image tag's version when it is on the label's line ("17.12"), else the label's."""
    kind, product, version = _product(label)
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    match = re.match(r"\d+(\.\d+)*", tag)
    if match and base_label_of(kind, product, match.group()) == label:
        return match.group()
    return version


def _candidates(kind: str, environ: Mapping[str, str] | None, start) -> list[Candidate]:
    reap_once()
    found = []
    for label, image in images(environ).items():
        label_kind, product, _ = _product(label)
        if label_kind != kind:
            continue
        found.append(
            Candidate(
                kind=kind,
                product=product,
                version=_version(label, image),
                provider="docker",
                origin=image,
                start=lambda settings=None, image=image, label=label: start(image, label, settings),
                features=frozenset({PG_STAT_STATEMENTS}) if kind == "pg" else frozenset(),
            )
        )
    return found


def pg_candidates(
    client_bindir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    local_bindirs: Mapping[int, Path] | None = None,
) -> list[Candidate]:
    """``client_bindir``: the newest local psql's; ``local_bindirs``: local installs by
    major, whose version-bound programs serve a container of the same major."""

    def start(image: str, label: str, settings: Mapping[str, str] | None) -> Server:
        major = int(_product(label)[2])
        bindir = (local_bindirs or {}).get(major) or client_bindir
        return start_pg(
            image, settings, bindir, label, own_clients=major not in (local_bindirs or {})
        )

    return _candidates("pg", environ, start)


def redis_candidates(
    client: RedisClient | None = None, environ: Mapping[str, str] | None = None
) -> list[Candidate]:
    return _candidates(
        "redis",
        environ,
        lambda image, label, settings: start_redis(image, settings, client, label),
    )


def _on_host_network(cls):
    """``cls`` with its server on the host's network: its own port on 127.0.0.1."""

    class OnHostNetwork(cls):
        def get_container_host_ip(self) -> str:
            return HOST

        def _get_exposed_port(self, port: int) -> int:
            return int(port)

    OnHostNetwork.__name__ = OnHostNetwork.__qualname__ = f"{cls.__name__}OnHostNetwork"
    return OnHostNetwork


def _make(cls, image: str, label: str, port: int, on_host: bool, **kwargs):
    """A testcontainers container of ``cls`` for ``image``, labelled, networked as above."""
    kwargs["labels"] = owner_labels(label)
    if on_host:
        container = _on_host_network(cls)(image, port=port, network_mode="host", **kwargs)
        container.ports = {}  # nothing to publish: the server is on the host's loopback
    else:
        container = cls(image, port=port, **kwargs)
        if local_engine():
            container.with_bind_ports(port, (HOST, None))
    return container


def _built_here_missing(image: str) -> bool:
    """True for a ``handbook/`` image (built here, on no registry) the engine says it
    lacks. Any other answer (a busy engine's timeout, a dropped connection) is not taken
    for a missing image: the start goes on, and fails with the engine's own error if it
    must (a full run once reported valkey8.1's image missing on a loaded engine)."""
    from docker.errors import ImageNotFound

    if not image.startswith(LOCAL_PREFIX):
        return False
    try:
        client = engine_client()
    except Exception:  # no engine answers: the start says so
        return False
    try:
        client.images.get(image)
    except ImageNotFound:
        return True
    except Exception:  # any other answer: the start goes on
        pass
    finally:
        client.close()
    return False


def _start(container, image: str, token: int) -> None:
    """Start it; on failure remove it and raise ServerStartError naming the image, with
    ``port_taken`` set when its server could not bind its port."""
    hint = (
        f"build the handbook's images ({BUILD_COMMAND}) and name them in {IMAGES_VAR} "
        "(`python -m handbook.servers.images env` prints the value)"
    )
    if _built_here_missing(image):
        cleanup.unregister(token)
        raise ServerStartError(f"the Docker engine has no {image}: {hint}")
    try:
        container.start()
    except BaseException as exc:
        log = logs(container)
        remove(container)
        cleanup.unregister(token)
        if not isinstance(exc, Exception):
            raise
        missing = "not found" in str(exc).lower() or "pull access denied" in str(exc)
        tail = "\n".join("    " + line for line in log.strip().splitlines()[-15:])
        error = ServerStartError(
            f"Docker could not start {image}: {exc}"
            + (f"\n  the engine has no {image} and could not pull it: {hint}" if missing else "")
            + (f"\n  its log:\n{tail}" if tail else "")
        )
        error.port_taken = "already in use" in log or "could not bind" in log.lower()
        raise error from exc


def _start_on_a_free_port(image: str, on_host: bool, default_port: int, prepare):
    """Start the container ``prepare(port)`` returns as ``(container, token, state)``.

    On the host's network the port is a free one, which another program can take between
    choosing it and the server binding it: then a fresh port, up to START_ATTEMPTS.
    Returns ``(port, container, token, state)``.
    """
    for attempt in range(START_ATTEMPTS):
        port = free_port() if on_host else default_port
        container, token, state = prepare(port)
        try:
            _start(container, image, token)
            return port, container, token, state
        except ServerStartError as exc:
            if on_host and attempt + 1 < START_ATTEMPTS and getattr(exc, "port_taken", False):
                continue
            raise
    raise AssertionError("unreachable: the last attempt raises")


# -- as production runs: conf/'s files in a host dir the container shares -----------


def _ready(command: list[str], timeout: float = 120.0):
    """A wait strategy: ready when ``command`` exits 0 in the container; a failure at once
    when the container exits (testcontainers' own strategies poll on until their timeout)."""
    import time

    from testcontainers.core.waiting_utils import WaitStrategy

    class Ready(WaitStrategy):
        def wait_until_ready(self, container) -> None:
            deadline = time.monotonic() + timeout
            run = _as_postgres(command) if command[0].startswith("pg_") else command
            while True:
                wrapped = container.get_wrapped_container()
                wrapped.reload()
                if wrapped.status in ("exited", "dead"):
                    raise RuntimeError(f"the container exited (status {wrapped.status})")
                with contextlib.suppress(Exception):
                    if container.exec(run).exit_code == 0:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{command[0]} did not succeed within {timeout:.0f} s")
                time.sleep(0.1)

    return Ready()


def _as_postgres(command: list[str]):
    """``command`` run as the image's postgres user (the official image execs as root;
    conf/postgresql/pg_hba.conf lets the superuser in by peer only)."""
    from testcontainers.core.container import ExecConfig

    return ExecConfig(command=command, user="postgres")


# -- PostgreSQL ------------------------------------------------------------------------


def start_pg(
    image: str,
    settings: Mapping[str, str] | None,
    client_bindir: Path | None,
    label: str | None = None,
    own_clients: bool = False,
) -> Server:
    """A PostgreSQL container of ``image``, serving ``label`` (default: from the mapping).

    ``client_bindir`` goes first on clients' PATH; with ``own_clients`` (no local install
    of the server's major) its ``VERSION_BOUND`` programs run from ``image`` instead.
    On the host's network the data directory is a host directory at the same path
    (``SHOW data_directory`` names a directory on this machine, as on a database host).
    """
    from testcontainers.community.postgres import PostgresContainer

    managed = sorted(set(settings or {}) & set(MANAGED_SETTINGS))
    if managed:
        raise ServerConfigError(
            f"PostgreSQL setting(s) {', '.join(managed)} are chosen by the provider "
            "(127.0.0.1 and a free port); leave them out"
        )
    label = label or _label_of("pg", image)
    prepare_testcontainers()
    on_host = host_network()

    def prepare(port: int):
        password, passwords = secrets.token_hex(16), accounts.pg_passwords()
        merged = {
            **({"listen_addresses": HOST, "port": str(port)} if on_host else {}),
            **DEFAULT_SETTINGS,
            "shared_preload_libraries": PG_STAT_STATEMENTS,
            **(settings or {}),
        }
        command = ["postgres"] + [arg for k, v in merged.items() for arg in ("-c", f"{k}={v}")]
        container = _make(
            PostgresContainer, image, label, port, on_host,
            username="postgres", password=password, dbname="postgres", driver=None,
        ).with_command(command)  # fmt: skip
        # PGPORT: the port the image's entrypoint, its psql and the wait strategy use.
        container.with_env("PGPORT", str(port))
        datadir = host_datadir(container) if on_host and local_engine() else None
        token = cleanup.register(f"container {image}", lambda c=container, d=datadir: remove(c, d))
        tls = False
        if datadir is not None:
            # As local servers run: conf/postgresql's files, with production.py's overrides.
            conf, tls = pg_boot_copy(
                image,
                datadir,
                port,
                dict(settings or {}),
                _product(label)[2],
                client_has_ssl(client_bindir),
            )
            container.with_command(["postgres", "-c", f"config_file={conf}"])
        container.waiting_for(_ready(["pg_isready", "--quiet", "--host", HOST]))
        return container, token, (password, passwords, datadir, tls)

    port, container, token, state = _start_on_a_free_port(image, on_host, 5432, prepare)
    password, passwords, datadir, tls = state
    try:
        # The same set-up as local servers (accounts.py): roles.sql and the passwords.
        script = accounts.pg_script(passwords)
        script += f"\\connect template1\nCREATE EXTENSION IF NOT EXISTS {PG_STAT_STATEMENTS};\n"
        script += f"\\connect postgres\nCREATE EXTENSION IF NOT EXISTS {PG_STAT_STATEMENTS};\n"
        encoded = base64.b64encode(script.encode()).decode()
        code, output = container.exec(
            _as_postgres(["sh", "-c", f"echo {encoded} | base64 -d | "
             "psql -X -q -U postgres -d postgres -v ON_ERROR_STOP=1 -f -"])
        )  # fmt: skip
        if code != 0:
            raise ServerStartError(
                f"{image}: running {accounts.ROLES_SQL.name} failed: {output.decode().strip()}"
            )
        code, output = container.exec(
            _as_postgres(["psql", "-U", "postgres", "-XAtc", "SHOW server_version"])
        )
        host, port = container.get_container_host_ip(), container.get_exposed_port(port)
    except BaseException as exc:
        remove(container, datadir)
        cleanup.unregister(token)
        if isinstance(exc, ServerStartError) or not isinstance(exc, Exception):
            raise
        raise ServerStartError(f"Docker could not set up {image}: {exc}") from exc
    note = f"psql from {client_bindir or 'PATH'}"
    if own_clients:
        note += f"; {', '.join(VERSION_BOUND)} from {image}"
        client_bindir = image_clients(image, client_bindir)
    common = {"PGHOST": host, "PGPORT": str(port), "PGDATABASE": "postgres"}
    logins = {user: accounts.pg_env(common, user, pw) for user, pw in passwords.items()}
    admin = accounts.pg_env(common, accounts.PG_SUPERUSER, password)
    return Server(
        kind="pg",
        product="PostgreSQL",
        version=output.decode().split()[0] if code == 0 else _version(label, image),
        provider="docker",
        origin=image,
        bindir=client_bindir,
        admin_env=admin,
        monitor_env=logins[accounts.MONITOR],
        accounts={accounts.PG_SUPERUSER: admin, **logins},
        client_note=note,
        _stop=lambda: (remove(container, datadir), cleanup.unregister(token)),
        features=frozenset({PG_STAT_STATEMENTS, *(["ssl"] if tls else [])}),
        scratch=datadir,
        port=int(port),
        handle=container,
    )


def _label_of(kind: str, image: str) -> str:
    """The label ``image`` serves under in the mapping, else one from its tag."""
    for label, mapped in images().items():
        if mapped == image and _product(label)[0] == kind:
            return label
    prefix = "pg" if kind == "pg" else ("valkey" if "valkey" in image else "redis")
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    match = re.match(r"\d+(\.\d+)?" if kind == "redis" else r"\d+", tag)
    label = prefix + (match.group() if match else "")
    if not LABEL_RE.fullmatch(label):
        raise ServerConfigError(
            f"{image}: its tag names no version; map a label to it in {IMAGES_VAR}"
        )
    return label


# -- Redis and Valkey ------------------------------------------------------------------


def start_redis(
    image: str,
    settings: Mapping[str, str] | None,
    client: RedisClient | None,
    label: str | None = None,
) -> Server:
    """A Redis or Valkey container of ``image``, serving ``label`` (default: from the
    mapping); the label's product (``valkey8.1``) picks the testcontainers module."""
    from testcontainers.community.redis import RedisContainer
    from testcontainers.community.valkey import ValkeyContainer

    class AdminRedisContainer(RedisContainer):
        # users.acl turns the default user off: the readiness PING logs in as the admin.
        def get_client(self, **kwargs):
            return super().get_client(username=accounts.REDIS_ADMIN, **kwargs)

    settings = dict(settings or {})
    label = label or _label_of("redis", image)
    product = _product(label)[1]
    prepare_testcontainers()
    on_host = host_network()
    boot = on_host and local_engine()  # conf/redis/redis.conf, as local servers run
    if not boot:
        settings.pop("rename-command", None)  # without redis.conf nothing is renamed
    extra = setting_args(settings)  # refuses the settings the provider owns
    valkey = product == "Valkey"
    program = "valkey-server" if valkey else "redis-server"

    def prepare(port: int):
        # users.acl with passwords made up for this server: the same users as local servers.
        secrets_ = accounts.redis_passwords()
        passwords = accounts.redis_user_passwords(secrets_)
        password = passwords[accounts.REDIS_ADMIN]
        users = [
            arg for line in accounts.redis_acl(secrets_).splitlines() if line.strip()
            for arg in ("--user", *line.split()[1:])
        ]  # fmt: skip
        command = [
            program, "--port", str(port), *(["--bind", HOST] if on_host else []),
            "--save", "", "--appendonly", "no", *users, *extra,
        ]  # fmt: skip
        if valkey:
            container = _make(ValkeyContainer, image, label, port, on_host).with_password(password)
        else:
            container = _make(AdminRedisContainer, image, label, port, on_host, password=password)
        home = None
        if boot:
            home = scratch.make("redisdocker")
            home.chmod(0o777)
            conf, extra_args = redis_boot_copy(
                home, port, secrets_, dict(settings), _product(label)[2]
            )
            command = [program, str(conf), *extra_args]
            container.with_volume_mapping(str(home), str(home), "rw")
        container.with_command(command)
        ping = [
            "valkey-cli" if valkey else "redis-cli", "--no-auth-warning", "-p", str(port),
            "--user", accounts.REDIS_ADMIN, "-a", password, "ping",
        ]  # fmt: skip
        container.waiting_for(_ready(ping))
        token = cleanup.register(f"container {image}", lambda c=container, h=home: remove(c, h))
        return container, token, (password, passwords, home)

    port, container, token, state = _start_on_a_free_port(image, on_host, 6379, prepare)
    password, passwords, home = state
    try:
        host, port = container.get_container_host_ip(), int(container._get_exposed_port(port))
        with admin_client((host, port), password) as connection:  # client: the redis-cli
            version = reported_version(connection)
    except BaseException as exc:
        remove(container, home)
        cleanup.unregister(token)
        if not isinstance(exc, Exception):
            raise
        raise ServerStartError(f"Docker started {image} but INFO failed: {exc}") from exc
    logins = {u: accounts.redis_env(f"{host}:{port}", u, pw) for u, pw in passwords.items()}
    return Server(
        kind="redis",
        product=product,
        version=version or _version(label, image),
        provider="docker",
        origin=image,
        bindir=client.path.parent if client else None,
        admin_env=logins[accounts.REDIS_ADMIN],
        monitor_env=logins[accounts.MONITOR],
        accounts=logins,
        client_note=client.note if client else "no redis-cli found: install redis-tools",
        _stop=lambda: (remove(container, home), cleanup.unregister(token)),
        scratch=home,
        port=int(port),
        handle=container,
    )
