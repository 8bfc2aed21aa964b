"""Servers in containers, through testcontainers' own modules, on pinned image tags.

Only used when a Docker engine answers (``engine_available()``, which returns False in
milliseconds when there is none). The containers get the same accounts as local
servers: a superuser / ``default`` user with a password made up per run and the
read-only ``handbook_monitor``. Ports are published on 127.0.0.1 only when the engine
is local. testcontainers' Ryuk container removes them if this process dies.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from collections.abc import Mapping
from pathlib import Path

from . import cleanup
from .base import Candidate, Server, ServerStartError
from .postgres import (
    MONITOR,
    MONITOR_OPTIONS,
    MONITOR_SETTINGS,
    PG_STAT_STATEMENTS,
    scram_verifier,
)
from .redis import MONITOR_ACL, RedisClient

# Exact tags, never `latest`: labels are known without pulling, results are repeatable.
PG_IMAGES = (
    "postgres:14.25",
    "postgres:15.20",
    "postgres:16.16",
    "postgres:17.12",
    "postgres:18.6",
)
REDIS_IMAGES = ("redis:6.2.14", "redis:7.0.15", "redis:7.2.4", "redis:7.4.2", "valkey/valkey:8.1.1")
DEFAULT_SOCKET = "/var/run/docker.sock"


def engine_available(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers ping; False fast (no retries) otherwise."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not os.path.exists(DEFAULT_SOCKET):
        return False
    if host.startswith("unix://") and not os.path.exists(host.removeprefix("unix://")):
        return False
    try:
        import docker
    except ImportError:
        return False
    client = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=timeout)
            return bool(client.ping())
        except Exception:  # the engine is absent, refuses, or speaks another API: no engine
            return False
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()


def _version(image: str) -> str:
    return image.rsplit(":", 1)[1]


def _local_engine() -> bool:
    host = os.environ.get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")


def _register(container, image: str) -> int:
    return cleanup.register(f"container {image}", container.stop)


def pg_candidates(client_bindir: Path | None = None) -> list[Candidate]:
    return [
        Candidate(
            kind="pg",
            product="PostgreSQL",
            version=_version(image),
            provider="docker",
            origin=image,
            start=lambda settings=None, image=image: start_pg(image, settings, client_bindir),
            features=frozenset({PG_STAT_STATEMENTS}),
        )
        for image in PG_IMAGES
    ]


def redis_candidates(client: RedisClient | None = None) -> list[Candidate]:
    return [
        Candidate(
            kind="redis",
            product="Valkey" if image.startswith("valkey/") else "Redis",
            version=_version(image),
            provider="docker",
            origin=image,
            start=lambda settings=None, image=image: start_redis(image, settings, client),
        )
        for image in REDIS_IMAGES
    ]


def start_pg(image: str, settings: Mapping[str, str] | None, client_bindir: Path | None) -> Server:
    from testcontainers.community.postgres import PostgresContainer

    password, monitor_password = secrets.token_hex(16), secrets.token_hex(16)
    merged = {"shared_preload_libraries": PG_STAT_STATEMENTS, **(settings or {})}
    command = ["postgres"] + [arg for k, v in merged.items() for arg in ("-c", f"{k}={v}")]
    container = PostgresContainer(
        image, username="postgres", password=password, dbname="postgres", driver=None
    ).with_command(command)
    if _local_engine():
        container.with_bind_ports(5432, ("127.0.0.1", None))
    token = _register(container, image)
    try:
        container.start()
        sql = [
            f"CREATE ROLE {MONITOR} LOGIN PASSWORD '{scram_verifier(monitor_password)}';",
            f"GRANT pg_monitor, pg_read_all_data TO {MONITOR};",
            *(f"ALTER ROLE {MONITOR} SET {k} = '{v}';" for k, v in MONITOR_SETTINGS.items()),
            f"CREATE EXTENSION IF NOT EXISTS {PG_STAT_STATEMENTS};",
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",  # as 15+ does; matters on 14
        ]
        code, output = container.exec(
            [
                "psql",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                " ".join(sql),
            ]
        )
        if code != 0:
            raise ServerStartError(f"{image}: creating {MONITOR} failed: {output.decode().strip()}")
        code, output = container.exec(["psql", "-U", "postgres", "-XAtc", "SHOW server_version"])
        host, port = container.get_container_host_ip(), container.get_exposed_port(5432)
    except ServerStartError:
        container.stop()
        cleanup.unregister(token)
        raise
    except Exception as exc:
        with contextlib.suppress(Exception):
            container.stop()
        cleanup.unregister(token)
        raise ServerStartError(f"Docker could not start {image}: {exc}") from exc
    common = {"PGHOST": host, "PGPORT": str(port), "PGDATABASE": "postgres"}
    return Server(
        kind="pg",
        product="PostgreSQL",
        version=output.decode().split()[0] if code == 0 else _version(image),
        provider="docker",
        origin=image,
        bindir=client_bindir,
        admin_env={**common, "PGUSER": "postgres", "PGPASSWORD": password},
        monitor_env={
            **common,
            "PGUSER": MONITOR,
            "PGPASSWORD": monitor_password,
            "PGOPTIONS": MONITOR_OPTIONS,
        },
        client_note=f"psql from {client_bindir or 'PATH'}",
        _stop=lambda: (container.stop(), cleanup.unregister(token)),
        features=frozenset({PG_STAT_STATEMENTS}),
        port=int(port),
        handle=container,
    )


def start_redis(
    image: str, settings: Mapping[str, str] | None, client: RedisClient | None
) -> Server:
    from testcontainers.community.redis import RedisContainer

    password, monitor_password = secrets.token_hex(16), secrets.token_hex(16)
    program = "valkey-server" if image.startswith("valkey/") else "redis-server"
    command = [
        program, "--save", "", "--appendonly", "no",
        "--user", "default", "on", f">{password}", "~*", "&*", "+@all",
        "--user", MONITOR, "on", f">{monitor_password}", "~*", "resetchannels",
        *MONITOR_ACL.split(),
    ]  # fmt: skip
    for key, value in (settings or {}).items():
        command += [f"--{key}", *(str(value).split() or [""])]
    container = RedisContainer(image, password=password).with_command(command)
    if _local_engine():
        container.with_bind_ports(6379, ("127.0.0.1", None))
    token = _register(container, image)
    try:
        container.start()
        host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
    except Exception as exc:
        with contextlib.suppress(Exception):
            container.stop()
        cleanup.unregister(token)
        raise ServerStartError(f"Docker could not start {image}: {exc}") from exc
    base = f"{host}:{port}/0"
    return Server(
        kind="redis",
        product="Valkey" if program == "valkey-server" else "Redis",
        version=_version(image),
        provider="docker",
        origin=image,
        bindir=client.path.parent if client else None,
        admin_env={"REDIS_URL": f"redis://default:{password}@{base}", "REDISCLI_AUTH": password},
        monitor_env={
            "REDIS_URL": f"redis://{MONITOR}:{monitor_password}@{base}",
            "REDISCLI_AUTH": monitor_password,
        },
        client_note=client.note if client else "no redis-cli found: install redis-tools",
        _stop=lambda: (container.stop(), cleanup.unregister(token)),
        port=int(port),
        handle=container,
    )
