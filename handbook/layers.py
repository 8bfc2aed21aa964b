"""The package's layers, read from its own docstrings (with ``ast``, never imported).

The foundation modules (:data:`FOUNDATION`) are importable from anywhere and import only
each other. Each subpackage's ``__init__.py`` docstring says what it holds and ends with
``May import: a, b.``: the subpackages (and foundation modules) its modules may import.
:data:`ON_TOP` and every other top-level module (``pytest_plugin.py``, ``benchmark.py``,
``shellcheck.py``, ...) sit on top: they may import anything and nothing imports them.
``tests/test_package.py`` enforces this; ``{package-map}`` (``sphinxext/packagemap.py``)
shows it in docs/onboarding/codebase.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from handbook.paths import rel

# Importable from anywhere; they import only each other.
FOUNDATION = ("paths", "yamlfile", "snippet", "report", "site", "markdown")
# Subpackages on top of everything: they may import anything and nothing imports them.
# (Every top-level module that is not a foundation module is on top too.)
ON_TOP = ("sphinxext",)
MAY_IMPORT = "May import:"
ONLY_FOUNDATION = "only the foundation modules"


def docstring(path: Path) -> tuple[str, int]:
    """A module's docstring (cleaned like ``inspect.cleandoc``) and the line it starts on."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    first = tree.body[0] if tree.body else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
        return "", 1
    return ast.get_docstring(tree) or "", first.lineno


def subpackages(package: Path) -> list[str]:
    """The subpackages of ``package`` (directories with an ``__init__.py``), sorted."""
    return sorted(p.parent.name for p in package.glob("*/__init__.py"))


def may_import(init: Path) -> list[str]:
    """The names a subpackage's docstring allows it to import: ``May import: a, b.``

    Raises ``ValueError`` naming ``file:line`` when the line is missing or unreadable.
    """
    text, start = docstring(init)
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines) if line.lstrip().startswith(MAY_IMPORT)]
    if not found:
        raise ValueError(
            f"{rel(init)}:{start}: the docstring has no '{MAY_IMPORT}' line: end it with "
            f"'{MAY_IMPORT} <the subpackages and foundation modules it uses>.' "
            f"(or '{MAY_IMPORT} {ONLY_FOUNDATION}.')"
        )
    index = found[0]
    words = [lines[index].split(MAY_IMPORT, 1)[1]]
    for line in lines[index + 1 :]:
        if not line.strip() or words[-1].rstrip().endswith("."):
            break
        words.append(line)
    listed = " ".join(" ".join(words).split()).rstrip(".")
    if listed.lower() == ONLY_FOUNDATION:
        return []
    names = [name.strip().strip("`").removeprefix("and ").strip() for name in listed.split(",")]
    if not names or not all(re.fullmatch(r"[a-z_]+", name) for name in names):
        raise ValueError(
            f"{rel(init)}:{start + index}: cannot read {MAY_IMPORT!r} {listed!r}: list "
            "module names separated by commas, ending with a full stop"
        )
    return names
