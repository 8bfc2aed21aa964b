"""The unprivileged OS account PostgreSQL runs as when we are root.

PostgreSQL refuses to run as root (``initdb: cannot be run as root``). As root we run
initdb, pg_ctl, postgres (and, for drills, pg_basebackup) as ``postgres`` when that
account exists, else as a system account ``handbook`` created on first use. Not as
root, everything simply runs as the current user.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import ServerUnavailable

PREFERRED = "postgres"
CREATED = "handbook"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()

    def command(self, args: Sequence[str | os.PathLike]) -> list[str]:
        """``args`` prefixed so that they run as this account (no prefix for ourselves)."""
        args = [os.fspath(a) for a in args]
        if self.is_self:
            return args
        setpriv = shutil.which("setpriv")
        if setpriv:
            ids = [f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"]
            return [setpriv, *ids, "--", *args]
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", self.name, "--", *args]
        raise ServerUnavailable(
            "running as root, PostgreSQL must run as an unprivileged user, but neither "
            "`setpriv` nor `runuser` is installed: install util-linux, or run as a normal user"
        )

    def run(self, args: Sequence[str | os.PathLike], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.command(args), check=False, **kwargs)

    def own(self, *paths: Path) -> None:
        """Make ``paths`` (not recursively) belong to this account."""
        if not self.is_self:
            for path in paths:
                os.chown(path, self.uid, self.gid)

    def unreadable(self, paths: Iterable[Path | str]) -> list[str]:
        """Those of ``paths`` this account cannot read (directories: cannot list)."""
        paths = [os.fspath(p) for p in paths]
        if self.is_self or not paths:
            return [p for p in paths if not os.access(p, os.R_OK)]
        check = 'for f; do test -r "$f" || echo "$f"; done'
        result = self.run(["sh", "-c", check, "sh", *paths], cwd="/")
        return [line for line in result.stdout.splitlines() if line]


@functools.cache
def service_account() -> Account:
    """The account to run PostgreSQL as (creating ``handbook`` if needed, as root)."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    for name in (PREFERRED, CREATED):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    useradd = shutil.which("useradd")
    if not useradd:
        raise ServerUnavailable(
            f"running as root, PostgreSQL needs an unprivileged user; there is no "
            f"`{PREFERRED}` user and no `useradd` to create `{CREATED}`: create one "
            f"(e.g. `adduser --system {CREATED}`), or run as a normal user"
        )
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", CREATED],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode not in (0, 9):  # 9: it exists (another process was faster)
        raise ServerUnavailable(
            f"running as root, could not create the system user `{CREATED}` to run "
            f"PostgreSQL: {result.stderr.strip()}; create it or run as a normal user"
        )
    entry = pwd.getpwnam(CREATED)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
