"""Guarantee 1: no untested code in the pages.

Every literal block in a page must come from a ``literalinclude`` of a file under
``snippets/`` or ``conf/`` (those files are executed or loaded by the tests).
The exceptions are Python examples written as backtick fences whose info string
starts with ``py`` (pytest-examples collects and runs exactly those) and the
entries of ``docs/untested-allowlist.toml``, each of which carries its reason.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

from handbook.paths import rel
from handbook.sphinxext import docstore

logger = logging.getLogger(__name__)

ALLOWLIST_NAME = "untested-allowlist.toml"
INCLUDE_DIRS = ("snippets", "conf")  # relative to the project root, the parent of docs/
# The fence form pytest-examples collects: backticks, info string starting with "py".
PYTEST_EXAMPLES_FENCE = re.compile(r"^ *```+ *(py|\{\.py)", re.IGNORECASE)
CODE_BLOCK_PYTHON = re.compile(r"^ *(```+|~~~+|:::+) *\{(code-block|code|sourcecode)\} +py", re.I)
MOVE_IT = "move it to snippets/ (or conf/) and include it with literalinclude"


@dataclass(frozen=True)
class AllowedBlock:
    page: str  # docs-relative, e.g. "verification.md"
    starts_with: str  # the block's first line, stripped
    reason: str
    line: int  # line of the entry in the allowlist file, for messages


def load_allowlist(path: Path, root: Path) -> tuple[list[AllowedBlock], list[str]]:
    """Entries of the allowlist and the problems found in it (as ``file:line: ...``)."""
    if not path.exists():
        return [], []
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [], [f"{rel(path, root)}: not valid TOML: {exc}"]
    starts = [i for i, line in enumerate(text.splitlines(), 1) if line.strip() == "[[block]]"]
    entries, problems = [], []
    for index, raw in enumerate(data.get("block", [])):
        line = starts[index] if index < len(starts) else 1
        missing = [k for k in ("page", "starts_with", "reason") if not str(raw.get(k, "")).strip()]
        if missing:
            problems.append(
                f"{rel(path, root)}:{line}: allowlist entry lacks {', '.join(missing)}: "
                "every exception must say which block it allows and why"
            )
            continue
        entries.append(AllowedBlock(raw["page"], raw["starts_with"].strip(), raw["reason"], line))
    return entries, problems


def block_language(node: nodes.literal_block) -> str:
    language = node.get("language") or ""
    return "plain" if language in ("", "default", "none", "text") else language


def project_root(app: Sphinx) -> Path:
    return Path(app.confdir).resolve().parent


def include_problem(node: nodes.literal_block, root: Path) -> str | None:
    """Why an included block is not acceptable, or None if it is."""
    target = Path(node["source"]).resolve()
    if not any(target.is_relative_to(root / name) for name in INCLUDE_DIRS):
        return (
            f"literalinclude of {rel(target, root)}: includes must come from snippets/ or "
            "conf/, where the tests run or load them"
        )
    return None


def source_line(path: str, line: int | None) -> str:
    if not line:
        return ""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    return lines[line - 1] if 0 < line <= len(lines) else ""


def where(node: nodes.Node, root: Path) -> str:
    """``docs/page.md:12``: project-relative, the form every handbook message uses."""
    return f"{rel(node.source, root)}:{node.line}" if node.source else ""


def check_doctree(app: Sphinx, doctree: nodes.document) -> None:
    env = app.env
    allowlist = env.handbook_allowlist
    used = env.handbook_allowlist_used.setdefault(env.docname, set())
    page = env.doc2path(env.docname, False).as_posix()
    root = project_root(app)
    for node in doctree.findall(nodes.literal_block):
        if node.get("source"):
            if Path(node["source"]).resolve().is_relative_to(root / "snippets"):
                shown = env.handbook_snippets_shown.setdefault(env.docname, set())
                shown.add(rel(node["source"], root))
            problem = include_problem(node, root)
            if problem:
                logger.warning(
                    problem, location=where(node, root), type="handbook", subtype="include"
                )
            continue
        opener = source_line(node.source or "", node.line)
        if PYTEST_EXAMPLES_FENCE.match(opener):
            continue  # run by tests/test_examples.py
        first = node.astext().strip().splitlines()[0].strip() if node.astext().strip() else ""
        allowed = [a for a in allowlist if a.page == page and a.starts_with == first]
        if allowed:
            used.add(allowed[0].line)
            continue
        language = block_language(node)
        if CODE_BLOCK_PYTHON.match(opener):
            message = (
                f"untested {language} block: a {{code-block}} python directive is not run "
                "by pytest-examples; write it as a ```python fence so the tests run it, or "
                f"{MOVE_IT}"
            )
        else:
            message = f"untested {language} block: {MOVE_IT}"
        logger.warning(message, location=where(node, root), type="handbook", subtype="untested")


def load_into_env(app: Sphinx) -> None:
    path = Path(app.srcdir) / ALLOWLIST_NAME
    entries, problems = load_allowlist(path, project_root(app))
    for problem in problems:
        logger.warning(problem, type="handbook", subtype="allowlist")
    app.env.handbook_allowlist = entries


def report_unused(app: Sphinx, env: BuildEnvironment) -> None:
    used = docstore.everything(env, "handbook_allowlist_used")
    for entry in env.handbook_allowlist:
        if entry.line not in used:
            allowlist = rel(Path(app.srcdir) / ALLOWLIST_NAME, project_root(app))
            logger.warning(
                f"{allowlist}:{entry.line}: allowlist entry for {entry.page} "
                f"({entry.starts_with!r}) matches no block: remove it",
                type="handbook",
                subtype="allowlist",
            )


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", load_into_env)
    app.connect("doctree-read", check_doctree)
    app.connect("env-check-consistency", report_unused)
