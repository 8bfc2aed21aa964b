"""Safe to paste: a block meant for the terminal never ends the reader's shell.

A shell snippet is either a script (``set -euo pipefail`` first: it stops at the first
failure, which would also end an interactive shell it was pasted into), shown with the
command that runs it, or meant to be pasted (``run: paste``: no ``set -e``, no ``exit``).
Each pasted one is sourced here in an interactive bash against servers that are not
running, and the shell must still be there afterwards.
"""

from __future__ import annotations

import html
import re
import subprocess
import textwrap

import pytest

from handbook import snippet as snippets
from handbook.paths import SNIPPETS, rel
from handbook.servers.ports import free_port

SURVIVED = "handbook-shell-still-here"


def shell_snippets() -> list[snippets.Snippet]:
    return [snippets.parse(p) for p in sorted(SNIPPETS.rglob("*.sh"))]


PASTED = [s for s in shell_snippets() if s.run == "paste"]


def pasted_into_a_shell(path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``path`` sourced in an interactive bash (what pasting does), then a marker."""
    return subprocess.run(
        ["bash", "--norc", "--noprofile", "-i"],
        input=f". {path}\necho {SURVIVED}\n",
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def stopped_servers() -> dict[str, str]:
    port = free_port()  # nothing listens there
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGUSER": "erpgo_monitor",
        "PGDATABASE": "erpgo",
        "PGCONNECT_TIMEOUT": "3",
        "REDIS_URL": f"redis://erpgo_monitor:x@127.0.0.1:{port}/0",
    }


def test_there_are_snippets_to_paste():
    assert PASTED, "no shell snippet says 'run: paste': this test would prove nothing"


@pytest.mark.parametrize("snippet", PASTED, ids=lambda s: s.name)
def test_a_pasted_snippet_leaves_the_shell_running_when_its_server_is_down(snippet):
    result = pasted_into_a_shell(snippet.path, stopped_servers())
    assert SURVIVED in result.stdout, (
        f"{snippet.name}: pasted into a terminal, it ended the reader's shell when its "
        f"server was down:\n{result.stdout}{result.stderr}"
    )


def test_a_script_pasted_into_a_shell_ends_it_which_is_why_scripts_are_shown_as_scripts(
    tmp_path,
):
    script = tmp_path / "script.sh"
    script.write_text("set -euo pipefail\nfalse\necho unreachable\n")
    result = pasted_into_a_shell(script, stopped_servers())
    assert SURVIVED not in result.stdout and "unreachable" not in result.stdout


def test_a_pasted_snippet_with_exit_or_set_e_is_refused_naming_the_line(tmp_path):
    for line in ("exit 1", "set -e", "set -euo pipefail", "set -o errexit"):
        path = tmp_path / "snippets" / "shell" / "x.sh"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            textwrap.dedent(f"""\
            # Something to paste
            # page: x.md
            # needs: pg
            # run: paste
            psql -X -c 'SELECT 1'
            {line}
            """)
        )
        with pytest.raises(snippets.SnippetError, match=r"x\.sh:6: a snippet pasted into"):
            snippets.parse(path, tmp_path)


def test_every_shell_snippet_on_a_page_says_how_to_run_it(built_site):
    missing = []
    for snippet in shell_snippets():
        page = built_site / snippet.page.replace(".md", ".html")
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
        expected = (
            "Safe to paste into a terminal"
            if snippet.run == "paste"
            else f"and run bash {snippet.name} with the variables above set"
        )
        if expected not in text:
            missing.append(f"{snippet.name}: {rel(page, built_site)} lacks {expected!r}")
    assert not missing, "\n".join(missing)
