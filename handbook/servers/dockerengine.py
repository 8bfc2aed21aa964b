"""The Docker engine the provider (``docker.py``) starts its containers on: whether one
answers, a client of it, whether containers share the host's network, and the labels
that find this run's containers, remove them, and reap those a killed run left behind.

Cleanup, without testcontainers' Ryuk (its image must be pulled; it is used only when
``TESTCONTAINERS_RYUK_DISABLED=false`` says so): every container carries the labels of
``owner_labels`` (this run's id, the host, the owning process and its start time) and is
removed when its server stops, on a failed start, at exit, on SIGTERM/SIGHUP and after
Ctrl-C (see ``cleanup.py``). A process killed with SIGKILL cannot do that:
``reap_stale()``, run once per process before its first container, removes containers
whose owner is gone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
import threading
import uuid
import warnings
from pathlib import Path

from . import scratch

DEFAULT_SOCKET = "/var/run/docker.sock"

# Labels on every container this provider starts (reverse-DNS keys, as Docker asks).
PREFIX = "org.erpgo.handbook"
RUN_LABEL, HOST_LABEL, PID_LABEL, START_LABEL, SERVER_LABEL = (
    f"{PREFIX}.run", f"{PREFIX}.host", f"{PREFIX}.owner-pid", f"{PREFIX}.owner-start",
    f"{PREFIX}.server",
)  # fmt: skip
RUN_ID = uuid.uuid4().hex[:12]  # one per process: what `docker ps --filter label=...` finds


def engine_available(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers ping; False fast (no retries) otherwise."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not os.path.exists(DEFAULT_SOCKET):
        return False
    if host.startswith("unix://") and not os.path.exists(host.removeprefix("unix://")):
        return False
    try:
        client = engine_client(timeout)
    except Exception:  # no docker package, or the engine is absent or refuses: no engine
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            client.close()


def engine_client(timeout: float = 60.0):
    import docker

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        return docker.from_env(timeout=timeout)


def local_engine() -> bool:
    host = os.environ.get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")


@functools.cache
def _host_network(docker_host: str) -> bool:
    """Share the host's network: a local engine on Linux that is not Docker Desktop's VM."""
    if not (local_engine() and sys.platform.startswith("linux")):
        return False
    client = engine_client()
    try:
        info = client.info()
    finally:
        client.close()
    return info.get("OSType") == "linux" and "Docker Desktop" not in info.get("OperatingSystem", "")


def host_network() -> bool:
    return _host_network(os.environ.get("DOCKER_HOST", ""))


# -- testcontainers, set up once per process -------------------------------------------

_setup_lock = threading.Lock()
_set_up = False


_reaped = False


def reap_once() -> None:
    """``reap_stale()`` once per process, when the engine answers (else: nothing to reap)."""
    global _reaped
    with _setup_lock:
        if _reaped:
            return
        _reaped = True
        if engine_available():
            reap_stale()


def prepare_testcontainers() -> None:
    """Before the first container: Ryuk off unless asked for, a quick readiness poll."""
    global _set_up
    reap_once()
    with _setup_lock:
        if _set_up:
            return
        from testcontainers.core.config import testcontainers_config as config

        if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:
            config.ryuk_disabled = True
        if "TC_POOLING_INTERVAL" not in os.environ:  # 1 s by default: most of a start
            config.sleep_time = 0.1
            if "TC_MAX_TRIES" not in os.environ:
                config.max_tries = 1200  # the same 120 s in all
        _set_up = True


def owner_labels(label: str) -> dict[str, str]:
    return {
        RUN_LABEL: RUN_ID,
        HOST_LABEL: socket.gethostname(),
        PID_LABEL: str(os.getpid()),
        START_LABEL: scratch.process_start_time(os.getpid()) or "",
        SERVER_LABEL: label,
    }


def reap_stale() -> list[str]:
    """Remove this host's handbook containers whose owning process is gone; their names."""
    client = engine_client()
    removed = []
    try:
        # sparse: the list's own answer, without inspecting each container in turn (a
        # container another run removes meanwhile made that inspection fail with 404)
        for container in client.containers.list(
            all=True, sparse=True, filters={"label": RUN_LABEL}
        ):
            labels = container.attrs.get("Labels") or {}
            if labels.get(HOST_LABEL) != socket.gethostname():
                continue  # another machine's, on a shared engine: not ours to judge
            try:
                pid = int(labels.get(PID_LABEL, ""))
            except ValueError:
                pid = 0
            alive = pid and scratch.process_alive(pid)
            if alive and scratch.process_start_time(pid) == labels.get(START_LABEL):
                continue  # its owner still runs
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
                removed.append((container.attrs.get("Names") or [container.id])[0].lstrip("/"))
    finally:
        client.close()
    return removed


def remove(container, datadir: Path | None = None) -> None:
    """Remove the container (and the host dir it shares: its data directory, conf files)."""
    if datadir is not None:
        # Its files belong to the container's postgres user: remove them from inside.
        with contextlib.suppress(Exception):
            container.exec(["sh", "-c", f'rm -rf "{datadir}/data"'])
    with contextlib.suppress(Exception):
        container.stop()
    scratch.remove(datadir)


def logs(container) -> str:
    with contextlib.suppress(Exception):
        return b"".join(container.get_logs()).decode(errors="replace")
    return ""
