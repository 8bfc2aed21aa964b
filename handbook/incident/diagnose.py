"""``handbook diagnose``: run a runbook's read-only investigation against the servers given.

The steps are the page's own ``{snippet}`` includes under "Investigation", in its order
(``runbooks``); each runs through the runner of its kind (``handbook.runners``), except
PromQL, which is sent to the Prometheus the engineer names (its HTTP API). A snippet not
marked ``mode: read-only`` is refused, never run. psql gets a statement timeout and a
read-only default transaction (``PGOPTIONS``); every step gets a time limit. A server
that does not answer is a finding, and its remaining steps are not run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from handbook.incident import verdicts
from handbook.incident.runbooks import Runbook, Step, UnknownRunbook, find, runbooks
from handbook.runners import Target
from handbook.runners import run as run_snippet
from handbook.site import base_url

STATEMENT_TIMEOUT = "5s"
PGBOUNCER_VAR = "HANDBOOK_PGBOUNCER_DSN"  # a PgBouncer pod's admin console, for via: pgbouncer
STEP_TIMEOUT = 30.0
UNREACHABLE = (
    "could not connect",
    "connection refused",
    "Connection refused",
    "could not translate host name",
    "timeout expired",
    "Could not connect to Redis",
    "server closed the connection",
)
NAMES = {"pg": "PostgreSQL", "redis": "Redis", "prometheus": "Prometheus"}


class UsageError(Exception):
    """Something the engineer must set or fix before diagnose can run; exit code 2."""


@dataclass
class Finding:
    step: str
    title: str
    snippet: str
    page_line: str  # "docs/runbooks/x.md:57"
    command: str
    guidance: str
    status: str  # "ok", "cause", "refused", "unreachable", "failed", "skipped"
    output: str = ""
    verdict: str | None = None  # the cause named, when the step's rule found one
    rule: str | None = None
    note: str = ""


@dataclass
class Diagnosis:
    runbook: str
    title: str
    url: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def causes(self) -> list[str]:
        return [f.verdict for f in self.findings if f.verdict]


# -- the environment the engineer points it at ---------------------------------------------


def dsn_env(dsn: str) -> dict[str, str]:
    """PG* variables for a ``postgresql://`` URL or a ``key=value`` conninfo string."""
    if "://" in dsn:
        url = urllib.parse.urlsplit(dsn)
        pairs = {
            "host": url.hostname or "",
            "port": str(url.port or ""),
            "user": urllib.parse.unquote(url.username or ""),
            "password": urllib.parse.unquote(url.password or ""),
            "dbname": url.path.lstrip("/"),
        }
        pairs |= dict(urllib.parse.parse_qsl(url.query))
    else:
        pairs = dict(part.split("=", 1) for part in dsn.split() if "=" in part)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD"}
    names |= {"dbname": "PGDATABASE", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT"}
    return {names[k]: v for k, v in pairs.items() if k in names and v}


def environment(source: dict[str, str], statement_timeout: str) -> dict[str, str]:
    """The clients' environment: the caller's, HANDBOOK_PG_DSN spelled as PG*, and psql
    options that bound every statement and make every transaction read-only."""
    env = dict(source)
    if env.get("HANDBOOK_PG_DSN"):
        env |= dsn_env(env["HANDBOOK_PG_DSN"])
    options = f"-c statement_timeout={statement_timeout} -c default_transaction_read_only=on"
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {options}".strip()
    env.setdefault("PGCONNECT_TIMEOUT", "5")
    return env


def needs(step: Step) -> list[str]:
    if step.snippet.kind == "promql":
        return ["prometheus"]
    return step.snippet.servers_needed()


def missing(book: Runbook, env: dict[str, str]) -> list[str]:
    """One located line per server a read-only step needs and the environment does not name."""
    problems = []
    wanted = {
        "pg": ("PGHOST", "HANDBOOK_PG_DSN"),
        "redis": ("REDIS_URL",),
    }
    for kind, variables in wanted.items():
        steps = [s for s in book.steps if s.snippet.read_only and kind in needs(s)]
        if steps and not any(env.get(v) for v in variables):
            first = steps[0]
            problems.append(
                f"{book.page}:{first.line}: step {first.number} ({first.snippet.name}) needs "
                f"{NAMES[kind]}, and {' or '.join(variables)} is not set: export it "
                f"(e.g. {EXAMPLES[kind]}) and run again"
            )
    return problems


EXAMPLES = {
    "pg": "PGHOST=db.internal PGPORT=5432 PGUSER=erpgo_monitor PGDATABASE=erpgo",
    "redis": "REDIS_URL=redis://erpgo_monitor:PASSWORD@cache.internal:6379/0",
}


# -- running the steps ---------------------------------------------------------------------


def describe(kind: str, env: dict[str, str], prometheus: str | None) -> str:
    if kind == "pg":
        return f"PostgreSQL at {env.get('PGHOST', 'local socket')}:{env.get('PGPORT', '5432')}"
    if kind == "redis":
        url = urllib.parse.urlsplit(env.get("REDIS_URL", ""))
        return f"Redis at {url.hostname}:{url.port or 6379}"
    return f"Prometheus at {prometheus}"


def promql(step: Step, prometheus: str, timeout: float) -> tuple[bool, str]:
    """Send the step's expression to Prometheus's instant-query API: (ok, a table's text)."""
    lines = step.snippet.body().splitlines()
    expression = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    query = urllib.parse.urlencode({"query": expression})
    url = f"{prometheus.rstrip('/')}/api/v1/query?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConnectionError(f"could not connect to {prometheus}: {exc}") from exc
    rows = []
    for sample in data.get("data", {}).get("result", []):
        labels = ", ".join(f"{k}={v}" for k, v in sorted(sample.get("metric", {}).items()))
        rows.append(f"{labels} | {sample.get('value', ['', ''])[1]}")
    return True, "labels | value\n--------+------\n" + "\n".join(rows) + f"\n({len(rows)} rows)"


def run_step(
    step: Step, env: dict[str, str], prometheus: str | None, timeout: float, dead: dict
) -> Finding:
    snippet = step.snippet
    finding = Finding(
        step=step.number,
        title=step.title,
        snippet=snippet.name,
        page_line=f"{step.line}",
        command=snippet.body().strip(),
        guidance=step.guidance,
        status="ok",
    )
    kinds = needs(step)
    rule = verdicts.rule(snippet.name.removeprefix("snippets/"))
    finding.rule = rule[0] if rule else None
    if not snippet.read_only:
        finding.status = "refused"
        finding.note = (
            f"not run: {snippet.name}:{snippet.header.get('mode', 1)} is 'mode: "
            f"{snippet.mode}'; diagnose runs only read-only steps: run it by hand if the "
            "page's resolution calls for it"
        )
        return finding
    if snippet.lint_only:
        finding.status, finding.note = "skipped", f"not run: lint-only ({snippet.lint_only})"
        return finding
    for kind in kinds:
        if kind in dead:
            finding.status = "skipped"
            finding.note = f"not run: {dead[kind]} did not answer (step {dead[kind + ':step']})"
            return finding
    if snippet.via == "pgbouncer":
        if not env.get(PGBOUNCER_VAR):
            finding.status = "skipped"
            finding.note = (
                "not run: it reaches PostgreSQL through PgBouncer: pass --pgbouncer DSN or set "
                f"{PGBOUNCER_VAR} (e.g. postgresql://erpgo_monitor@pooler:6432/pgbouncer)"
            )
            return finding
        # PgBouncer refuses the options startup parameter: its admin console is read-only.
        env = {k: v for k, v in env.items() if k != "PGOPTIONS"} | dsn_env(env[PGBOUNCER_VAR])
    if "prometheus" in kinds and not prometheus:
        finding.status = "skipped"
        finding.note = "not run: no Prometheus: pass --prometheus URL or set PROMETHEUS_URL"
        return finding
    try:
        if "prometheus" in kinds:
            ok, finding.output = promql(step, prometheus, timeout)
            message = ""
        else:
            target = Target(env, ", ".join(describe(k, env, prometheus) for k in kinds) or "local")
            target = Target(target.env, target.servers, timeout=timeout)
            outcome = run_snippet(snippet, target)
            ok, finding.output, message = outcome.ok, outcome.output, outcome.message
            if not ok and outcome.returncode == 127:
                finding.status = "skipped"
                finding.note = f"not run: a program it needs is not installed: {message}"
                return finding
    except ConnectionError as exc:
        ok, message = False, str(exc)
    if not ok:
        text = f"{message}\n{finding.output}"
        if any(marker in text for marker in UNREACHABLE):
            kind = next((k for k in kinds if k != "shell"), kinds[0] if kinds else "pg")
            dead[kind] = describe(kind, env, prometheus)
            dead[kind + ":step"] = step.number
            finding.status = "unreachable"
            finding.verdict = f"{dead[kind]} does not answer"
        else:
            finding.status = "failed"
        finding.note = message.strip()
        return finding
    if rule:
        cause = rule[1](finding.output)
        if cause:
            finding.status, finding.verdict = "cause", cause
    return finding


def diagnose(
    book: Runbook,
    env: dict[str, str],
    prometheus: str | None = None,
    timeout: float = STEP_TIMEOUT,
    console: Console | None = None,
) -> Diagnosis:
    """Run ``book``'s investigation steps; progress goes to ``console`` (stderr)."""
    result = Diagnosis(book.name, book.title, book.url(base_url()))
    dead: dict[str, str] = {}
    console = console or Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(book.name, total=len(book.steps))
        for step in book.steps:
            progress.update(task, description=f"step {step.number}: {step.title}")
            if not console.is_terminal:
                console.print(f"step {step.number}/{len(book.steps)}: {step.snippet.name}")
            result.findings.append(run_step(step, env, prometheus, timeout, dead))
            progress.advance(task)
    return result


# -- writing the findings ------------------------------------------------------------------


def tables(output: str) -> list[Table]:
    """Every result in psql-style aligned output (psql's, or the PromQL step's) as a rich table."""
    shown = []
    for rows in verdicts.tables(output):
        columns = list(rows[0]) if rows else []
        result = Table(*columns) if columns else Table("(no rows)")
        for row in rows:
            result.add_row(*(escape(row.get(c, "")) for c in columns))
        shown.append(result)
    return shown


def summary(result: Diagnosis) -> str:
    if result.causes:
        return "Cause found: " + "; ".join(result.causes)
    return "No cause found by the steps with a verdict rule; read each step's result."


def text(result: Diagnosis, console: Console) -> None:
    console.rule(f"{result.title}: {result.url}")
    for f in result.findings:
        console.print(f"\n[bold]Step {f.step}. {escape(f.title)}[/bold]  ({f.snippet})")
        console.print(escape(f.command), style="dim", highlight=False)
        if f.output:
            for shown in tables(f.output) or [escape(f.output.rstrip())]:
                console.print(shown, highlight=False)
        if f.note:
            console.print(f"[yellow]{escape(f.note)}[/yellow]", highlight=False)
        console.print(f"What to look for: {escape(f.guidance)}", highlight=False)
        if f.verdict:
            console.print(f"[bold red]Verdict: {escape(f.verdict)}[/bold red]")
        elif f.rule and f.status == "ok":
            console.print(f"Verdict: nothing found ({escape(f.rule)})")
    console.print(f"\n[bold]{escape(summary(result))}[/bold]")


def cell(f: Finding, width: int = 90) -> str:
    """One line saying what a step found, for the markdown summary table."""
    if f.verdict:
        return f"**{f.verdict}**"
    if f.status in ("skipped", "refused"):
        text = f.note.removeprefix("not run: ")
        text = "not run: " + text
    elif f.status == "failed":
        text = "failed: " + re.sub(
            r"^snippets/\S+:\d+: ", "", f.note.splitlines()[0] if f.note else ""
        )
    elif f.rule:
        text = f"nothing found ({f.rule})"
    else:
        text = "see the result"
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown(result: Diagnosis) -> str:
    lines = [f"### Diagnosis: [{result.title}]({result.url})", "", f"**{summary(result)}**", ""]
    lines += ["| Step | Check | Snippet | Result |", "|---|---|---|---|"]
    for f in result.findings:
        outcome = cell(f)
        lines.append(f"| {f.step} | {f.title} | `{f.snippet}` | {outcome.replace('|', '/')} |")
    for f in result.findings:
        if f.output or f.note:
            lines += ["", f"<details><summary>Step {f.step}: {f.title}</summary>", "", "```"]
            lines += [(f.output or f.note).rstrip(), "```", "", "</details>"]
    return "\n".join(lines) + "\n"


def listing(console: Console) -> None:
    aliases: dict[str, list[str]] = {}
    from handbook.incident.runbooks import alerts

    for alert, page in alerts().items():
        aliases.setdefault(page, []).append(alert)
    for book in runbooks().values():
        names = ", ".join(sorted(aliases.get(book.name, []))) or "no alert"
        console.print(f"[bold]{book.name}[/bold] ({names}): {book.title}")
        for step in book.steps:
            mark = "" if step.snippet.read_only else r"  \[not run: writes]"
            console.print(f"  {step.number}. {escape(step.title)}  {step.snippet.name}{mark}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="handbook diagnose",
        description=(
            "Run a runbook's read-only investigation steps, in the page's order, against "
            "the servers the environment names: PG* or HANDBOOK_PG_DSN (PostgreSQL), "
            "REDIS_URL (Redis), --prometheus or PROMETHEUS_URL (PromQL steps)."
        ),
    )
    p.add_argument("runbook", nargs="?", help="a runbook (connection-pool-exhaustion) or an alert")
    p.add_argument("--list", action="store_true", help="list the runbooks and their steps")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    add_target_options(p)
    return p


def add_target_options(p: argparse.ArgumentParser) -> None:
    """The options that say where the steps run and how long they may take: the same for
    ``diagnose`` and ``respond``, which runs it for each alert."""
    p.add_argument(
        "--prometheus",
        default=os.environ.get("PROMETHEUS_URL"),
        help="Prometheus URL, for the PromQL steps (or PROMETHEUS_URL)",
    )
    p.add_argument(
        "--pgbouncer",
        default=os.environ.get(PGBOUNCER_VAR),
        help=f"PgBouncer admin console DSN (or {PGBOUNCER_VAR})",
    )
    p.add_argument(
        "--statement-timeout",
        default=STATEMENT_TIMEOUT,
        help=f"psql's statement_timeout (default {STATEMENT_TIMEOUT})",
    )
    p.add_argument(
        "--step-timeout",
        type=float,
        default=STEP_TIMEOUT,
        help=f"seconds a step may run (default {STEP_TIMEOUT:.0f})",
    )


def main(argv: list[str] | None = None) -> int:
    """Exit 0: no cause found; 1: a cause (or a dead server) found; 2: usage error."""
    args = parser().parse_args(argv)
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    if args.list:
        listing(out)
        return 0
    if not args.runbook:
        err.print("handbook diagnose: error: name a runbook or an alert (or --list)")
        return 2
    try:
        book = find(args.runbook)
        env = environment(dict(os.environ), args.statement_timeout)
        if args.pgbouncer:
            env[PGBOUNCER_VAR] = args.pgbouncer
        problems = missing(book, env)
        if problems:
            raise UsageError("\n".join(problems))
    except (UnknownRunbook, UsageError) as exc:
        err.print(f"handbook diagnose: error: {escape(str(exc))}", highlight=False)
        return 2
    result = diagnose(book, env, args.prometheus, args.step_timeout, err)
    if args.format == "json":
        print(json.dumps(asdict(result) | {"causes": result.causes}, indent=2))
    elif args.format == "markdown":
        print(markdown(result), end="")
    else:
        text(result, out)
    return 1 if result.causes else 0
