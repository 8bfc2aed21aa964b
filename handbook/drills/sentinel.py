"""The Sentinel drill: a Redis master dies, three sentinels promote its replica.

A dedicated master and replica of one Redis install, watched by three
``redis-server --sentinel`` processes with short timings; the master is killed
(SIGKILL); the sentinels must elect the replica, which must take writes and keep every
key it had replicated. The page's ``sentinel_status.sh`` and ``redis_role.sh`` must say so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from handbook.drills.common import DrillError, output, redis_client, wait_for
from handbook.drills.objectives import Figures
from handbook.servers import cleanup, scratch
from handbook.servers.base import Server, ServerUnavailable
from handbook.servers.pool import ServerPool
from handbook.servers.ports import HOST, free_port
from handbook.servers.redis import LocalRedis

MASTER_NAME = "erpgo"
KEYS = 100  # keys written to the master and replicated before it dies
# The drill's Sentinel timings, in the sentinels' own config (conf/redis/sentinel.conf's
# 5000 and 60000 are production's): small so that a failover takes seconds, not a
# minute. 500 ms is still ten of a sentinel's 100 ms ticks, so a loaded machine does not
# see a live master down. What is left of the drill's wait is Redis's own fixed periods
# (a hello every 2 s, by which the sentinels find each other and learn the new master).
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 3000
# The master's one setting that differs from conf/redis/redis.conf (declared with its
# reason in handbook/servers/production.py DRILL_SETTINGS): its replica's first sync
# starts at once instead of after Redis's 5 s wait for more replicas.
MASTER_SETTINGS = {"repl-diskless-sync-delay": "0"}


@dataclass(kw_only=True)
class SentinelFailover(Figures):
    """Who is master after the failover, and what it kept."""

    replicas_acknowledged: int  # WAIT's answer before the master died: replicas with every key
    sentinel_status: str  # sentinel_status.sh after the failover
    role: str  # redis_role.sh on the promoted replica
    new_master_port: int  # the replica's port: the one the sentinels must name
    keys_kept: int  # of the KEYS replicated keys, those the new master has

    def problems(self) -> list[str]:
        where, found = f"{self.name} on {self.label}", []
        if f"master: {HOST}:{self.new_master_port}" not in self.sentinel_status:
            found.append(
                f"{where}: sentinel_status.sh does not name :{self.new_master_port} as the master"
            )
        if not self.role.startswith("master"):
            found.append(f"{where}: redis_role.sh on the promoted replica: {self.role!r}")
        if self.keys_kept != KEYS:
            found.append(f"{where}: {self.keys_kept} of {KEYS} replicated keys survived")
        return found


class Sentinel:
    """``redis-server --sentinel`` on a free loopback port, its config in a temp dir."""

    def __init__(self, binary: Path, master: Server, password: str, quorum: int = 2) -> None:
        self.root = scratch.make("redis")
        self.port = free_port()
        self._token = cleanup.register(f"Redis Sentinel in {self.root}", self.stop)
        conf = self.root / "sentinel.conf"
        conf.touch(mode=0o600)
        conf.write_text(
            "# written by handbook.drills.sentinel for one drill\n"
            f"port {self.port}\nbind {HOST}\ndaemonize no\ndir {self.root}\n"
            f'logfile "{self.root / "sentinel.log"}"\n'
            f"sentinel monitor {MASTER_NAME} {HOST} {master.port} {quorum}\n"
            f"sentinel auth-user {MASTER_NAME} erpgo_sentinel\n"
            f"sentinel auth-pass {MASTER_NAME} {password}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self.proc = subprocess.Popen(
            [os.fspath(binary), os.fspath(conf), "--sentinel"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            cwd=self.root, start_new_session=True,
        )  # fmt: skip
        scratch.record(self.root, server_pid=self.proc.pid)
        self.client = redis.Redis(host=HOST, port=self.port, socket_timeout=2)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def master(self) -> dict:
        """What this sentinel knows of the master (SENTINEL MASTER)."""
        return self.client.sentinel_master(MASTER_NAME)

    def master_port(self) -> int:
        _, port = self.client.sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def log(self) -> str:
        try:
            lines = (self.root / "sentinel.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in lines[-15:])

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        scratch.remove(self.root)
        cleanup.unregister(self._token)


@contextlib.contextmanager
def sentinels(binary: Path, master: Server, password: str) -> Iterator[list[Sentinel]]:
    """Three sentinels watching ``master``; stopped when the block ends."""
    started: list[Sentinel] = []
    try:
        for _ in range(3):
            started.append(Sentinel(binary, master, password))
        yield started
    finally:
        for sentinel in started:
            sentinel.stop()


def sentinel_failover(pool: ServerPool, label: str) -> SentinelFailover:
    """Kill a Redis master watched by three sentinels; the replica must take over."""
    master = pool.start_private(label, MASTER_SETTINGS)
    # One deployment's passwords: redis.conf's masteruser/masterauth (erpgo_replica) and
    # the sentinels' erpgo_sentinel log in to either server (conf/redis/users.acl).
    replica = pool.start_private(label, same_passwords_as=master)
    try:
        if not isinstance(master.handle, LocalRedis) or not isinstance(replica.handle, LocalRedis):
            raise ServerUnavailable(f"{label}: the Sentinel drill needs local Redis binaries")
        password = master.account("erpgo_sentinel")["REDISCLI_AUTH"]
        old, new = redis_client(master), redis_client(replica)
        new.replicaof(HOST, master.port)
        wait_for(
            lambda: new.info("replication").get("master_link_status") == "up",
            f"the {label} replica syncing from its master",
        )
        writes = old.pipeline(transaction=False)
        for number in range(KEYS):
            writes.set(f"order:{number}", "paid")
        writes.execute()
        synced = old.wait(1, 5000)
        old.close()
        with sentinels(master.handle.install.server, master, password) as watching:

            def ready() -> bool:
                views = [s.master() for s in watching]
                return all(
                    v.get("num-other-sentinels") == 2 and v.get("num-slaves") == 1 for v in views
                )

            wait_for(ready, f"three {label} sentinels finding each other and the replica")
            started = time.perf_counter()
            assert master.handle.proc is not None
            master.handle.proc.send_signal(signal.SIGKILL)
            try:
                wait_for(
                    lambda: all(s.master_port() == replica.port for s in watching),
                    f"the {label} sentinels electing the replica as master",
                )
            except DrillError as exc:
                raise DrillError(f"{exc}; a sentinel's log:\n{watching[0].log()}") from None
            to_master = time.perf_counter() - started
            wait_for(
                lambda: new.set("order:after-failover", "paid"),
                f"the promoted {label} replica accepting writes",
            )
            to_writes = time.perf_counter() - started
            # Sentinels here have no password: no REDISCLI_AUTH (redis-cli 6.2 would send it).
            env = {k: v for k, v in replica.env("admin").items() if not k.startswith("REDIS")}
            env["SENTINEL_URL"] = watching[0].url
            status = output("shell/dr/sentinel_status.sh", replica, env)
            role = output("shell/dr/redis_role.sh", replica, replica.env("monitor"))
            kept = new.mget([f"order:{n}" for n in range(KEYS)]).count("paid")
        new.close()
        return SentinelFailover(
            name="sentinel-failover",
            label=label,
            server=f"{replica.product} {replica.version}",
            replicas_acknowledged=synced,
            sentinel_status=status,
            role=role,
            new_master_port=replica.port,
            keys_kept=kept,
            measured={
                "to_new_master_seconds": to_master,
                "to_writes_seconds": to_writes,
                "down_after_ms": float(DOWN_AFTER_MS),
            },
        )
    finally:
        replica.stop()
        master.stop()
