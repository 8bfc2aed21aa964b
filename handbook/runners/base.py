"""What every runner takes (a ``Snippet`` and a ``Target``) and gives back (an ``Outcome``)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handbook.servers.account import Account
    from handbook.servers.base import Server
    from handbook.snippet import Snippet

TIMEOUT = 120  # seconds a snippet may run before the runner gives up on it


@dataclass(frozen=True)
class Target:
    """Where a snippet runs and as whom: the same for every kind of snippet.

    ``env`` is the client's whole environment (PG* for psql, REDIS_URL and REDISCLI_AUTH
    for redis-cli, PATH with the clients first); ``servers`` names what it runs on in
    messages. ``variables`` are what a reader sets when running the snippet: psql
    variables (``psql -v name=value``) for SQL, environment variables for shell; the
    other kinds take none. ``account``: run as that OS account (a server's own, for
    programs that refuse root), from a directory it owns.
    """

    env: Mapping[str, str]
    servers: str  # "PostgreSQL 18.6, local", "promtool 2.42.0 unit test"
    variables: Mapping[str, str] = field(default_factory=dict)
    account: Account | None = None
    timeout: float = TIMEOUT

    @classmethod
    def on(cls, servers: Server | Sequence[Server], env: Mapping[str, str], **options) -> Target:
        """The target for ``env`` on ``servers`` (one or several), named as they describe
        themselves."""
        listed = [servers] if not isinstance(servers, Sequence) else list(servers)
        return cls(env, ", ".join(s.describe() for s in listed), **options)


@dataclass
class Outcome:
    """What running a snippet gave: ``ok``, what it printed, and when not ok, why.

    ``message`` is located and names the servers: ``snippets/x.sql:7: ERROR: ...
    (PostgreSQL 18.6, local)``. ``returncode`` is the exit code of the program that ran
    (psql, redis-cli, bash, promtool); None when it never ran or did not finish. A
    redis-cli run can be not ok with exit code 0: redis-cli exits 0 after an error reply.
    """

    ok: bool
    output: str
    message: str = ""
    returncode: int | None = 0

    def report(self, title: str = "output") -> str:
        """The message, then the output under a ``--- title ---`` line when there is one."""
        output = self.output.rstrip()
        return f"{self.message}\n--- {title} ---\n{output}" if output else self.message


def failed(snippet: Snippet, target: Target, line: int, detail: str) -> Outcome:
    """A run that could not start or was refused before it ran: ``file:line: detail (servers)``."""
    return Outcome(False, "", f"{snippet.name}:{line}: {detail} ({target.servers})", None)


def masked(output: str, masks: list[re.Pattern[str]]) -> str:
    """The output with every match of the snippet's own ``mask:`` patterns replaced."""
    for pattern in masks:
        output = pattern.sub("<masked>", output)
    return output


def execute(
    snippet: Snippet, target: Target, command: list[str], **kwargs
) -> subprocess.CompletedProcess | Outcome:
    """Run ``command`` for ``snippet`` with the target's environment (and account); a
    failed Outcome if it does not finish within the target's timeout."""
    if target.account is not None:
        command = target.account.command(command)
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=target.timeout,
            check=False,
            env=dict(target.env),
            **kwargs,
        )
    except subprocess.TimeoutExpired:
        return failed(
            snippet,
            target,
            snippet.body_start,
            f"did not finish in {target.timeout:.0f} s: a snippet must end on its own; bound "
            "it (LIMIT, a timeout) or split it",
        )


def no_variables(snippet: Snippet, target: Target) -> Outcome | None:
    """A failed Outcome when ``target`` sets variables for a kind of snippet that takes none."""
    if not target.variables:
        return None
    return failed(
        snippet,
        target,
        snippet.body_start,
        f"a {snippet.kind} snippet takes no variables, got {', '.join(sorted(target.variables))}",
    )
