"""pytest glue: every file under ``snippets/`` becomes test items, one per server label.

Loaded by the root ``conftest.py``. This module knows how to collect and report;
how a snippet runs lives in ``handbook.runners``, servers in ``handbook.servers``.
``pytest snippets/sql/pool/idle_in_transaction.sql`` runs one snippet everywhere.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from handbook import snippet as snippets
from handbook.paths import rel
from handbook.prometheus import tools
from handbook.report import Entry, Report
from handbook.runners import Outcome, masked
from handbook.runners import promql as promql_runner
from handbook.runners import redis as redis_runner
from handbook.runners import shell as shell_runner
from handbook.runners import sql as sql_runner
from handbook.schema.databases import Databases
from handbook.servers.base import Server, ServerUnavailable
from handbook.servers.pool import ServerPool

POOL = pytest.StashKey[ServerPool]()
REPORT = pytest.StashKey[Report]()
DATABASES = pytest.StashKey[Databases]()
CHOICES = ("auto", "local", "docker", "external")
PROOF_RANK = {"skipped": 0, "passed": 1, "failed": 2}


def unavailable(reason: str) -> NoReturn:
    """What a test needs is missing here: skip saying why; under ``CI=true`` that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so a missing tool is a failure: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("handbook", "ERPGo handbook snippets")
    group.addoption(
        "--pg",
        choices=CHOICES,
        default=os.environ.get("HANDBOOK_PG", "auto"),
        help="where PostgreSQL servers come from (HANDBOOK_PG; default auto)",
    )
    group.addoption(
        "--redis",
        choices=CHOICES,
        default=os.environ.get("HANDBOOK_REDIS", "auto"),
        help="where Redis servers come from (HANDBOOK_REDIS; default auto)",
    )
    group.addoption(
        "--update-outputs",
        action="store_true",
        help="write each snippet's .out file from this run instead of comparing against it",
    )


def pytest_configure(config: pytest.Config) -> None:
    pool = ServerPool(pg=config.getoption("--pg"), redis=config.getoption("--redis"))
    config.stash[POOL] = pool
    config.stash[REPORT] = Report(config.rootpath / "build" / "verification.json")
    config.stash[DATABASES] = Databases()


def pytest_unconfigure(config: pytest.Config) -> None:
    if POOL in config.stash:
        config.stash[POOL].stop_all()


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = session.config.stash.get(REPORT, None)
    if report is not None and (report.entries or report.proofs or report.exporters):
        report.write()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Record the outcome of tests that prove a requirement (``covers`` marker)."""
    result = yield
    if item.get_closest_marker("covers") is not None and (call.when == "call" or result.failed):
        proofs = item.config.stash[REPORT].proofs
        key = f"{rel(item.path, item.config.rootpath)}::{getattr(item, 'originalname', item.name)}"
        outcome = "failed" if result.failed else result.outcome
        # One failing parameter fails the proof; one passing one beats a skip elsewhere.
        if PROOF_RANK[outcome] > PROOF_RANK.get(proofs.get(key, ""), -1):
            proofs[key] = outcome
    return result


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    report = config.stash.get(REPORT, None)
    if report is None or not (report.entries or report.exporters):
        return
    write = terminalreporter.write_line
    terminalreporter.section("handbook verification")
    for label, description in sorted(report.servers.items()):
        write(f"server {label}: {description}")
    for key, description in sorted(report.exporters.items()):
        write(f"exporter {key}: {description}")
    for entry in sorted(report.not_verified(), key=lambda e: e.key):
        write(f"not verified: {entry.key}: {entry.outcome}: {entry.reason}")
    write(f"report: {rel(report.path, config.rootpath)}")


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    snippets_dir = parent.config.rootpath / "snippets"
    if not file_path.is_relative_to(snippets_dir) or file_path.suffix not in snippets.KINDS:
        return None
    if file_path.parent.name == "migrations":
        return None  # collected as reversibility items by handbook's migration tests
    return SnippetFile.from_parent(parent, path=file_path)


class SnippetFile(pytest.File):
    def collect(self):
        snippet = snippets.parse(self.path, self.config.rootpath)
        pool: ServerPool = self.config.stash[POOL]
        if snippet.kind == "promql":
            yield PromqlItem.from_parent(self, name="promtool", snippet=snippet)
            return
        kinds = snippet.servers_needed()
        if not kinds:
            yield LintOnlyItem.from_parent(self, name="lint", snippet=snippet)
            return
        items, gated = [], []
        for combo in combinations(pool, kinds):
            labels = "+".join(c.label for c in combo)
            if snippet.mode == "writes" and any(c.read_only for c in combo):
                self._record(
                    snippet, labels, "not-run", "external servers run read-only snippets only"
                )
                continue
            reasons = [r for c in combo if (r := snippet.gate(c.kind, c.major, c.features))]
            if reasons:
                gated.append(f"{labels}: {'; '.join(reasons)}")
            items.append(
                SnippetItem.from_parent(
                    self, name=labels, snippet=snippet, combo=combo, gate="; ".join(reasons)
                )
            )
        if items and len(gated) == len(items):
            yield NotApplicableAnywhere.from_parent(self, name="any", snippet=snippet, gated=gated)
            return
        yield from items

    def _record(self, snippet, label, outcome, reason) -> None:
        self.config.stash[REPORT].add(Entry(snippet.name, label, outcome, reason=reason))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (snippets.SnippetError, ServerUnavailable)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)


def combinations(pool: ServerPool, kinds: list[str]) -> list[tuple]:
    """One combination per label of each needed kind, paired with the default of the other."""
    candidates = {kind: pool.candidates(kind) for kind in kinds}
    if len(kinds) == 1:
        return [(c,) for c in candidates[kinds[0]]]
    pg, redis = candidates["pg"], candidates["redis"]
    combos = [(c, redis[0]) for c in pg] + [(pg[0], c) for c in redis[1:]]
    return combos


class SnippetItem(pytest.Item):
    def __init__(self, *, snippet: snippets.Snippet, combo: tuple, gate: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snippet = snippet
        self.combo = combo
        self.gate = gate

    def runtest(self) -> None:
        pool: ServerPool = self.config.stash[POOL]
        report: Report = self.config.stash[REPORT]
        first = self.combo[0]
        if self.gate:
            report.add(Entry(self.snippet.name, self.name, "not-applicable", reason=self.gate))
            pytest.skip(f"not applicable on {self.name}: {self.gate}")
        servers = [pool.get(c.label) for c in self.combo]
        for server in servers:
            report.servers[server.label] = (
                f"{server.describe()} ({server.origin}) {server.client_note}".strip()
            )
        outcome = self._run(servers)
        if outcome.ok:
            outcome = self._compare_output(outcome)
        described = ", ".join(s.describe() for s in servers)
        report.add(
            Entry(
                self.snippet.name,
                self.name,
                "passed" if outcome.ok else "failed",
                server=described,
                provider=first.provider,
                reason=outcome.message,
            )
        )
        if not outcome.ok:
            raise SnippetFailure(outcome)

    def _run(self, servers: list[Server]) -> Outcome:
        databases: Databases = self.config.stash[DATABASES]
        snippet = self.snippet
        if snippet.kind == "sql":
            (server,) = servers
            with databases.for_snippet(server, snippet.read_only) as env:
                return sql_runner.run(snippet, server, env)
        if snippet.kind == "redis":
            (server,) = servers
            with databases.for_redis(server, snippet.read_only, self.config.stash[POOL]) as (
                srv,
                env,
            ):
                return redis_runner.run(snippet, srv, env)
        with databases.for_shell(servers, snippet.read_only, self.config.stash[POOL]) as env:
            return shell_runner.run(snippet, env, ", ".join(s.describe() for s in servers))

    def _compare_output(self, outcome: Outcome) -> Outcome:
        expected_file = self.snippet.path.with_name(self.snippet.path.name + ".out")
        actual = masked(outcome.output, self.snippet.masks)
        if self.config.getoption("--update-outputs"):
            expected_file.write_text(actual, encoding="utf-8")
            return outcome
        if not expected_file.exists():
            return outcome
        expected = expected_file.read_text(encoding="utf-8")
        if actual == expected:
            return outcome
        line = first_difference(expected, actual)
        name = rel(expected_file, self.config.rootpath)
        want, got = expected.splitlines()[line - 1 : line], actual.splitlines()[line - 1 : line]
        return Outcome(
            False,
            outcome.output,
            f"{name}:{line}: output differs on {self.name}: expected {want!r}, got {got!r}; "
            f"if the change is right, run pytest {self.snippet.name} --update-outputs, "
            "or mask the volatile part with a 'mask:' header",
        )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SnippetFailure):
            outcome = excinfo.value.outcome
            return f"{outcome.message}\n--- output ---\n{outcome.output.rstrip()}"
        if isinstance(excinfo.value, ServerUnavailable):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, self.snippet.body_start - 1, f"{self.snippet.name}[{self.name}]"


def first_difference(expected: str, actual: str) -> int:
    pairs = zip(expected.splitlines(), actual.splitlines(), strict=False)
    for number, (a, b) in enumerate(pairs, start=1):
        if a != b:
            return number
    return min(len(expected.splitlines()), len(actual.splitlines())) + 1


class SnippetFailure(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


class LintOnlyItem(pytest.Item):
    """A snippet needing what tests cannot provide: its syntax is checked; the page says so."""

    def __init__(self, *, snippet: snippets.Snippet, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snippet = snippet

    def runtest(self) -> None:
        result = subprocess.run(
            ["bash", "-n", str(self.path)], capture_output=True, text=True, check=False
        )
        report: Report = self.config.stash[REPORT]
        try:
            if result.returncode != 0:
                raise SnippetFailure(
                    Outcome(
                        False,
                        result.stderr,
                        f"{self.snippet.name}:1: bash -n: {result.stderr.strip()}",
                    )
                )
            self._check_verified_by()
        except SnippetFailure as failure:
            report.add(Entry(self.snippet.name, "lint", "failed", reason=failure.outcome.message))
            raise
        report.add(
            Entry(self.snippet.name, "lint", "lint-only", reason=self.snippet.lint_only or "")
        )

    def _check_verified_by(self) -> None:
        """The ``verified-by:`` files must exist and one must name this snippet."""
        if not self.snippet.verified_by:
            return
        files = [f.strip() for f in self.snippet.verified_by.split(",")]
        short = self.snippet.name.removeprefix("snippets/")
        missing = [f for f in files if not (self.config.rootpath / f).is_file()]
        naming = [
            f
            for f in files
            if f not in missing and short in (self.config.rootpath / f).read_text(encoding="utf-8")
        ]
        if missing or not naming:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            line = next(n for n, text in enumerate(lines, 1) if "verified-by:" in text)
            problem = f"{', '.join(missing)} does not exist" if missing else f"none names {short!r}"
            raise SnippetFailure(
                Outcome(
                    False,
                    "",
                    f"{self.snippet.name}:{line}: verified-by: {problem}: name the test (and "
                    "the module it uses) that runs this snippet, or drop the header",
                )
            )

    repr_failure = SnippetItem.repr_failure

    def reportinfo(self):
        return self.path, 0, f"{self.snippet.name}[lint]"


class PromqlItem(pytest.Item):
    """A PromQL snippet evaluated by promtool against the series of its ``.test.yml`` sidecar."""

    def __init__(self, *, snippet: snippets.Snippet, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snippet = snippet

    def runtest(self) -> None:
        promtool, missing = tools.find_tool("promtool"), ""
        if promtool is None:
            try:
                tools.require_tool("promtool")
            except tools.ToolMissing as exc:
                missing = f"{self.snippet.name}: {exc}"
            self.config.stash[REPORT].add(
                Entry(self.snippet.name, self.name, "not-run", reason=missing)
            )
            unavailable(missing)
        described = f"promtool {tools.version('promtool')} unit test".replace("  ", " ")
        outcome = promql_runner.run(self.snippet, promtool, described)
        self.config.stash[REPORT].add(
            Entry(
                self.snippet.name,
                self.name,
                "passed" if outcome.ok else "failed",
                server=described,
                provider="local",
                reason=outcome.message,
            )
        )
        if not outcome.ok:
            raise SnippetFailure(outcome)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SnippetFailure):
            outcome = excinfo.value.outcome
            output = outcome.output.rstrip()
            return (
                f"{outcome.message}\n--- promtool output ---\n{output}"
                if output
                else outcome.message
            )
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, self.snippet.body_start - 1, f"{self.snippet.name}[promtool]"


class NotApplicableAnywhere(pytest.Item):
    def __init__(self, *, snippet: snippets.Snippet, gated: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.snippet = snippet
        self.gated = gated

    def runtest(self) -> None:
        raise SnippetFailure(
            Outcome(
                False,
                "",
                f"{self.snippet.name}:2: not applicable on any available server "
                f"({'; '.join(self.gated)}): relax the requires/extension header or add a server "
                "that meets it (HANDBOOK_PG_BINDIRS, HANDBOOK_REDIS_SERVERS)",
            )
        )

    repr_failure = SnippetItem.repr_failure


# -- fixtures for tests that need a server of their own kind --------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``pg_server`` / ``redis_server`` arguments run the test once per local or Docker label."""
    for kind in ("pg", "redis"):
        fixture = f"{kind}_server"
        if fixture in metafunc.fixturenames:
            pool: ServerPool = metafunc.config.stash[POOL]
            labels = [c.label for c in pool.candidates(kind) if not c.read_only]
            metafunc.parametrize(fixture, labels, indirect=True, scope="session")


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Server:
    """A shared PostgreSQL server (never an external one): create databases of your own on it."""
    return request.config.stash[POOL].get(request.param)


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Server:
    """A shared Redis-compatible server (never an external one)."""
    return request.config.stash[POOL].get(request.param)
