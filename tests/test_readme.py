"""README.md is complete and true: its commands, packages and variables are the project's.

- The Quick start is two commands, the site first, then the test command, and
  ``.ci/run`` runs that same test command.
- "Verify one page" runs the test command on one page that exists, and every
  ``tox -e tests -- PATH`` the README shows names a file that exists.
- Every system package ``.ci/run`` installs has a row saying what it adds, and every
  row names a package ``.ci/run`` installs.
- Every ``HANDBOOK_*`` variable the code reads is in the variables table, and the
  table names no variable that nothing reads.
- No file of the project points at documents outside it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from handbook.paths import ROOT
from handbook.selection import is_target

README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
# "HANDBOOK_" + a name; spelled in two parts so that this file does not match itself.
VARIABLE = re.compile("HANDBOOK" + r"_[A-Z0-9_]*[A-Z0-9]\b")
# Where variables are read: the package, the tests, the Sphinx and pytest entry points,
# and the scripts CI and the Docker images run.
READERS = ("handbook/**/*.py", "tests/**/*.py", "*.py", "docs/conf.py", ".ci/run", "images/*.sh")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str) -> tuple[int, str]:
    """The README's ``## title`` section: its first line number and its text."""
    text = readme()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md: no '## {title}' section"
    return text.count("\n", 0, match.start()) + 1, match[1]


def table_first_column(title: str) -> dict[str, int]:
    """Every `code` name in the first column of the section's table, with its line."""
    start, text = section(title)
    names = {}
    for offset, line in enumerate(text.splitlines(), start=start + 1):
        cells = line.split("|")
        if len(cells) < 3 or set(cells[1].strip()) <= {"-"}:
            continue
        for name in re.findall(r"`([^`]+)`", cells[1]):
            names[name] = offset
    return names


def code_blocks(title: str, language: str) -> list[str]:
    _, text = section(title)
    return [b.strip() for b in re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)]


def ci_packages() -> set[str]:
    """The packages of ``.ci/run``'s ``packages=( ... )`` list (comments left out)."""
    lines = CI_RUN.read_text(encoding="utf-8").split("packages=(\n", 1)[1].splitlines()
    words = []
    for line in (line.split("#", 1)[0].strip() for line in lines):
        if line == ")":
            return set(words)
        words += line.split()
    raise AssertionError(".ci/run: the packages=( list has no closing ')' line")


def project_files() -> list[Path]:
    """The files of the project: committed or new, not ignored (the build output is)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout, so the project's files are unknown: {listed.stderr}")
    return [ROOT / name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]


def variables_read() -> dict[str, str]:
    """Every HANDBOOK_* name in the code, with the first ``file:line`` that names it."""
    found: dict[str, str] = {}
    files = sorted({path for pattern in READERS for path in ROOT.glob(pattern)})
    for path in files:
        if path == Path(__file__) or ".tox" in path.parts or ".venv" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in VARIABLE.findall(line):
                found.setdefault(name, f"{path.relative_to(ROOT)}:{number}")
    return found


def test_quick_start_is_the_site_then_the_tests_and_ci_runs_the_same_test_command():
    commands = code_blocks("Quick start", "sh")
    assert len(commands) == 2, (
        f"README.md: the Quick start should show two commands (the site, then the tests), "
        f"not {len(commands)}: {commands}"
    )
    site, tests = commands
    for command in commands:
        assert command.startswith("python3 -m venv .venv && "), (
            f"README.md: {command!r} must set itself up from a fresh clone (venv, then tox)"
        )
    assert site.endswith(".venv/bin/tox -e docs"), (
        f"README.md: the first command builds the site: {site!r}"
    )
    assert tests.endswith(".venv/bin/tox"), (
        f"README.md: the second command runs bare tox: {tests!r}"
    )
    ci_lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()]
    assert tests in ci_lines, (
        f".ci/run: CI runs the README's test command; add the line {tests!r} (as written in "
        "README.md's Quick start) or change both"
    )
    full = code_blocks("Full verification (what CI runs)", "sh")
    assert full == ["sudo bash .ci/run"], f"README.md: the full verification is .ci/run: {full}"


def test_verify_one_page_runs_the_test_env_on_a_page_and_every_path_shown_exists():
    commands = code_blocks("Verify one page", "sh")
    assert len(commands) == 1, f"README.md: 'Verify one page' shows one command: {commands}"
    prefix = ".venv/bin/tox -e tests -- "
    assert commands[0].startswith(prefix), (
        f"README.md: 'Verify one page' runs the tests env on a page ({prefix}docs/...): "
        f"{commands[0]!r}"
    )
    page = ROOT / commands[0].removeprefix(prefix).strip()
    assert page.suffix == ".md" and is_target(page, ROOT), (
        f"README.md: 'Verify one page' names {page.relative_to(ROOT)}, which is not a page "
        "under docs/: name one that exists"
    )
    text = readme()
    shown = re.findall(r"tox -e tests -- ((?:docs|snippets|conf)/[^\s`:]+)", text)
    assert shown, "README.md shows no `tox -e tests -- PATH` command"
    for path in shown:
        line = text.count("\n", 0, text.index(path)) + 1
        assert (ROOT / path).is_file(), (
            f"README.md:{line}: `tox -e tests -- {path}`: no such file: name one that exists"
        )


def test_every_package_ci_installs_has_a_row_saying_what_it_adds():
    rows = table_first_column("System packages")
    installed = ci_packages()
    undocumented = sorted(installed - set(rows))
    assert not undocumented, (
        f".ci/run installs {undocumented}, which README.md's 'System packages' table does "
        "not explain: add a row saying what each adds (and what goes unverified without it)"
    )
    not_installed = {name: line for name, line in rows.items() if name not in installed}
    assert not not_installed, "\n".join(
        f"README.md:{line}: `{name}` is not in .ci/run's packages list: install it there or "
        "drop the row"
        for name, line in sorted(not_installed.items(), key=lambda item: item[1])
    )


def test_every_variable_the_code_reads_is_documented_and_only_those():
    documented = table_first_column("Environment variables")
    read = variables_read()
    missing = sorted(set(read) - set(documented))
    assert not missing, "README.md's 'Environment variables' table lacks:\n" + "\n".join(
        f"{read[name]}: {name} (add a row saying what it sets)" for name in missing
    )
    unread = {name: line for name, line in documented.items() if name not in read}
    assert not unread, "\n".join(
        f"README.md:{line}: {name} is read nowhere in the code: drop the row"
        for name, line in sorted(unread.items(), key=lambda item: item[1])
    )


# What points outside the repository: the documents a session was given beside it.
OUTSIDE = re.compile(
    "|".join(
        (
            r"\.\./" + "shared",
            r"\.\./" + "seed",
            "shared/" + "spec",
            "FIELD" + "-NOTES",
            r"\bHANDBOOK" + r"\.md\b",
        )
    )
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_no_file_refers_to_documents_outside_the_project():
    found = []
    for path in project_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a binary file (an image)
        for number, line in enumerate(text.splitlines(), start=1):
            where = f"{path.relative_to(ROOT)}:{number}"
            found += [f"{where}: {match[0]!r}" for match in OUTSIDE.finditer(line)]
            if path.suffix != ".md":
                continue
            for target in LINK.findall(line):
                if "://" in target or target.startswith(("#", "mailto:")):
                    continue
                resolved = (path.parent / target.split("#", 1)[0]).resolve()
                if not resolved.is_relative_to(ROOT):
                    found.append(f"{where}: link {target!r} leaves the repository")
    assert not found, (
        "files that point at documents outside the project (a reader of the repository "
        "cannot follow them: say what is meant here instead):\n" + "\n".join(found)
    )
