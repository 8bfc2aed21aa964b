"""pytest plugin: what this run could not verify, listed once at the end of the run.

A test whose tool is missing calls :func:`unavailable` (tests import it from
``handbook.pytest_plugin``): outside CI that is a skip saying why, under ``CI=true`` a
failure. A snippet that exits 127 for a program that is not installed is one too
(:func:`missing_command`). This plugin collects those skips from the test reports and
closes the run with one line naming each thing left unverified and the package that
adds it::

    not verified here: the PDF (no TeX: apt-get install ...), the browser tests (no
    Chromium: apt-get install chromium)

followed by a line per item with the number of tests and the first skip's reason. Only
skips raised through ``unavailable()`` count: a snippet that does not apply to a server
version, or a test meant for root, is not a missing tool. A reason that names none of
the tools in :data:`KNOWN` is listed as it is, under the files of the tests it skipped.
Loaded by the root ``conftest.py``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import NoReturn

import pytest

TEX_PACKAGES = (
    "latexmk texlive-latex-recommended texlive-fonts-recommended texlive-latex-extra tex-gyre"
)


@dataclass(frozen=True)
class Tool:
    """A system tool the tests use, what is left unverified without it, and what adds it."""

    what: str  # "the PDF": what goes unverified
    lacks: str  # "TeX": what this machine lacks
    install: str  # the command that adds it (Debian package names, as .ci/run installs them)
    pattern: str  # a skip reason about this tool matches it (re.search)

    def matches(self, reason: str) -> bool:
        return re.search(self.pattern, reason) is not None


# First match wins: the more specific patterns come first (postgres_exporter before
# PostgreSQL, amtool before the Prometheus server).
KNOWN: tuple[Tool, ...] = (
    Tool("the PDF", "TeX", f"apt-get install {TEX_PACKAGES}", r"\bTeX\b|latexmk|pdflatex"),
    Tool(
        "the PDF's page images (build/artefacts/)",
        "pdftoppm",
        "apt-get install poppler-utils",
        r"pdftoppm|poppler",
    ),
    Tool("the browser tests", "Chromium", "apt-get install chromium", r"(?i)chromium"),
    Tool(
        "the PostgreSQL exporter's metric names",
        "postgres_exporter",
        "apt-get install prometheus-postgres-exporter",
        r"postgres_exporter|prometheus-postgres-exporter",
    ),
    Tool(
        "the Redis exporter's metric names",
        "redis_exporter",
        "apt-get install prometheus-redis-exporter",
        r"redis_exporter|prometheus-redis-exporter",
    ),
    Tool(
        "the PgBouncer exporter's metric names",
        "pgbouncer_exporter 0.10's image",
        "a Docker engine and `python -m handbook.servers.images build` (bash .ci/run does both)",
        r"pgbouncer_exporter|prometheus-pgbouncer-exporter",
    ),
    Tool(
        "connections through PgBouncer", "PgBouncer", "apt-get install pgbouncer", r"(?i)pgbouncer"
    ),
    Tool(
        "the alert rules' and PromQL snippets' unit tests",
        "promtool",
        "apt-get install prometheus",
        r"\bpromtool\b",
    ),
    Tool(
        "Alertmanager routing and delivery",
        "amtool, alertmanager",
        "apt-get install prometheus-alertmanager",
        r"\bamtool\b|^alertmanager\b|\balertmanager not found",
    ),
    Tool(
        "the monitoring configuration in a real Prometheus",
        "prometheus",
        "apt-get install prometheus",
        r"\bprometheus not found|^prometheus\b",
    ),
    Tool(
        "the secret-rotation snippets and drills",
        "openssl",
        "apt-get install openssl",
        r"\bopenssl\b",
    ),
    Tool(
        "the meta-monitoring runbooks' commands",
        "curl, jq",
        "apt-get install curl jq",
        r"\bcurl\b|\bjq\b",
    ),
    Tool(
        "the diagrams",
        "dot",
        "apt-get install graphviz, or pip install graphviz-pure",
        r"\bgraphviz\b|\bdot\b",
    ),
    Tool(
        "what needs a second Redis version (any Redis 7+)",
        "Redis 7+",
        "apt-get install redis-server redis-tools",
        r"\bRedis 7|\bredis-server\b|\bredis-cli\b",
    ),
    Tool(
        "what needs a second PostgreSQL version",
        "second PostgreSQL",
        "apt-get install postgresql-15 postgresql-contrib",
        r"(?i)second PostgreSQL|PostgreSQL version",
    ),
    Tool(
        "the servers in Docker containers",
        "Docker engine",
        "bash .ci/run starts one (docker.io)",
        r"(?i)\bdocker\b",
    ),
)

SKIPS = pytest.StashKey[list["Skip"]]()

# bash's "name: command not found" (exit 127), after the script's "path: line N: " prefix.
NOT_FOUND = re.compile(r"^(?:.*?: )?(?:line \d+: )?(?P<name>[\w.+-]+): command not found$", re.M)
# The Debian package of a command a snippet may run that the machine may lack.
PACKAGE_OF = {"openssl": "openssl", "curl": "curl", "jq": "jq", "pgbouncer": "pgbouncer"}


def missing_command(returncode: int | None, output: str, name: str) -> str | None:
    """Why snippet ``name`` could not run, if it failed only because a program is absent.

    bash exits 127 with ``openssl: command not found`` when a command is not on PATH.
    That is a missing tool (a skip outside CI, a failure under it), unless the program
    is on PATH after all (then the failure is the snippet's own).
    """
    if returncode != 127:
        return None
    match = NOT_FOUND.search(output)
    if match is None or shutil.which(match["name"]) is not None:
        return None
    program = match["name"]
    package = PACKAGE_OF.get(program, program)
    return f"{name}: {program} is not installed, and the snippet runs it: apt-get install {package}"


@dataclass(frozen=True)
class Skip:
    nodeid: str
    reason: str


@dataclass
class Group:
    """Skips that one missing tool (or one unexplained reason) caused."""

    tool: Tool | None
    reason: str  # the first skip's reason, as the test gave it
    files: list[str] = field(default_factory=list)
    count: int = 0

    @property
    def title(self) -> str:
        if self.tool is not None:
            return f"{self.tool.what} (no {self.tool.lacks}: {self.tool.install})"
        return f"{', '.join(self.files)} ({self.reason})"


def tool_for(reason: str) -> Tool | None:
    return next((tool for tool in KNOWN if tool.matches(reason)), None)


def group(skips: list[Skip]) -> list[Group]:
    """Skips by missing tool, in the order first seen; unknown reasons by their text."""
    groups: dict[object, Group] = {}
    for skip in skips:
        tool = tool_for(skip.reason)
        key = tool if tool is not None else skip.reason
        found = groups.setdefault(key, Group(tool, skip.reason))
        found.count += 1
        where = skip.nodeid.split("::", 1)[0]
        if where not in found.files:
            found.files.append(where)
    return list(groups.values())


def _frames(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def unavailable(reason: str) -> NoReturn:
    """What a test needs is missing here: skip saying why; under ``CI=true`` that is a failure.

    Tests import it from ``handbook.pytest_plugin``; it lives here, beside the summary
    that lists its skips.
    """
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so a missing tool is a failure: {reason}", pytrace=False)
    pytest.skip(reason)


def raised_by_unavailable(excinfo: pytest.ExceptionInfo) -> bool:
    """The skip went through :func:`unavailable`: a missing tool, not a gate or a choice."""
    code = unavailable.__code__
    return any(tb.tb_frame.f_code is code for tb in _frames(excinfo.tb))


def skip_reason(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value.msg if hasattr(excinfo.value, "msg") else excinfo.value)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SKIPS] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    excinfo = call.excinfo
    if report.skipped and excinfo is not None and raised_by_unavailable(excinfo):
        item.config.stash[SKIPS].append(Skip(item.nodeid, skip_reason(excinfo)))
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, config: pytest.Config):
    """After every other summary (pytest's short summary included), before the totals."""
    yield
    groups = group(config.stash.get(SKIPS, []))
    if not groups:
        return
    write = terminalreporter.write_line
    terminalreporter.section("not verified here")
    write("not verified here: " + ", ".join(g.title for g in groups))
    for found in groups:
        tests = f"{found.count} test{'s' if found.count != 1 else ''}"
        what = found.tool.what if found.tool is not None else "skipped"
        write(f"  {what}: {tests} in {', '.join(found.files)}: {found.reason}")
    write("Under CI=true each of these fails the run; `bash .ci/run` installs them all.")
