"""What a Docker server gets from this host: conf/'s files booted as local servers boot
them, in a host dir the container shares at the same path (``pg_boot_copy``,
``redis_boot_copy``, ``host_datadir``), and the version-bound PostgreSQL programs run
from the server's own image where no local install of its major exists
(``image_clients``).
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from . import accounts, cleanup, production, scratch
from .base import ServerConfigError
from .dockerengine import engine_client, owner_labels
from .ports import HOST
from .postgres import DEFAULT_SETTINGS
from .redis import setting_args


def host_datadir(container) -> Path:
    """A host dir (``scratch``: reaped if this process is killed) that holds the
    container's data directory at the same path; the container's user creates it."""
    path = scratch.make("pgdocker")
    path.chmod(0o777)  # the container's user writes here; this process removes it
    container.with_volume_mapping(str(path), str(path), "rw")
    container.with_env("PGDATA", str(path / "data"))
    return path


# Programs whose output or input depends on the server's major version: a container
# of a major with no local install runs them from its own image (pg_verifybackup 18
# cannot check a PostgreSQL 17 backup, pg_dump 18 writes settings 15 refuses).
VERSION_BOUND = (
    "pg_basebackup", "pg_verifybackup", "pg_waldump", "pg_dump", "pg_dumpall", "pg_restore",
    "pg_receivewal", "pg_recvlogical", "pg_amcheck",
)  # fmt: skip
LIBPQ_VARS = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGCONNECT_TIMEOUT",
    "PGTARGETSESSIONATTRS",
    "PGTZ",
    "PGDATESTYLE",
    "PGCLIENTENCODING",
)  # fmt: skip (files they name must be under this directory or the temp dir: mounted)
WRAPPER = """#!/bin/sh
# {program} of {image}, the server's own version: run in a throwaway container on the
# host's network, in this directory (and {tmp}), as this user. Written by {module}.
case "$PWD" in {tmp}|{tmp}/*) here="" ;; *) here="$PWD" ;; esac
exec docker run --rm --interactive --network host --user "$(id -u):$(id -g)" \\
    {labels} \\
    --volume {tmp}:{tmp} ${{here:+--volume "$here:$here"}} --workdir "$PWD" \\
    {env} \\
    --entrypoint {program} {image} "$@"
"""
_clients: dict[str, Path] = {}
_clients_lock = threading.Lock()


def image_clients(image: str, fallback: Path | None) -> Path:
    """A bin dir (made once per image and process): ``fallback``'s programs, except the
    ``VERSION_BOUND`` ones, which run from ``image`` (``WRAPPER``)."""
    with _clients_lock:
        if image in _clients:
            return _clients[image]
        root = scratch.make("pgclients")
        cleanup.register(f"client wrappers for {image}", lambda: scratch.remove(root))
        bindir = root / "bin"
        bindir.mkdir()
        if fallback is not None:
            for program in fallback.iterdir():
                if program.name not in VERSION_BOUND:
                    (bindir / program.name).symlink_to(program)
        labels = " ".join(f"--label {k}={v}" for k, v in owner_labels("client").items())
        env = " ".join(f"--env {name}" for name in LIBPQ_VARS)
        tmp = os.path.realpath(tempfile.gettempdir())
        for program in VERSION_BOUND:
            wrapper = bindir / program
            wrapper.write_text(WRAPPER.format(program=program, image=image, tmp=tmp,
                                              labels=labels, env=env, module=__name__))  # fmt: skip
            wrapper.chmod(0o755)
        root.chmod(0o755)
        _clients[image] = bindir
        return bindir


@functools.cache
def _ids(image: str, user: str) -> tuple[int, int] | None:
    """``user``'s uid and gid inside ``image``; None when that cannot be read."""
    client = engine_client()
    try:
        out = client.containers.run(
            image, entrypoint="sh", command=["-c", f"id -u {user}; id -g {user}"],
            network_mode="none", remove=True, labels=owner_labels("id"),
        )  # fmt: skip
        uid, gid = (int(x) for x in out.decode().split())
        return uid, gid
    except Exception:
        return None
    finally:
        client.close()


def pg_boot_copy(
    image: str, home: Path, port: int, settings: dict[str, str], major: str, client_ssl: bool
) -> tuple[Path, bool]:
    """conf/postgresql/postgresql.conf as local servers boot it (production.py), with
    pg_hba.conf, a certificate and the WAL archive, in ``home`` (the container sees it
    at the same path); (the boot copy, whether TLS is on). TLS is off, and hostssl rules
    become host rules, as on a local build without SSL, when the clients' psql has no
    SSL (``client_ssl``) or the key cannot be handed to the container's postgres user
    (that takes root here)."""
    file_settings = production.parse(production.PG_CONF)
    file_values = {s.key: s.value for s in file_settings}
    production.check_drill_settings("pg", settings, file_values)
    owner = _ids(image, "postgres") if os.geteuid() == 0 and client_ssl else None
    tls = owner is not None
    hba, archive, tls_dir = home / "pg_hba.conf", home / "wal-archive", home / "tls"
    archive.mkdir()
    archive.chmod(0o1777)
    tls_dir.mkdir()
    hba.write_text(production.pg_hba_text(tls))
    crt, key = production.make_certificate(tls_dir)
    if owner is not None:
        os.chown(key, *owner)
    for path, mode in ((hba, 0o644), (tls_dir, 0o755), (crt, 0o644)):
        path.chmod(mode)
    values = {
        **production.PG_TEST_VALUES,
        "port": str(port),
        "unix_socket_directories": "/var/run/postgresql",  # the image's own, for exec psql
        "hba_file": str(hba),
        "ssl_cert_file": str(crt),
        "ssl_key_file": str(key),
        "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
    }
    if not tls:
        values["ssl"] = "off"
    file_keys = set(file_values)
    values.update({k: v for k, v in settings.items() if k in file_keys})
    added = {**DEFAULT_SETTINGS, **{k: v for k, v in settings.items() if k not in file_keys}}
    text = production.pg_boot_text(
        file_settings,
        production.PG_CONF.read_text(encoding="utf-8"),
        values,
        int(major),
        added,
    )
    conf = home / "postgresql.conf"
    conf.write_text(text)
    conf.chmod(0o644)
    return conf, tls


def redis_boot_copy(
    home: Path, port: int, secrets_: Mapping[str, str], settings: dict[str, str], major: str
) -> tuple[Path, list[str]]:
    """conf/redis/redis.conf and users.acl as local servers boot them (production.py), in
    ``home``; (the boot copy, the drill's other settings as arguments)."""
    renames = settings.pop("rename-command", None)
    if renames not in (None, "keep"):
        raise ServerConfigError(
            f"rename-command={renames!r}: a drill may only keep the commands redis.conf "
            "renames away ('keep'), see production.DRILL_SETTINGS"
        )
    file_values = {
        key: " ".join(args)
        for key, args, _ in production.redis_directives(
            production.REDIS_CONF.read_text(encoding="utf-8")
        )
    }
    production.check_drill_settings("redis", settings, file_values)
    users = home / "users.acl"
    users.write_text(accounts.redis_acl(secrets_))
    values = {
        "bind": HOST,
        "port": str(port),
        "unixsocket": str(home / "redis.sock"),
        "logfile": '""',  # stdout: the container's log
        "dir": str(home),
        "aclfile": str(users),
    }
    conf = home / "redis.conf"
    conf.write_text(
        production.redis_boot_text(
            accounts.render(production.REDIS_CONF, secrets_),
            values,
            tuple(int(p) for p in major.split(".")),
            renames == "keep",
        )
    )
    for path in (users, conf):
        path.chmod(0o644)  # the container's redis user reads them; the dir is this test's
    return conf, setting_args(settings)
