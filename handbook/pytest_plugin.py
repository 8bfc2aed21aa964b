"""pytest glue: every file under ``snippets/`` becomes test items, one per server label.

Loaded by the root ``conftest.py``. This module knows how to collect and report;
how a snippet runs lives in ``handbook.runners``, servers in ``handbook.servers``.

- ``pytest docs/runbooks/high-latency.md`` (or ``--page PATH``; a snippet or ``conf/``
  file works too) runs what that file depends on: ``handbook.selection`` works it out;
  its snippets on every server, its other tests on the first server of each kind
  (``--every-version``: on every one).
  ``pytest snippets/sql/x.sql::pg15`` still runs that one item only.
- every core by default: ``-n N`` (pytest-xdist), two workers per usable CPU; ``-n 0`` or
  ``HANDBOOK_WORKERS=0`` runs serially. Each worker has its own server pool; a file's
  tests stay on one worker (``--dist loadscope``, unless ``--dist`` is given), so a drill
  module and its private servers do; the workers send their results to the controller,
  which alone writes ``build/verification.json``.
- ``--shard i/N``: only the i-th of N deterministic parts of the run, by file (a drill
  module stays whole); ``python -m handbook.report merge`` joins the shards' reports.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import zlib
from pathlib import Path

import pytest

from handbook import runners, selection, unverified
from handbook import snippet as snippets
from handbook.paths import rel
from handbook.prometheus import tools
from handbook.report import Entry, Report
from handbook.runners import Outcome, Target, masked
from handbook.schema.databases import Databases
from handbook.servers.base import Server, ServerConfigError, ServerUnavailable
from handbook.servers.pool import CHOICES, ServerPool
from handbook.unverified import unavailable  # tests import it from here

POOL = pytest.StashKey[ServerPool]()
REPORT = pytest.StashKey[Report]()
DATABASES = pytest.StashKey[Databases]()
SELECTION = pytest.StashKey[selection.Selection]()
KEPT = pytest.StashKey[list[str]]()  # path arguments given beside a page: kept whole
LEFT_OUT = pytest.StashKey[dict[str, int]]()  # whole_run reason -> items a page left out
PROOF_RANK = {"skipped": 0, "passed": 1, "failed": 2}
SHARD = re.compile(r"^(?P<index>\d+)/(?P<count>\d+)$")
WORKERS_VAR = "HANDBOOK_WORKERS"
SHARD_VAR = "HANDBOOK_SHARD"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("handbook", "ERPGo handbook snippets")
    providers = f"{', '.join(CHOICES)}, or a comma-separated list"
    group.addoption(
        "--pg",
        default=os.environ.get("HANDBOOK_PG", "auto"),
        help=f"where PostgreSQL servers come from: {providers} (HANDBOOK_PG; default auto)",
    )
    group.addoption(
        "--redis",
        default=os.environ.get("HANDBOOK_REDIS", "auto"),
        help=f"where Redis servers come from: {providers} (HANDBOOK_REDIS; default auto)",
    )
    group.addoption(
        "--update-outputs",
        action="store_true",
        help="write each snippet's .out file from this run instead of comparing against it",
    )
    group.addoption(
        "--page",
        action="append",
        default=[],
        metavar="PATH",
        help="run what a page (docs/**/*.md), snippet or conf/ file depends on: its snippets on "
        "every server, its drill (on one server per kind), its alert's tests, its site "
        "checks (a path argument "
        "does the same); repeatable",
    )
    group.addoption(
        "--every-version",
        action="store_true",
        help="with a page, snippet or conf/ file: run its tests on every server version too "
        "(by default they run on the first server of each kind, its snippets on every one)",
    )
    group.addoption(
        "--shard",
        default=None,
        metavar="I/N",
        help="run only shard I of N (1-based), split by file so that a drill module and its "
        "servers stay together; the same on every machine (HANDBOOK_SHARD)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Use every core: ``-n N`` (pytest-xdist) with N twice the CPUs this process may run
    on, unless ``-n`` is given or ``HANDBOOK_WORKERS`` says otherwise (``0``: serial). Only
    for the run a person starts: a worker, or a pytest a test starts, runs serially. The
    run of what a page, snippet or conf/ file depends on takes one worker per CPU, not
    two: each worker starts every server and builds the site again (on 2 CPUs the
    high-latency page took 66 s serially, 74 s on 2 workers, 93 s on 4; the watchdog
    page 54 s serially, 32 s on 2)."""
    workers = os.environ.get(WORKERS_VAR, "").strip()
    if hasattr(config, "workerinput") or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if not hasattr(config.option, "numprocesses"):  # no xdist (or -p no:xdist)
        if workers and workers != "0":
            raise pytest.UsageError(
                f"{WORKERS_VAR}={workers} asks for parallel workers, but pytest-xdist is not "
                "installed (or disabled with -p no:xdist): install the tests dependency "
                "group (tox -e tests does), or unset it"
            )
        return
    if config.option.numprocesses is not None:
        return
    if not workers:
        serial = config.option.collectonly or config.option.usepdb or config.option.trace
        page = bool(_targets(config)[0])  # a page's few tests: each worker starts its servers
        workers = "0" if serial else str(default_workers(1 if page else WORKERS_PER_CPU))
    if workers not in ("auto", "logical") and not workers.isdigit():
        raise pytest.UsageError(f"{WORKERS_VAR}={workers!r}: give a number, 0 or 'auto'")
    config.option.numprocesses = int(workers) if workers.isdigit() else workers


WORKERS_PER_CPU = 2  # the tests wait (servers, alerts' `for`, timeouts) more than they compute


def default_workers(per_cpu: int = WORKERS_PER_CPU) -> int:
    """How many workers a run uses by default: two for each CPU this process may run on,
    since most of a test's time is waiting on a server, an alert's ``for`` or a timeout
    (on 2 CPUs the whole run took 700 s on 4 workers, 759 s on 3, 902 s on 2); none
    (serial) with one CPU, where a worker would only add its start-up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return cpus * per_cpu if cpus > 1 else 0


def pytest_configure(config: pytest.Config) -> None:
    try:
        pool = ServerPool(pg=config.getoption("--pg"), redis=config.getoption("--redis"))
    except ServerConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[POOL] = pool
    report = Report(config.rootpath / "build" / "verification.json")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "handbook_docker" in workerinput:  # the controller's answer
        pool.assume_docker(workerinput["handbook_docker"])
    if workerinput is not None and "handbook_run" in workerinput:  # one run, many workers
        report.run_id, report.started = workerinput["handbook_run"], workerinput["handbook_started"]
    config.stash[REPORT] = report
    config.stash[DATABASES] = Databases()
    _select(config)
    # HANDBOOK_SHARD and HANDBOOK_WORKERS are for this run, not for the pytest runs its
    # tests start (a sharded child would drop its own tests; a child runs serially): read
    # once, then removed, and the children told to run serially.
    shard = config.getoption("--shard")
    if shard is None:
        shard = os.environ.get(SHARD_VAR, "")
    if workerinput is not None:
        shard = workerinput.get("handbook_shard", shard)
    config.option.shard = shard
    os.environ.pop(SHARD_VAR, None)
    os.environ[WORKERS_VAR] = "0"
    _shard_of(config)  # a malformed --shard is a usage error before anything starts
    given = config.invocation_params.args
    if getattr(config.option, "dist", "no") == "load" and not any(
        str(a).startswith(("--dist", "-d")) for a in given
    ):
        config.option.dist = "loadscope"  # a file's tests, and its module fixtures, together


def _targets(config: pytest.Config) -> tuple[list[Path], list[str]]:
    """The pages, snippets and conf/ files given (``--page`` or path arguments), and the
    other arguments."""
    targets, kept = [Path(p) for p in config.getoption("--page")], []
    # Without path arguments pytest runs its testpaths: with --page, only what it selects.
    given = config.args if config.args_source == pytest.Config.ArgsSource.ARGS else []
    for arg in given:
        path = Path(arg) if Path(arg).is_absolute() else Path(config.invocation_params.dir, arg)
        if "::" not in arg and selection.is_target(path, config.rootpath):
            targets.append(path)
        else:
            kept.append(arg)
    return targets, kept


def _select(config: pytest.Config) -> None:
    """Path arguments that are pages, snippets or conf/ files become what they depend on."""
    root = config.rootpath
    targets, kept = _targets(config)
    if not targets:
        return
    workerinput = getattr(config, "workerinput", None) or {}
    if "handbook_selection" in workerinput:  # an xdist worker: the controller chose already
        chosen = selection.Selection.from_plain(workerinput["handbook_selection"])
    else:
        try:
            chosen = selection.select(targets, root)
        except selection.SelectionError as exc:
            raise pytest.UsageError(str(exc)) from None
    if not chosen.paths:
        raise pytest.UsageError(
            f"{', '.join(chosen.targets)}: no test depends on it: the site build checks it "
            "(tox -e docs)"
        )
    config.stash[SELECTION] = chosen
    config.stash[KEPT] = kept
    config.args[:] = kept + [str(root / p) for p in chosen.paths]


def _shard_of(config: pytest.Config) -> tuple[int, int] | None:
    value = (config.getoption("--shard") or "").strip()
    if not value:
        return None
    match = SHARD.match(value)
    if not match or not 1 <= int(match["index"]) <= int(match["count"]):
        raise pytest.UsageError(
            f"--shard {value!r}: write I/N with 1 <= I <= N, e.g. --shard 2/4 (HANDBOOK_SHARD)"
        )
    return int(match["index"]), int(match["count"])


def group_of(nodeid: str) -> str:
    """The unit a run is split by, across workers and shards: the file (a test module, a
    snippet file), so a module's fixtures and private servers stay in one process."""
    return nodeid.split("::", 1)[0].split("@", 1)[0]


def shard_index(group: str, count: int) -> int:
    """Which of ``count`` shards runs ``group`` (1-based): from its name alone, so every
    machine agrees whatever servers it collected tests for."""
    return zlib.crc32(group.encode()) % count + 1


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep what ``--page`` (or a page argument) selected, then this ``--shard``'s part."""
    chosen = config.stash.get(SELECTION, None)
    kept_paths = [
        Path(a.split("::", 1)[0]).resolve() for a in config.stash.get(KEPT, [])
    ]  # fmt: skip
    shard = _shard_of(config)
    keep, drop = [], []
    left_out = config.stash.setdefault(LEFT_OUT, {})
    every_version = config.getoption("--every-version")
    first_server: set[tuple] = set()  # the tests a page's run has taken on one server
    for item in items:
        wanted = True
        if chosen is not None and not any(item.path.is_relative_to(k) for k in kept_paths):
            callspec = getattr(item, "callspec", None)
            wanted = chosen.wants(
                rel(item.path, config.rootpath),
                getattr(item, "originalname", item.name),
                callspec.id if callspec is not None else "",
            )
            whole = item.get_closest_marker("whole_run")
            if wanted and whole is not None:  # the whole book, or the harness itself
                reason = whole.args[0] if whole.args else "checks the whole run"
                why = f"marked whole_run: {reason} (name the test file beside the page to run "
                why += "them too)"
                left_out[why] = left_out.get(why, 0) + 1
                wanted = False
            if wanted and not every_version and not _first_server(item, first_server):
                left_out[ON_OTHER_SERVERS] = left_out.get(ON_OTHER_SERVERS, 0) + 1
                wanted = False
        if wanted and shard is not None:
            wanted = shard_index(group_of(item.nodeid), shard[1]) == shard[0]
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


ON_OTHER_SERVERS = (
    "the same tests on the other server versions: a page's run takes each test on the first "
    "server of each kind, and its snippets on every one (--every-version runs them all)"
)
# the parameters that are a server version: the shared servers, the drills' own local
# versions (tests/drills/test_disaster_recovery.py) and the conf boots' (test_*_conf.py)
SERVER_PARAMS = ("pg_server", "redis_server", "pg_label", "redis_label", "booted")


def _first_server(item: pytest.Item, taken: set[tuple]) -> bool:
    """Whether ``item`` is the first of its test, other parameters alike, on the servers
    ``pytest_generate_tests`` gave it: snippet items and tests without a server stay."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or not any(name in callspec.params for name in SERVER_PARAMS):
        return True
    others = tuple(
        sorted((k, repr(v)) for k, v in callspec.params.items() if k not in SERVER_PARAMS)
    )
    key = (str(item.path), getattr(item, "originalname", item.name), others)
    if key in taken:
        return False
    taken.add(key)
    return True


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start every shared server the collected items use at once, in threads (and build
    the snippets' database on each PostgreSQL a snippet uses): a page's run no longer
    waits for nine servers one after another. Nothing starts for ``--collect-only``."""
    config = session.config
    if config.option.collectonly or not session.items:
        return
    labels: dict[str, None] = {}  # in order of first use
    databases: set[str] = set()
    for item in session.items:
        if isinstance(item, SnippetItem) and not item.gate:
            for cand in item.combo:
                labels[cand.label] = None
                if cand.kind == "pg":
                    databases.add(cand.label)
        callspec = getattr(item, "callspec", None)
        for name in ("pg_server", "redis_server"):
            if callspec is not None and name in callspec.params:
                labels[callspec.params[name]] = None
    if not labels:
        return
    ensure = config.stash[DATABASES].ensure
    config.stash[POOL].warm(
        labels, then=lambda server: ensure(server) if server.label in databases else None
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    chosen = config.stash.get(SELECTION, None)
    if chosen is not None:
        lines.append(
            f"handbook: what {', '.join(chosen.targets)} depends on (handbook/selection.py)"
        )
    shard = _shard_of(config)
    if shard is not None:
        lines.append(f"handbook: shard {shard[0]} of {shard[1]}, split by file")
    return lines


def pytest_unconfigure(config: pytest.Config) -> None:
    if POOL in config.stash:
        config.stash[POOL].stop_all()


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = session.config.stash.get(REPORT, None)
    if report is None:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes the report
        workeroutput["handbook_report"] = report.results()
        skips = session.config.stash.get(unverified.SKIPS, [])
        workeroutput["handbook_skips"] = [[s.nodeid, s.reason] for s in skips]
        workeroutput["handbook_left_out"] = dict(session.config.stash.get(LEFT_OUT, {}))
        return
    if report.entries or report.proofs or report.tests or report.exporters:
        report.write()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist, on the controller: every worker records under this run's id."""
    report: Report = node.config.stash[REPORT]
    node.workerinput["handbook_run"] = report.run_id
    node.workerinput["handbook_started"] = report.started
    node.workerinput["handbook_shard"] = node.config.getoption("--shard") or ""
    # every worker must parametrize with the same servers: one answer, the controller's
    node.workerinput["handbook_docker"] = node.config.stash[POOL].docker_available()
    chosen = node.config.stash.get(SELECTION, None)
    if chosen is not None:  # the same selection, without reading the repository again
        node.workerinput["handbook_selection"] = chosen.to_plain()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist, on the controller: a worker is done; take its results into the report."""
    output = getattr(node, "workeroutput", None) or {}
    if "handbook_report" in output:
        node.config.stash[REPORT].absorb(output["handbook_report"])
    skips = node.config.stash.get(unverified.SKIPS, None)
    if skips is not None:
        skips += [
            unverified.Skip(nodeid, reason) for nodeid, reason in output.get("handbook_skips", [])
        ]
    if output.get("handbook_left_out"):  # every worker collects, and leaves out, the same
        node.config.stash[LEFT_OUT] = dict(output["handbook_left_out"])
    if error is not None and "handbook_report" not in output:
        worker = getattr(node, "gateway", None)
        name = getattr(worker, "id", "a worker")
        node.config.stash[REPORT].lost.append(f"{name}: {error}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Record the outcome of tests that prove a requirement (``covers`` marker)."""
    result = yield
    if call.when == "call" or result.failed:  # what a verified-by: header relies on
        outcome = "failed" if result.failed else result.outcome
        item.config.stash[REPORT].test_outcome(rel(item.path, item.config.rootpath), outcome)
    if item.get_closest_marker("covers") is not None and (call.when == "call" or result.failed):
        proofs = item.config.stash[REPORT].proofs
        key = f"{rel(item.path, item.config.rootpath)}::{getattr(item, 'originalname', item.name)}"
        outcome = "failed" if result.failed else result.outcome
        # One failing parameter fails the proof; one passing one beats a skip elsewhere.
        if PROOF_RANK[outcome] > PROOF_RANK.get(proofs.get(key, ""), -1):
            proofs[key] = outcome
    return result


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    for reason, count in sorted(config.stash.get(LEFT_OUT, {}).items()):
        terminalreporter.write_line(f"left to the full run: {count} test(s), {reason}")
    report = config.stash.get(REPORT, None)
    if report is None or not (report.entries or report.exporters):
        return
    write = terminalreporter.write_line
    terminalreporter.section("handbook verification")
    for label, description in sorted(report.servers.items()):
        write(f"server {label}: {description}")
    for key, description in sorted(report.exporters.items()):
        write(f"exporter {key}: {description}")
    pool = config.stash.get(POOL, None)
    if pool is not None and report.servers:  # why a server found was not used
        for kind in ("pg", "redis"):
            with contextlib.suppress(ServerUnavailable):  # the tests have said so already
                pool.candidates(kind, required=False)  # known already on a worker; cheap
        for note in dict.fromkeys(pool.notes):
            write(f"servers: {note}")
    for entry in sorted(report.not_verified(), key=lambda e: e.key):
        write(f"not verified: {entry.key}: {entry.outcome}: {entry.reason}")
    for lost in report.lost:
        write(f"LOST: a worker ended without sending its results ({lost}): rerun them")
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
                entry = Entry(snippet.name, labels, "not-run", reason=READ_ONLY_SERVERS)
                self.config.stash[REPORT].add(entry)
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

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (snippets.SnippetError, ServerUnavailable)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


READ_ONLY_SERVERS = "external servers run read-only snippets only"


def combinations(pool: ServerPool, kinds: list[str]) -> list[tuple]:
    """One combination per label of each needed kind, paired with the default of the other."""
    candidates = {kind: pool.candidates(kind) for kind in kinds}
    if len(kinds) == 1:
        return [(c,) for c in candidates[kinds[0]]]
    pg, redis = candidates["pg"], candidates["redis"]
    return [(c, redis[0]) for c in pg] + [(pg[0], c) for c in redis[1:]]


class SnippetFailure(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


class SnippetTestItem(pytest.Item):
    """What every snippet item shares: the snippet, its report entry, and how a failure
    reads: the runner's located message, then the output (``--- output ---``)."""

    def __init__(self, *, snippet: snippets.Snippet, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snippet = snippet

    def record(self, outcome: str, reason: str = "", **where: str) -> None:
        """One entry of ``build/verification.json`` for this snippet and item."""
        entry = Entry(self.snippet.name, self.name, outcome, reason=reason, **where)
        self.config.stash[REPORT].add(entry)

    def conclude(self, outcome: Outcome, **where: str) -> None:
        """Record a run's outcome; fail the test with its message when it did not pass."""
        self.record("passed" if outcome.ok else "failed", outcome.message, **where)
        if not outcome.ok:
            raise SnippetFailure(outcome)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SnippetFailure):
            return excinfo.value.outcome.report()
        if isinstance(excinfo.value, ServerUnavailable):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, self.snippet.body_start - 1, f"{self.snippet.name}[{self.name}]"


class SnippetItem(SnippetTestItem):
    """A SQL, redis-cli or shell snippet on one combination of servers."""

    def __init__(self, *, combo: tuple, gate: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.combo = combo
        self.gate = gate

    def runtest(self) -> None:
        pool: ServerPool = self.config.stash[POOL]
        report: Report = self.config.stash[REPORT]
        if self.gate:
            self.record("not-applicable", self.gate)
            pytest.skip(f"not applicable on {self.name}: {self.gate}")
        servers = [pool.get(c.label) for c in self.combo]
        for server in servers:
            report.servers[server.label] = (
                f"{server.describe()} ({server.origin}) {server.client_note}".strip()
            )
        outcome = self._run(servers)
        missing = unverified.missing_command(outcome.returncode, outcome.output, self.snippet.name)
        if not outcome.ok and missing:  # e.g. no openssl here: a skip, or under CI a failure
            self.record("not-run", missing)
            unavailable(missing)
        if outcome.ok:
            outcome = self._compare_output(outcome)
        described = ", ".join(s.describe() for s in servers)
        self.conclude(outcome, server=described, provider=self.combo[0].provider)

    def _run(self, servers: list[Server]) -> Outcome:
        """The runner of the snippet's kind, in the database or server its mode gives it:
        one environment holds every server's connection variables, whatever the kind."""
        databases: Databases = self.config.stash[DATABASES]
        pool: ServerPool = self.config.stash[POOL]
        snippet = self.snippet
        with databases.for_shell(
            servers, snippet.read_only, pool, snippet.user, snippet.via
        ) as env:
            return runners.run(self.snippet, Target.on(servers, env))

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
            outcome.returncode,
        )


def first_difference(expected: str, actual: str) -> int:
    pairs = zip(expected.splitlines(), actual.splitlines(), strict=False)
    for number, (a, b) in enumerate(pairs, start=1):
        if a != b:
            return number
    return min(len(expected.splitlines()), len(actual.splitlines())) + 1


class LintOnlyItem(SnippetTestItem):
    """A snippet needing what tests cannot provide: its syntax is checked; the page says so."""

    def runtest(self) -> None:
        result = subprocess.run(
            ["bash", "-n", str(self.path)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            message = f"{self.snippet.name}:1: bash -n: {result.stderr.strip()}"
            self.conclude(Outcome(False, result.stderr, message, result.returncode))
        problem = self._verified_by_problem()
        if problem:
            self.conclude(Outcome(False, "", problem, None))
        self.record("lint-only", self.snippet.lint_only or "")

    def _verified_by_problem(self) -> str:
        """The ``verified-by:`` files must exist and one must name this snippet."""
        if not self.snippet.verified_by:
            return ""
        files = [f.strip() for f in self.snippet.verified_by.split(",")]
        short = self.snippet.name.removeprefix("snippets/")
        missing = [f for f in files if not (self.config.rootpath / f).is_file()]
        naming = [
            f
            for f in files
            if f not in missing and short in (self.config.rootpath / f).read_text(encoding="utf-8")
        ]
        if not missing and naming:
            return ""
        problem = f"{', '.join(missing)} does not exist" if missing else f"none names {short!r}"
        return (
            f"{self.snippet.name}:{self.snippet.header['verified-by']}: verified-by: {problem}: "
            "name the test (and the module it uses) that runs this snippet, or drop the header"
        )

    def reportinfo(self):
        return self.path, 0, f"{self.snippet.name}[lint]"


class PromqlItem(SnippetTestItem):
    """A PromQL snippet evaluated by promtool against the series of its ``.test.yml`` sidecar."""

    def runtest(self) -> None:
        try:
            tools.require_tool("promtool")
        except tools.ToolMissing as exc:
            missing = f"{self.snippet.name}: {exc}"
            self.record("not-run", missing)
            unavailable(missing)
        described = f"promtool {tools.version('promtool')} unit test".replace("  ", " ")
        outcome = runners.run(self.snippet, Target(os.environ, described))
        self.conclude(outcome, server=described, provider="local")


class NotApplicableAnywhere(SnippetTestItem):
    def __init__(self, *, gated: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.gated = gated

    def runtest(self) -> None:
        header = self.snippet.header
        line = header.get("requires") or header.get("extension") or self.snippet.body_start
        message = (
            f"{self.snippet.name}:{line}: not applicable on any available server "
            f"({'; '.join(self.gated)}): relax the requires/extension header or add a server "
            "that meets it (HANDBOOK_PG_BINDIRS, HANDBOOK_REDIS_SERVERS)"
        )
        raise SnippetFailure(Outcome(False, "", message, None))


# -- fixtures for tests that need a server of their own kind --------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``pg_server`` / ``redis_server`` arguments run the test once per local or Docker label.

    A test that takes both runs once per pair, not per combination: the labels are
    paired in order, the shorter list starting over, so that every PostgreSQL and every
    Redis version serves at least once without the product of the two lists (with the
    Docker matrix that product made the suite several times longer).
    """
    pool: ServerPool = metafunc.config.stash[POOL]
    wanted = [k for k in ("pg", "redis") if f"{k}_server" in metafunc.fixturenames]
    labels = {k: [c.label for c in pool.candidates(k) if not c.read_only] for k in wanted}
    if len(wanted) == 2 and all(labels.values()):
        pgs, redises = labels["pg"], labels["redis"]
        pairs = [
            (pgs[i % len(pgs)], redises[i % len(redises)])
            for i in range(max(len(pgs), len(redises)))
        ]
        metafunc.parametrize(
            ("pg_server", "redis_server"), pairs, indirect=True, scope="session",
            ids=[f"{pg}-{redis}" for pg, redis in pairs],
        )  # fmt: skip
        return
    for kind in wanted:
        metafunc.parametrize(f"{kind}_server", labels[kind], indirect=True, scope="session")


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Server:
    """A shared PostgreSQL server (never an external one): create databases of your own on it."""
    return request.config.stash[POOL].get(request.param)


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> Server:
    """A shared Redis-compatible server (never an external one)."""
    return request.config.stash[POOL].get(request.param)


@pytest.fixture
def recorded_output(request: pytest.FixtureRequest):
    """``check(path, text, page)``: ``text`` must equal the output recorded in ``path``,
    which ``page`` shows readers; with ``--update-outputs`` (or nothing recorded yet) it
    is written there instead. A page never shows output its command no longer prints."""
    update = request.config.getoption("--update-outputs")
    test_file = rel(request.path)

    def check(path: Path, text: str, page: str) -> None:
        if update or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.read_text(encoding="utf-8") == text, (
            f"{rel(path)}:1: the output changed, so {page} is stale: if the change is "
            f"right, run pytest {test_file} --update-outputs"
        )

    return check
