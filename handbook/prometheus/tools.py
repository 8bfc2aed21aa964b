"""promtool, amtool and alertmanager: finding them and running them.

Nothing here imports pytest: a tool that is missing raises :class:`ToolMissing`
saying what to install, and the caller decides whether that is a skip or a failure.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from handbook.yamlfile import Finding, report

INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager"
TOOLS = {
    # name: (environment override, candidate executables, Debian package)
    "promtool": ("HANDBOOK_PROMTOOL", ("promtool",), "prometheus"),
    "amtool": ("HANDBOOK_AMTOOL", ("amtool",), "prometheus-alertmanager"),
    "alertmanager": (
        "HANDBOOK_ALERTMANAGER",
        ("alertmanager", "prometheus-alertmanager"),
        "prometheus-alertmanager",
    ),
}
TOOL_TIMEOUT = 60  # seconds


class ToolMissing(RuntimeError):
    """promtool, amtool or alertmanager is not installed; the message says what to install."""


def find_tool(name: str) -> str | None:
    """The executable for promtool, amtool or alertmanager, or None."""
    env, candidates, _ = TOOLS[name]
    override = os.environ.get(env)
    if override:
        return override
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def require_tool(name: str) -> str:
    """Like :func:`find_tool`, but raises :class:`ToolMissing` saying what to install."""
    found = find_tool(name)
    if not found:
        env, candidates, package = TOOLS[name]
        raise ToolMissing(
            f"{name} not found ({' or '.join(candidates)} on PATH, or ${env}): "
            f"install it with `{INSTALL_HINT}` (package {package})"
        )
    return found


@dataclass
class ToolResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.findings

    def report(self) -> str:
        """``file:line: message`` per finding, then what the tool printed."""
        head = report(self.findings) or f"{self.argv[0]} exited with {self.returncode}"
        command = " ".join(str(a) for a in self.argv)
        output = "\n".join(x for x in (self.stdout.strip(), self.stderr.strip()) if x)
        return f"{head}\n--- {command}\n{output}"


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )


@functools.cache
def version(name: str) -> str:
    """``"2.42.0"`` from ``promtool --version``; "" when it does not say."""
    done = run([require_tool(name), "--version"])
    words = (done.stdout + done.stderr).split()
    for before, word in itertools.pairwise(words):
        if before.rstrip(",") == "version":
            return word.split("+")[0]
    return ""
