"""A file under ``snippets/`` and the header that says how to run it.

The first line is a comment saying what the snippet shows. Header lines follow,
one ``-- key: value`` (SQL) or ``# key: value`` (shell, redis-cli, PromQL) each;
the first line that is not a header line starts the body, which is what a page
shows and what a reader runs.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

from handbook.paths import ROOT, rel

KINDS = {".sql": "sql", ".sh": "shell", ".redis": "redis", ".promql": "promql"}
COMMENT = {"sql": "--", "shell": "#", "redis": "#", "promql": "#"}
KEYS = (
    "page", "mode", "requires", "extension", "needs", "lint-only", "verified-by", "mask", "user",
    "via", "run", "changes",
)  # fmt: skip
# How a reader runs a shell snippet: a script (bash <file>; it stops at the first failure)
# or pasted into a terminal (then it never ends the reader's shell: no set -e, no exit).
RUNS = ("script", "paste")
TOP_LEVEL_EXIT = re.compile(r"^(exit\b|set\s+(-\w*e|-o\s+errexit))")
VIAS = ("pgbouncer",)  # how a snippet reaches PostgreSQL when not directly
MODES = ("read-only", "writes")
CHOICES = {"mode": MODES, "run": RUNS, "via": VIAS}  # header keys with a fixed set of values
NEEDS = ("pg", "redis")
HEADER_LINE = re.compile(r"^(?P<key>[a-z][a-z-]*):\s*(?P<value>.*)$")
REQUIREMENT = re.compile(r"^(?P<kind>pg|redis)\s*(?P<op>>=|<=|==|>|<)\s*(?P<version>\d+(\.\d+)?)$")
OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}


class SnippetError(ValueError):
    """A snippet file that breaks the header rules; the message is ``file:line: what to do``."""


@dataclass(frozen=True)
class Requirement:
    kind: str  # "pg" or "redis"
    op: str
    version: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.kind}{self.op}{'.'.join(map(str, self.version))}"

    def allows(self, kind: str, version: tuple[int, ...]) -> bool:
        if kind != self.kind:
            return True
        return OPERATORS[self.op](version[: len(self.version)], self.version)


@dataclass
class Snippet:
    path: Path
    kind: str  # "sql", "shell", "redis", "promql"
    title: str
    page: str | None = None
    mode: str = "read-only"
    requires: list[Requirement] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    lint_only: str | None = None
    verified_by: str | None = None  # a lint-only snippet's own test: "tests/drills/test_x.py"
    masks: list[re.Pattern[str]] = field(default_factory=list)
    # Who it runs as, as its page tells the reader: "erpgo_monitor", or one user per server
    # ("pg=erpgo_monitor, redis=erpgo_admin"); checked against conf/ (servers.accounts).
    user: str | None = None
    # "pgbouncer": it connects as the application does, through conf/pgbouncer's pooler.
    via: str | None = None
    run: str = "script"  # shell snippets: "script" or "paste" (RUNS)
    # A 'mode: writes' snippet: what running it changes, in a reader's words (the pages
    # show it as "This changes ..."); "nothing: ..." when it only needs a writing login.
    changes: str | None = None
    body_start: int = 2  # 1-based line of the first body line
    header: dict[str, int] = field(default_factory=dict)  # key -> its (last) line in the file
    name: str = ""  # project-relative path used in every message: "snippets/sql/x.sql"

    def __post_init__(self) -> None:
        self.name = self.name or rel(self.path)

    @property
    def read_only(self) -> bool:
        return self.mode == "read-only"

    def body(self) -> str:
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        return "".join(lines[self.body_start - 1 :])

    def servers_needed(self) -> list[str]:
        """Which server kinds the snippet runs against: ``["pg"]``, ``["redis"]``, both or none."""
        if self.lint_only:
            return []
        if self.kind == "sql":
            return ["pg"]
        if self.kind == "redis":
            return ["redis"]
        if self.kind == "shell":
            return list(self.needs)
        return []

    def gate(self, kind: str, version: tuple[int, ...], features: set[str]) -> str | None:
        """Why the snippet does not apply to a server, or None if it does."""
        for requirement in self.requires:
            if not requirement.allows(kind, version):
                return f"needs {requirement}"
        if kind == "pg":
            for extension in self.extensions:
                if extension not in features:
                    return f"needs the {extension} extension"
        return None


def parse(path: Path, root: Path = ROOT) -> Snippet:
    """Read a snippet's header; raise SnippetError naming the file and line at fault."""
    kind = KINDS.get(path.suffix)
    where = rel(path, root)
    if kind is None:
        raise SnippetError(f"{where}:1: unknown snippet type {path.suffix!r}: use {sorted(KINDS)}")
    lines = path.read_text(encoding="utf-8").splitlines()
    marker = COMMENT[kind]
    if not lines or not lines[0].startswith(marker + " ") or not lines[0][len(marker) :].strip():
        raise SnippetError(
            f"{where}:1: the first line must be a {marker!r} comment saying what the snippet shows"
        )
    snippet = Snippet(path=path, kind=kind, title=lines[0][len(marker) :].strip(), name=where)
    number = 1
    for number, line in enumerate(lines[1:], start=2):
        if not line.startswith(marker + " "):
            break
        match = HEADER_LINE.match(line[len(marker) :].strip())
        if not match:
            break  # an ordinary comment starts the body
        _apply(snippet, match["key"], match["value"].strip(), f"{where}:{number}")
        snippet.header[match["key"]] = number
    else:
        number = len(lines) + 1
    snippet.body_start = number
    _check(snippet, lines, where)
    return snippet


def _apply(snippet: Snippet, key: str, value: str, where: str) -> None:
    if key not in KEYS:
        raise SnippetError(f"{where}: unknown header key {key!r}: known keys are {', '.join(KEYS)}")
    if not value:
        raise SnippetError(f"{where}: header key {key!r} has no value")
    if key in CHOICES:
        if value not in CHOICES[key]:
            choices = ", ".join(CHOICES[key])
            raise SnippetError(f"{where}: {key} must be one of {choices}, not {value!r}")
        setattr(snippet, key, value)
    elif key == "page":
        snippet.page = value
    elif key == "requires":
        for part in value.split(","):
            match = REQUIREMENT.match(part.strip())
            if not match:
                raise SnippetError(
                    f"{where}: cannot read requirement {part.strip()!r}: "
                    "write e.g. pg>=15 or redis>=7.0"
                )
            version = tuple(int(p) for p in match["version"].split("."))
            snippet.requires.append(Requirement(match["kind"], match["op"], version))
    elif key == "extension":
        snippet.extensions.extend(p.strip() for p in value.split(","))
    elif key == "needs":
        needs = [p.strip() for p in value.split(",")]
        unknown = [n for n in needs if n not in NEEDS]
        if unknown:
            raise SnippetError(f"{where}: needs {unknown}: a shell snippet needs pg, redis or both")
        snippet.needs = needs
    elif key == "lint-only":
        snippet.lint_only = value
    elif key == "verified-by":
        snippet.verified_by = value
    elif key == "user":
        snippet.user = value
    elif key == "changes":
        snippet.changes = value
    elif key == "mask":
        try:
            snippet.masks.append(re.compile(value))
        except re.error as exc:
            raise SnippetError(f"{where}: mask is not a valid regular expression: {exc}") from None


def _check(snippet: Snippet, lines: list[str], where: str) -> None:
    if snippet.page is None:
        raise SnippetError(f"{where}:2: no 'page:' header: name the page that shows this snippet")
    if snippet.kind == "shell":
        body = [ln.strip() for ln in lines[snippet.body_start - 1 :]]
        code = [ln for ln in body if ln and not ln.startswith("#")]
        if snippet.run == "paste":
            for number, line in enumerate(lines[snippet.body_start - 1 :], snippet.body_start):
                if TOP_LEVEL_EXIT.match(line):
                    raise SnippetError(
                        f"{where}:{number}: a snippet pasted into a terminal must not end the "
                        f"reader's shell ({line.strip()!r}): drop it, or make it 'run: script'"
                    )
        elif not code or code[0] != "set -euo pipefail":
            raise SnippetError(
                f"{where}:{snippet.body_start}: a shell snippet's first command must be "
                "'set -euo pipefail' (a snippet meant to be pasted says 'run: paste')"
            )
        if not snippet.needs and not snippet.lint_only:
            raise SnippetError(
                f"{where}:2: say what the snippet talks to: '# needs: pg', '# needs: redis', or "
                "'# lint-only: <why it cannot run here>'"
            )
    if snippet.changes and snippet.read_only:
        raise SnippetError(
            f"{where}:{snippet.header['changes']}: 'changes:' says what a 'mode: writes' "
            "snippet changes; a read-only one changes nothing: drop the line"
        )
    if snippet.lint_only and snippet.kind != "shell":
        line = snippet.header["lint-only"]
        raise SnippetError(f"{where}:{line}: only shell snippets can be lint-only")
    if snippet.verified_by and not snippet.lint_only:
        raise SnippetError(
            f"{where}:{snippet.header['verified-by']}: 'verified-by:' is for lint-only snippets "
            "that a test of their own runs; the snippet harness already runs this one"
        )
    if snippet.kind == "promql":
        # PromQL needs no server: promtool evaluates it against its .test.yml sidecar.
        if not "".join(lines[snippet.body_start - 1 :]).strip():
            raise SnippetError(
                f"{where}:{snippet.body_start}: no PromQL expression after the header"
            )
        for key, value in (("needs", snippet.needs), ("requires", snippet.requires)):
            if value:
                raise SnippetError(
                    f"{where}:{snippet.header[key]}: a PromQL snippet has no '{key}:': promtool "
                    "evaluates it against the series of its .test.yml sidecar, no server"
                )
