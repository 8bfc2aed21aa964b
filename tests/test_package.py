"""The handbook package keeps its shape: no import circle, each subpackage importing only
what its ``__init__.py`` docstring allows, pytest and psycopg only where they belong.

The layers: the foundation modules (``FOUNDATION``) import only each other and are
importable from anywhere. Each subpackage's docstring ends with a ``May import:`` line
naming the subpackages (and foundation modules) it uses. On top sit the Sphinx extension
(``handbook/sphinxext/``) and every other top-level module (``pytest_plugin.py``,
``benchmark.py``, ``shellcheck.py``, ...): they may import anything, and nothing under
``handbook/`` below them imports them. docs/onboarding/codebase.md shows the same map,
rendered from the same docstrings (``handbook/layers.py``).
"""

from __future__ import annotations

import ast
import functools
import json
import random
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from handbook.layers import FOUNDATION, ON_TOP, docstring, may_import, subpackages
from handbook.paths import ROOT, rel

PACKAGE = ROOT / "handbook"
# Runners, servers, schemas and drills know nothing of pytest, nor does the Sphinx side.
NO_PYTEST = ("runners", "servers", "schema", "drills", "sphinxext")


@dataclass(frozen=True)
class Import:
    source: Path  # the importing file
    line: int
    target: str  # the module (or package) imported: "handbook.prometheus.alerts"
    type_checking: bool  # under ``if TYPE_CHECKING:``: never executed
    names: tuple[str, ...] = ()  # what ``from ... import`` takes

    @property
    def where(self) -> str:
        return f"{rel(self.source)}:{self.line}"


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_of(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path) -> list[Import]:
    """Every import statement of a file, wherever it is (module level, in a function,
    under TYPE_CHECKING), each named by the module it loads."""
    found: list[Import] = []

    def visit(node: ast.AST, type_checking: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_checking)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(path, node.lineno, alias.name, type_checking))
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(path, node)
            names = tuple(alias.name for alias in node.names)
            submodules = [f"{module}.{name}" for name in names if f"{module}.{name}" in MODULES]
            for target in submodules or [module]:
                found.append(Import(path, node.lineno, target, type_checking, names))
        for child in ast.iter_child_nodes(node):
            visit(child, type_checking)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return found


@functools.cache
def module_imports() -> dict[str, list[Import]]:
    """Every handbook module's imports, parsed on first use, not when pytest collects this
    file: parsing the package cost a page's run a second of collection on each worker."""
    return {name: imports_of(path) for name, path in MODULES.items()}


def top_part(module: str) -> str:
    """``handbook.prometheus.alerts`` -> ``prometheus``; ``handbook.paths`` -> ``paths``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def loaded_by(source: str, target: str) -> list[str]:
    """The handbook modules importing ``target`` from ``source`` runs: the target and the
    packages above it that ``source`` is not already inside."""
    parts = target.split(".")
    chain = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
    inside = {".".join(source.split(".")[:n]) for n in range(1, source.count(".") + 2)}
    return [m for m in chain if m in MODULES and m not in inside]


def import_graph() -> dict[str, dict[str, Import]]:
    """module -> {module it imports when it runs -> the import statement}."""
    graph: dict[str, dict[str, Import]] = {name: {} for name in MODULES}
    for source, imports in module_imports().items():
        for imp in imports:
            if imp.type_checking:
                continue
            for target in loaded_by(source, imp.target):
                graph[source].setdefault(target, imp)
    return graph


def cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def describe_cycle(graph: dict[str, dict[str, Import]], component: list[str]) -> str:
    members = set(component)
    edges = [
        f"  {imp.where}: {source} imports {target}"
        for source in component
        for target, imp in graph[source].items()
        if target in members
    ]
    return f"import circle between {', '.join(component)}:\n" + "\n".join(edges)


# --------------------------------------------------------------------------- no circles


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    found = [describe_cycle(graph, component) for component in cycles(graph)]
    assert not found, (
        "\n".join(found) + "\nMove the shared code to the module both may import (no lazy "
        "import inside a function to hide the circle)."
    )


def test_the_circle_check_sees_a_circle():
    """The check above on a graph with a circle through a lazy (function-level) import."""
    graph = import_graph()
    lazy = Import(MODULES["handbook.paths"], 99, "handbook.yamlfile", False)
    graph["handbook.paths"]["handbook.yamlfile"] = lazy
    assert "handbook.yamlfile" in graph and "handbook.paths" in graph["handbook.yamlfile"]
    found = cycles(graph)
    assert ["handbook.paths", "handbook.yamlfile"] in found
    message = describe_cycle(graph, ["handbook.paths", "handbook.yamlfile"])
    assert "handbook/paths.py:99: handbook.paths imports handbook.yamlfile" in message


IMPORT_ALL = """
import importlib, json, sys, traceback
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        print(f"importing {name} (after the modules before it) fails:")
        traceback.print_exc(file=sys.stdout)
        sys.exit(1)
"""


def _orders() -> dict[str, list[str]]:
    names = sorted(MODULES)
    orders = {"sorted": names, "reversed": names[::-1]}
    for seed in (1, 2, 3):
        shuffled = list(names)
        random.Random(seed).shuffle(shuffled)
        orders[f"shuffled (seed {seed})"] = shuffled
    return orders


@pytest.mark.parametrize(("order", "names"), list(_orders().items()), ids=list(_orders()))
def test_every_module_imports_in_any_order(order, names):
    """A fresh interpreter imports every module in this order: a circle that works only
    from one side fails here."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, json.dumps(names)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{order} order:\n{done.stdout}{done.stderr}"


# --------------------------------------------------------------------------- the layers


def layer_rules() -> tuple[dict[str, tuple[set[str], str]], list[str]]:
    """{top-level part: (what it may import, the rule in words)} for every part below the
    top, and the problems with the rules themselves."""
    packages = subpackages(PACKAGE)
    known = set(FOUNDATION) | set(packages)
    rules = {
        part: (set(FOUNDATION), "a foundation module imports only foundation modules")
        for part in FOUNDATION
    }
    problems = []
    for part in packages:
        if part in ON_TOP:
            continue
        init = PACKAGE / part / "__init__.py"
        try:
            listed = may_import(init)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        for unknown in sorted(set(listed) - known):
            problems.append(
                f"{rel(init)}: 'May import:' names {unknown!r}, which is neither a "
                f"subpackage nor a foundation module ({', '.join(sorted(known))})"
            )
        for top in sorted(set(listed) & set(ON_TOP)):
            problems.append(f"{rel(init)}: 'May import:' names {top!r}, which sits on top")
        rule = f"{rel(init)} says 'May import: {', '.join(listed) or 'only the foundation'}'"
        rules[part] = (set(FOUNDATION) | set(listed) - set(ON_TOP) | {part}, rule)
    return rules, problems


def layer_violations() -> list[str]:
    rules, problems = layer_rules()
    known = set(FOUNDATION) | set(subpackages(PACKAGE))
    for name in sorted(MODULES):
        part = top_part(name)
        if part not in rules:
            continue  # on top: may import anything
        allowed, rule = rules[part]
        for imp in module_imports()[name]:
            target = top_part(imp.target)
            if imp.target.split(".")[0] != "handbook" or not target or target in allowed:
                continue
            what = "sits on top" if target not in known or target in ON_TOP else "is not allowed"
            problems.append(
                f"{imp.where}: {name} imports {imp.target}, which {what} here ({rule}): "
                "move the code to where both may use it, or correct the rule"
            )
    return problems


def test_each_subpackage_imports_only_what_its_docstring_allows():
    problems = layer_violations()
    assert not problems, "\n".join(problems)


def test_the_layer_check_sees_a_forbidden_import(monkeypatch):
    """A servers module importing the drills (servers may import only the foundation)."""
    source = MODULES["handbook.servers.ports"]
    bad = Import(source, 7, "handbook.drills.common", False, ("wait_for",))
    monkeypatch.setitem(
        module_imports(),
        "handbook.servers.ports",
        [*module_imports()["handbook.servers.ports"], bad],
    )
    problems = layer_violations()
    assert any(
        p.startswith("handbook/servers/ports.py:7: handbook.servers.ports imports "
                     "handbook.drills.common, which is not allowed here")
        for p in problems
    ), problems  # fmt: skip


def test_every_subpackage_says_what_it_holds_and_may_import():
    problems = []
    for name in subpackages(PACKAGE):
        init = PACKAGE / name / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if len(docstring.split()) < 8:
            problems.append(f"{rel(init)}:1: say in a few lines what the subpackage holds")
        if name not in ON_TOP:
            try:
                may_import(init)
            except ValueError as exc:
                problems.append(str(exc))
    assert not problems, "\n".join(problems)


def test_the_package_docstring_names_the_foundation_modules():
    """handbook/__init__.py introduces the map; it must name the same foundation."""
    text, line = docstring(PACKAGE / "__init__.py")
    missing = [name for name in FOUNDATION if f"``{name}``" not in text]
    assert not missing, (
        f"handbook/__init__.py:{line}: the docstring does not name the foundation modules "
        f"{', '.join(missing)} (handbook/layers.py FOUNDATION): name them, or correct the list"
    )


def test_no_private_name_is_imported_from_another_module():
    problems = [
        f"{imp.where}: {module_of(imp.source)} imports {', '.join(private)} from {imp.target}: "
        "make it public (no leading underscore) or keep the code in one module"
        for imports in module_imports().values()
        for imp in imports
        if imp.target.startswith("handbook")
        and (private := [n for n in imp.names if n.startswith("_") and not n.startswith("__")])
    ]
    assert not problems, "\n".join(problems)


def private_attribute_uses(path: Path, module: str = "") -> list[str]:
    """``module._name`` in ``path`` where ``module`` is another handbook module it imported
    (``from handbook.servers import docker as provider`` ... ``provider._client()``)."""
    module = module or module_of(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("handbook") and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(path, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    return [
        f"{rel(path)}:{node.lineno}: {module} uses {aliases[node.value.id]}."
        f"{node.attr}: make it public (no leading underscore) or keep the code in one module"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and aliases[node.value.id] != module
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]


def test_no_private_name_of_another_module_is_used_through_it():
    problems = [problem for path in MODULES.values() for problem in private_attribute_uses(path)]
    assert not problems, "\n".join(problems)


def test_the_private_use_check_sees_one(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from handbook.servers import docker as provider\n\nprovider._client()\n")
    (found,) = private_attribute_uses(probe, "handbook.probe")
    assert "handbook.servers.docker._client" in found and found.endswith("one module")


def test_no_module_re_exports_another_modules_names():
    """Callers import a name from the module that defines it: no ``noqa: F401`` import
    kept for others, no ``__all__`` listing imported names (packages' ``__init__.py``
    may present their submodules' names)."""
    problems = []
    for path in MODULES.values():
        if path.name == "__init__.py":
            continue
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if "noqa: F401" in line:
                problems.append(f"{rel(path)}:{number}: an import kept for re-export: import "
                                "the name from where it is defined instead")  # fmt: skip
        tree = ast.parse(text)
        imported = {
            alias.asname or alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                for exported in ast.literal_eval(node.value):
                    if exported in imported:
                        problems.append(
                            f"{rel(path)}:{node.lineno}: __all__ re-exports {exported}, "
                            "defined elsewhere: callers import it from its own module"
                        )
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- pytest, psycopg


def forbidden_imports(module_prefixes: tuple[str, ...], libraries: tuple[str, ...]) -> list[str]:
    return [
        f"{imp.where}: {name} imports {imp.target}"
        for name, imports in sorted(module_imports().items())
        if name.startswith(module_prefixes)
        for imp in imports
        if imp.target.split(".")[0] in libraries
    ]


def test_runners_servers_schemas_drills_and_sphinx_know_nothing_of_pytest():
    prefixes = tuple(f"handbook.{part}" for part in NO_PYTEST)
    found = forbidden_imports(prefixes, ("pytest", "_pytest"))
    assert not found, (
        "\n".join(found) + "\nRaise the module's own error (ToolMissing, ServerUnavailable...) "
        "and let handbook/pytest_plugin.py or the test turn it into a skip or a failure"
    )


def test_the_pytest_plugin_knows_nothing_of_sql_clients():
    found = forbidden_imports(("handbook.pytest_plugin",), ("psycopg", "psycopg2"))
    assert not found, (
        "\n".join(found) + "\nTalk to PostgreSQL in handbook/servers/ or handbook/runners/, "
        "not in the pytest plugin"
    )


def test_the_library_checks_see_an_import(tmp_path, monkeypatch):
    """The two checks above on a module that does import pytest."""
    path = PACKAGE / "drills" / "common.py"
    source = textwrap.dedent("""\
        def helper():
            import pytest

            pytest.skip("no")
    """)
    fake = tmp_path / "common.py"
    fake.write_text(source, encoding="utf-8")
    found = [imp for imp in imports_of(fake) if imp.target == "pytest"]
    assert [imp.line for imp in found] == [2]
    monkeypatch.setitem(
        module_imports(), "handbook.drills.common", [Import(path, 2, "pytest", False)]
    )
    assert forbidden_imports(("handbook.drills",), ("pytest",)) == [
        "handbook/drills/common.py:2: handbook.drills.common imports pytest"
    ]
