"""The onboarding guide's setup sequence, run the way a new hire follows it.

``setup_steps()`` reads the ``{snippet}`` includes of ``docs/onboarding/setup.md`` in
page order. ``run_setup()`` runs them one by one with ``bash``, each as if typed in a
fresh terminal: a clean environment, ``HOME`` in a scratch directory, the checkout as
the working directory. Steps that cannot run here are lint-only snippets without a
``verified-by:`` header (installing Debian packages as root, cloning over the network,
installing from PyPI); the runner stands in for what they leave behind:

- the checkout at ``~/src/erpgo-handbook`` is a link to this repository;
- the activated virtualenv is the running interpreter's bin dir first on ``PATH``.

Every other step runs for real, and the last one is the verification. Whatever happens,
the dev servers the sequence started are stopped (``python -m handbook.guide.devservers stop``
in the same ``HOME``, then the process itself) and the scratch directory is removed.

    python -m handbook.guide.onboarding        # runs the sequence, prints each step's outcome
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from handbook import snippet as snippets
from handbook.guide import devservers
from handbook.paths import DOCS, ROOT, rel
from handbook.servers import scratch

SETUP_PAGE = DOCS / "onboarding" / "setup.md"
CHECKOUT = "src/erpgo-handbook"  # under HOME, as the clone step names it
INCLUDE = re.compile(r"^\s*(?:`{3,}|:{3,})\{snippet\}\s+(?P<path>\S+)\s*$")
STEP_TIMEOUT = 240  # seconds; the start step may copy and initdb a PostgreSQL install
WRAPPER = 'trap \'echo "onboarding-failed-at-line:$LINENO" >&2\' ERR; . "$0"'
FAILED_AT = re.compile(r"^onboarding-failed-at-line:(?P<line>\d+)\n?", re.M)


@dataclass
class Step:
    snippet: snippets.Snippet
    page_line: int  # where the page includes it

    @property
    def runs(self) -> bool:
        """False for a step the runner stands in for (lint-only, no test of its own)."""
        return not self.snippet.lint_only or bool(self.snippet.verified_by)


@dataclass
class StepResult:
    step: Step
    ran: bool
    returncode: int = 0
    output: str = ""  # stdout then stderr
    message: str = ""  # "snippets/...:line: ..." when it failed

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def setup_steps(page: Path = SETUP_PAGE, root: Path = ROOT) -> list[Step]:
    """The snippets the page includes, in page order."""
    steps = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        match = INCLUDE.match(line)
        if match:
            path = root / "snippets" / match["path"]
            steps.append(Step(snippets.parse(path, root), number))
    return steps


def clean_env(home: Path, python: str = sys.executable) -> dict[str, str]:
    """What a new hire's terminal has after activating the virtualenv: nothing of ours."""
    venv_bin = str(Path(python).parent)
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join([venv_bin, "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "USER": os.environ.get("USER", "root"),
        "SHELL": "/bin/bash",
        "TERM": "dumb",
        # a sequence that dies half-way cannot leave servers running for more than this
        devservers.TTL_VAR: "900",
    }
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


@contextlib.contextmanager
def new_hire(repo: Path = ROOT, python: str = sys.executable) -> Iterator[tuple[Path, dict]]:
    """A scratch HOME with the checkout in place; (checkout, env). Stops the dev servers
    and removes the scratch directory on the way out, even after a failure."""
    scratch_dir = Path(tempfile.mkdtemp(prefix="handbook-newhire-"))
    home = scratch_dir / "home"
    checkout = home / CHECKOUT
    checkout.parent.mkdir(parents=True)
    checkout.symlink_to(repo.resolve(), target_is_directory=True)
    env = clean_env(home, python)
    try:
        yield checkout, env
    finally:
        stop_servers(checkout, env)
        shutil.rmtree(scratch_dir, ignore_errors=True)


def stop_servers(checkout: Path, env: dict[str, str]) -> None:
    """``devservers stop`` as the guide says; then make sure the daemon is gone."""
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        subprocess.run(
            ["python", "-m", "handbook.guide.devservers", "stop"],
            cwd=checkout,
            env=env,
            capture_output=True,
            timeout=devservers.STOP_TIMEOUT + 10,
            check=False,
        )
    pid_file = devservers.state_dir(env) / "daemon.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        if scratch.process_alive(pid):
            scratch.terminate(pid, signal.SIGTERM, grace=devservers.STOP_TIMEOUT)


def run_step(step: Step, checkout: Path, env: dict[str, str]) -> StepResult:
    snippet = step.snippet
    if not step.runs:
        return StepResult(step, ran=False)
    try:
        result = subprocess.run(
            ["bash", "-E", "-c", WRAPPER, str(snippet.path)],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return StepResult(
            step,
            True,
            124,
            "",
            f"{snippet.name}:{snippet.body_start}: did not finish in {STEP_TIMEOUT} s",
        )
    failed_at = FAILED_AT.search(result.stderr)
    stderr = FAILED_AT.sub("", result.stderr)
    output = result.stdout + stderr
    if result.returncode == 0:
        return StepResult(step, True, 0, output)
    line = failed_at["line"] if failed_at else snippet.body_start
    tail = stderr.strip().splitlines()
    page = rel(DOCS / (snippet.page or ""))
    return StepResult(
        step,
        True,
        result.returncode,
        output,
        f"{snippet.name}:{line}: exited {result.returncode}: "
        f"{tail[-1] if tail else 'no message on stderr'} "
        f"(step included at {page}:{step.page_line}; a new hire following the page stops here)",
    )


def run_steps(steps: list[Step], repo: Path = ROOT, python: str = sys.executable):
    """Run ``steps`` in order as a new hire; stop at the first failure. All results."""
    results = []
    with new_hire(repo, python) as (checkout, env):
        for step in steps:
            results.append(run_step(step, checkout, env))
            if not results[-1].ok:
                break
    return results


def run_setup(page: Path = SETUP_PAGE) -> list[StepResult]:
    return run_steps(setup_steps(page))


def expected_output(step: Step) -> str | None:
    """The ``<snippet>.out`` beside a step, masked as the harness masks: what the page shows."""
    path = step.snippet.path.with_name(step.snippet.path.name + ".out")
    return path.read_text(encoding="utf-8") if path.exists() else None


def main() -> int:
    failed = False
    for result in run_setup():
        name = result.step.snippet.name
        if not result.ran:
            print(f"stood in for: {name} ({result.step.snippet.lint_only})")
        elif result.ok:
            print(f"ok: {name}")
        else:
            print(f"FAILED: {result.message}\n{result.output}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
