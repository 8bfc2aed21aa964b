"""Which tests a page, a snippet or a ``conf/`` file depends on: ``pytest docs/runbooks/x.md``.

The pytest plugin (``handbook.pytest_plugin``) turns such a path argument (or
``--page PATH``) into a :class:`Selection`: the files pytest collects and, for each
collected item, whether it stays. Nothing here is a hand-kept list; it is read from what
the repository already says:

- a page's snippets: its ``{snippet}`` includes and the snippet files whose ``page:``
  header names it; its ``conf/`` files: its ``literalinclude`` of ``conf/``;
- the alert a runbook serves (its ``{alert} NAME`` header): the promtool unit tests of
  that alert (the files under ``conf/prometheus/tests/`` that name it) and every test
  whose parametrization names it;
- which tests use a file: the test functions that name it (``"sql/x/y.sql"``,
  ``DOCS / "runbooks" / "x.md"``, ``RULE_TESTS_DIR``...), read with ``ast`` through the
  module constants, fixtures and helpers they use, and through the ``handbook`` modules
  they import (a drill module in ``handbook/drills/`` names the snippets the drill runs);
- a lint-only snippet's ``verified-by:`` tests;
- parametrized tests: an item whose id names a page, snippet or alert stays only when
  it names one of the selection's (``test_runbook_template[high-latency]``).

Given a snippet file, its own items run (every server) and every test that uses it;
given a ``conf/`` file, every test that uses it (or the directory it is in); given a
page, all of the above for each snippet and ``conf/`` file on it, plus the tests that
name the page and its alert's tests. No pytest import here: the plugin asks
:meth:`Selection.wants` about each item it collected.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from handbook import snippet as snippets

SNIPPET_SUFFIXES = tuple(snippets.KINDS)
SNIPPET_DIRECTIVE = re.compile(r"^\s*```\{snippet\}\s+(\S+)", re.M)
INCLUDE_DIRECTIVE = re.compile(r"^\s*```\{literalinclude\}\s+(\S+)", re.M)
ALERT_DIRECTIVE = re.compile(r"^\s*```\{alert\}\s+(\S+)", re.M)
# The names a path expression may start from (handbook/paths.py): ROOT / "conf" / ...
RULE_TESTS = ("conf", "prometheus", "tests")  # promtool unit tests, one group per alert case
# What the test functions name depends on the Python files alone, and parsing them is most
# of a selection's time (2 s): the answers are kept here, valid while those files are.
CACHE = Path("build") / "selection-cache.json"
PATH_ROOTS = {"ROOT": "", "CONF": "conf", "SNIPPETS": "snippets", "DOCS": "docs", "BUILD": "build"}


class SelectionError(ValueError):
    """A path that selects nothing: the message names it and says what to give instead."""


@dataclass
class Selection:
    """What one or more targets (pages, snippets, conf files) depend on."""

    targets: list[str]
    snippets: set[str] = field(default_factory=set)  # snippet files: all their items
    functions: dict[str, set[str]] = field(default_factory=dict)  # test file -> functions
    # test file -> parametrized functions of which only the items naming a token stay
    by_id: dict[str, set[str]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)  # alert names, page stems, paths
    known: set[str] = field(default_factory=set)  # every such name, ours or not
    why: dict[str, str] = field(default_factory=dict)  # "file::function" or file -> reason
    _named_cache: dict[str, set[str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def paths(self) -> list[str]:
        """The files pytest collects: the snippet files and the test modules."""
        return sorted(self.snippets | set(self.functions) | set(self.by_id))

    def wants(self, path: str, function: str, param_id: str = "") -> bool:
        """Whether the item ``path::function[param_id]`` belongs to the selection."""
        if path in self.snippets:
            return True
        if path.endswith(".md"):  # pytest-examples items of the page itself
            return path in self.targets
        named = self._named(param_id)
        if named and not named & self.tokens:
            return False  # a parametrization about another page, snippet or alert
        if function in self.functions.get(path, set()):
            return True
        return bool(named) and function in self.by_id.get(path, set())

    def _named(self, param_id: str) -> set[str]:
        """The known names ``param_id`` names (many items share an id: ``pg15``)."""
        if param_id not in self._named_cache:
            # the substring test first: a regex for each of some 300 names and 450 ids
            # took a second of every worker's collection
            found = {t for t in self.known if t in param_id and _names(param_id, t)}
            self._named_cache[param_id] = found
        return self._named_cache[param_id]

    def to_plain(self) -> dict:
        """Lists, dicts and strings only (what an xdist worker can be sent)."""
        return {
            "targets": list(self.targets),
            "snippets": sorted(self.snippets),
            "functions": {path: sorted(f) for path, f in self.functions.items()},
            "by_id": {path: sorted(f) for path, f in self.by_id.items()},
            "tokens": sorted(self.tokens),
            "known": sorted(self.known),
            "why": dict(self.why),
        }

    @classmethod
    def from_plain(cls, data: dict) -> Selection:
        return cls(
            targets=list(data["targets"]),
            snippets=set(data["snippets"]),
            functions={path: set(f) for path, f in data["functions"].items()},
            by_id={path: set(f) for path, f in data["by_id"].items()},
            tokens=set(data["tokens"]),
            known=set(data["known"]),
            why=dict(data["why"]),
        )

    def add_test(self, path: str, function: str, why: str) -> None:
        self.functions.setdefault(path, set()).add(function)
        self.why.setdefault(f"{path}::{function}", why)

    def describe(self) -> list[str]:
        """One line per snippet file and per test file whose functions all stay (the
        parametrized tests kept item by item are not listed)."""
        lines = [f"{name} (all servers)" for name in sorted(self.snippets)]
        for path, functions in sorted(self.functions.items()):
            lines.append(f"{path}: {', '.join(sorted(functions))}")
        return lines


def _names(param_id: str, token: str) -> bool:
    """``token`` appears in ``param_id`` as a whole name (``HighResponseTime-for`` names
    ``HighResponseTime``; ``runbooks/high-latency.md:12`` names ``high-latency``)."""
    return (
        bool(param_id) and re.search(rf"(?<![\w-]){re.escape(token)}(?!\w)", param_id) is not None
    )


def is_target(path: Path, root: Path) -> bool:
    """A path argument the selection expands: a docs page, a snippet file, a conf/ file."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    if not path.is_file() or not relative.parts:
        return False
    top = relative.parts[0]
    if top == "docs":
        return path.suffix == ".md" and "_build" not in relative.parts
    if top == "snippets":
        return path.suffix in SNIPPET_SUFFIXES and path.parent.name != "migrations"
    return top == "conf"


def select(targets: list[Path], root: Path) -> Selection:
    """The tests ``targets`` depend on (paths relative to ``root`` or absolute)."""
    names = []
    for target in targets:
        path = target if target.is_absolute() else root / target
        if not is_target(path, root):
            raise SelectionError(
                f"{target}: not a page (docs/**/*.md), a snippet file or a conf/ file: give "
                "one of those to run what depends on it"
            )
        names.append(path.resolve().relative_to(root.resolve()).as_posix())
    index = Index(root)
    selection = Selection(targets=names, known=index.known_names())
    for name in names:
        if name.startswith("docs/"):
            _select_page(selection, index, name)
        elif name.startswith("snippets/"):
            _select_snippet(selection, index, name, f"uses {name}")
        else:
            _select_conf(selection, index, name, f"uses {name}")
    index.save()
    return selection


def _select_page(selection: Selection, index: Index, page: str) -> None:
    text = (index.root / page).read_text(encoding="utf-8")
    relative = page.removeprefix("docs/")
    stem = Path(relative).with_suffix("").as_posix()
    selection.tokens |= {page, relative, stem, Path(stem).name}
    shown = {f"snippets/{m}" for m in SNIPPET_DIRECTIVE.findall(text)}
    shown |= {name for name, shows in index.snippet_pages().items() if shows == relative}
    for name in sorted(shown):
        _select_snippet(selection, index, name, f"{page} shows {name}")
    for include in INCLUDE_DIRECTIVE.findall(text):
        included = (index.root / page).parent.joinpath(include).resolve()
        name = index.relative(included)
        if name and name.startswith("conf/"):
            _select_conf(selection, index, name, f"{page} shows {name}")
    forms = {page, relative, stem + ".html", stem}
    # A page or an alert counts where a test names it itself: the handbook's own tables
    # (every alert with its runbook) would otherwise make every test about every page.
    for path, function in index.tests_naming(forms, deep=False):
        selection.add_test(path, function, f"names {page}")
    for alert in ALERT_DIRECTIVE.findall(text):
        selection.tokens.add(alert)
        for path, function in index.tests_naming({alert}, deep=False):
            selection.add_test(path, function, f"names the alert {alert}")
        for path, function in index.parametrized_tests():
            selection.by_id.setdefault(path, set()).add(function)
            selection.why.setdefault(f"{path}::{function}", f"its items that name {alert}")
        for rule_tests in index.rule_tests_naming(alert):
            _select_conf(selection, index, rule_tests, f"runs {alert}'s unit tests")


def _select_snippet(selection: Selection, index: Index, name: str, why: str) -> None:
    if not is_target(index.root / name, index.root):  # a migration: no items of its own
        _select_conf(selection, index, name, why)
        return
    selection.snippets.add(name)
    selection.tokens |= {name, name.removeprefix("snippets/")}
    selection.why.setdefault(name, why)
    for path, function in index.tests_naming({name, name.removeprefix("snippets/")}):
        selection.add_test(path, function, why)
    verified_by = index.verified_by().get(name, [])
    for path in verified_by:
        for function in index.test_functions(path):
            selection.add_test(path, function, f"verified-by: header of {name}")


def _select_conf(selection: Selection, index: Index, name: str, why: str) -> None:
    """The tests that use ``name`` (a conf/ file, or a migration the page shows), or the
    directory it is in."""
    top = name.split("/", 1)[0] + "/"
    forms = {name, name.removeprefix(top)}
    folder = name.rsplit("/", 1)[0]  # a test that loads conf/x/ whole uses conf/x/y
    directories = {folder} if folder + "/" != top else set()
    if top == "conf/" and directories:  # conf/ files are also named from conf/ down
        directories.add(folder.removeprefix(top))
    for path, function in index.tests_naming(forms | directories):
        selection.add_test(path, function, why)


# -- what the repository says ---------------------------------------------------------------


class Index:
    """The repository's snippets, test functions and what each test function names."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._modules: dict[str, Module | None] = {}
        self._kept: dict[str, list] | None = None  # CACHE's answers, while valid
        self._new = False

    def _python_files(self) -> str:
        """A fingerprint of every Python file a test function's names can come from."""
        digest = hashlib.sha256()
        for base in (self.root / "tests", self.root / "handbook"):
            for path in sorted(base.rglob("*.py") if base.is_dir() else []):
                stat = path.stat()
                digest.update(
                    f"{path.relative_to(self.root)}:{stat.st_mtime_ns}:{stat.st_size};".encode()
                )
        conftest = self.root / "conftest.py"
        if conftest.is_file():
            digest.update(conftest.read_bytes())
        return digest.hexdigest()

    def _answer(self, key: str, compute) -> list:
        """``compute()``, or what it gave while the Python files were as they are now."""
        if self._kept is None:
            self._fingerprint = self._python_files()
            try:
                kept = json.loads((self.root / CACHE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                kept = {}
            valid = isinstance(kept, dict) and kept.get("python") == self._fingerprint
            self._kept = kept.get("answers", {}) if valid else {}
        if key not in self._kept:
            self._kept[key] = [list(a) for a in compute()]
            self._new = True
        return [tuple(a) for a in self._kept[key]]

    def save(self) -> None:
        """Keep the new answers for the next selection (never fails the run: a read-only
        checkout only selects more slowly)."""
        if not self._new:
            return
        path = self.root / CACHE
        data = {"python": self._fingerprint, "answers": self._kept}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}")
            partial.write_text(json.dumps(data), encoding="utf-8")
            os.replace(partial, path)  # whole or not at all, whoever else selects now
        except OSError:
            pass

    def relative(self, path: Path) -> str | None:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    @functools.cache  # noqa: B019 (one Index per selection)
    def snippet_files(self) -> list[str]:
        base = self.root / "snippets"
        found = base.rglob("*") if base.is_dir() else []
        return sorted(
            self.relative(p) or ""
            for p in found
            if p.suffix in SNIPPET_SUFFIXES and p.parent.name != "migrations" and p.is_file()
        )

    @functools.cache  # noqa: B019
    def _headers(self) -> dict[str, snippets.Snippet]:
        parsed = {}
        for name in self.snippet_files():
            try:
                parsed[name] = snippets.parse(self.root / name, self.root)
            except (snippets.SnippetError, OSError, UnicodeDecodeError):
                continue  # its own test item reports it
        return parsed

    def snippet_pages(self) -> dict[str, str]:
        """Snippet file -> the page its ``page:`` header names (``runbooks/x.md``)."""
        return {name: s.page or "" for name, s in self._headers().items()}

    def verified_by(self) -> dict[str, list[str]]:
        """Snippet file -> the test files its ``verified-by:`` header names."""
        return {
            name: [f.strip() for f in s.verified_by.split(",")]
            for name, s in self._headers().items()
            if s.verified_by
        }

    @functools.cache  # noqa: B019
    def test_files(self) -> list[str]:
        base = self.root / "tests"
        found = base.rglob("test_*.py") if base.is_dir() else []
        return sorted(self.relative(p) or "" for p in found)

    def test_functions(self, path: str) -> list[str]:
        def parsed() -> list[tuple[str]]:
            module = self.module(path)
            return [] if module is None else [(name,) for name in module.tests()]

        return [name for (name,) in self._answer(json.dumps(["test_functions", path]), parsed)]

    def known_names(self) -> set[str]:
        """Every page stem, snippet file and alert a parametrization id may name."""
        known = set()
        docs = self.root / "docs"
        for page in docs.rglob("*.md") if docs.is_dir() else []:
            relative = self.relative(page) or ""
            if "_build" in relative:
                continue
            stem = relative.removeprefix("docs/").removesuffix(".md")
            known.add(relative)
            if "/" in stem:  # "runbooks/high-latency"; not a bare "index"
                known.add(stem)
            if stem.startswith("runbooks/"):
                known.add(stem.split("/")[-1])
            known |= set(ALERT_DIRECTIVE.findall(page.read_text(encoding="utf-8")))
        for name in self.snippet_files():
            known |= {name, name.removeprefix("snippets/")}
        return known

    def rule_tests_naming(self, alert: str) -> list[str]:
        """The promtool unit test files (``conf/prometheus/tests/``) that test ``alert``."""
        base = self.root.joinpath(*RULE_TESTS)
        found = sorted(base.glob("*.yml")) if base.is_dir() else []
        pattern = re.compile(rf"\b{re.escape(alert)}\b")
        return [self.relative(p) or "" for p in found if pattern.search(p.read_text("utf-8"))]

    def tests_naming(self, forms: set[str], deep: bool = True) -> list[tuple[str, str]]:
        """``(test file, function)`` for each test function that names one of ``forms``
        (``deep``: also through the ``handbook`` modules it uses; else in its own module)."""
        key = json.dumps(["tests_naming", sorted(forms), deep])
        return self._answer(key, lambda: self._tests_naming(forms, deep))

    def _tests_naming(self, forms: set[str], deep: bool) -> list[tuple[str, str]]:
        # What every test function names, kept whole: another page's selection then
        # reads no test module either (each new page cost its first run 2 s of parsing).
        table = self._answer(
            json.dumps(["mentions", deep]), lambda: self._every_tests_mentions(deep)
        )
        return [(path, function) for path, function, names in table if forms & set(names)]

    def _every_tests_mentions(self, deep: bool) -> list[tuple[str, str, list[str]]]:
        found = []
        for path in self.test_files():
            module = self.module(path)
            if module is None:
                continue
            for function in module.tests():
                found.append((path, function, sorted(module.mentions(function, deep))))
        return found

    def parametrized_tests(self) -> list[tuple[str, str]]:
        """Every parametrized test function: :meth:`Selection.wants` keeps the items whose
        id names the selection's alert or page, and drops the others."""
        return self._answer('["parametrized_tests"]', self._parametrized_tests)

    def _parametrized_tests(self) -> list[tuple[str, str]]:
        found = []
        for path in self.test_files():
            module = self.module(path)
            if module is not None:
                found += [(path, f) for f in module.tests() if f in module.parametrized]
        return found

    def module(self, path: str) -> Module | None:
        if path not in self._modules:
            self._modules[path] = None  # an import cycle ends here
            file = self.root / path
            try:
                tree = ast.parse(file.read_text(encoding="utf-8"), path)
            except (OSError, SyntaxError, UnicodeDecodeError):
                return None
            self._modules[path] = Module(self, path, tree)
        return self._modules[path]

    @functools.cache  # noqa: B019 (one Index per selection)
    def conftest(self, path: str) -> Module | None:
        """The conftest module at ``path``, or None when there is none."""
        return self.module(path) if (self.root / path).is_file() else None

    @functools.cache  # noqa: B019 (one Index per selection)
    def module_path(self, dotted: str) -> str | None:
        """``handbook.drills.latency`` -> ``handbook/drills/latency.py`` (in this repository)."""
        base = self.root / Path(*dotted.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return self.relative(candidate)
        return None


class Module:
    """One Python file: its top-level functions, classes and constants, and what each names.

    What a name mentions: the strings in its definition (decorators and defaults
    included), the paths its ``ROOT / "conf" / ...`` expressions build, and what every
    name it uses mentions in turn: module constants, helpers, fixtures (a test's
    arguments), and names imported from ``handbook`` modules (``drill.snippet(...)``
    through ``from handbook.drills import latency as drill``).
    """

    def __init__(self, index: Index, path: str, tree: ast.Module) -> None:
        self.index = index
        self.path = path
        self.definitions: dict[str, ast.AST] = {}
        self.imports: dict[str, tuple[str, str | None]] = {}  # alias -> (module path, name)
        self.parametrized: set[str] = set()
        self._tests: list[str] = []
        self._mentions: dict[tuple[str, bool], set[str]] = {}
        self._read_cache: dict[str, tuple[set[str], set[tuple[str, str | None]]]] = {}
        for node in tree.body:
            self._read(node)

    def _read(self, node: ast.stmt) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.definitions[node.name] = node
            if node.name.startswith(("test_", "Test")):
                self._tests.append(node.name)
            if any("parametrize" in ast.unparse(d) for d in node.decorator_list):
                self.parametrized.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        self.definitions[name.id] = node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = self.index.module_path(f"{node.module}.{alias.name}")
                if submodule is not None:
                    self.imports[alias.asname or alias.name] = (submodule, None)
                    continue
                source = self.index.module_path(node.module)
                if source is not None:
                    self.imports[alias.asname or alias.name] = (source, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                source = self.index.module_path(alias.name)
                if source is not None and alias.asname:
                    self.imports[alias.asname] = (source, None)
        elif isinstance(node, ast.If | ast.Try):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self._read(child)

    def tests(self) -> list[str]:
        return list(self._tests)

    def mentions(self, name: str, deep: bool = True) -> set[str]:
        """Every string and path that ``name`` (a function, class or constant) names;
        ``deep=False``: only in this module (and the fixtures of the conftests above it),
        not through what it imports from ``handbook``."""
        key = (name, deep)
        if key in self._mentions:
            return self._mentions[key]
        self._mentions[key] = set()  # a recursive helper ends here
        node = self.definitions.get(name)
        found: set[str] = set()
        if node is not None:
            strings, uses = self._read_definition(name, node)
            found |= strings
            for used, attribute in uses:
                found |= self._resolve(used, attribute, deep)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for argument in node.args.args + node.args.kwonlyargs:
                    found |= self._fixture(argument.arg, deep)
        elif name in self.imports and deep:
            found |= self._resolve(name, None, deep)
        self._mentions[key] = found
        return found

    def _resolve(self, name: str, attribute: str | None, deep: bool) -> set[str]:
        if name in self.imports:
            if not deep:
                return set()
            source, imported = self.imports[name]
            module = self.index.module(source)
            target = imported or attribute
            if module is None:
                return set()
            if target is None:  # a whole module used as a value: what all of it names
                return set().union(*(module.mentions(n) for n in module.definitions))
            return module.mentions(target)
        if name in self.definitions and name != "__all__":
            return self.mentions(name, deep)
        return set()

    def _fixture(self, argument: str, deep: bool) -> set[str]:
        """A test's argument: the fixture of that name here or in a conftest above it."""
        if argument in self.definitions:
            return self.mentions(argument, deep)
        folder = Path(self.path).parent
        while True:
            conftest = (folder / "conftest.py").as_posix().removeprefix("./")
            module = self.index.conftest(conftest)
            if module is not None and module is not self and argument in module.definitions:
                return module.mentions(argument, deep)
            if folder == Path("."):
                return set()
            folder = folder.parent

    def _read_definition(
        self, name: str, node: ast.AST
    ) -> tuple[set[str], set[tuple[str, str | None]]]:
        """What ``node`` itself holds, in one walk, kept for both ``deep`` kinds: its string
        constants and the paths its ``a / "b" / "c"`` expressions build; the names it loads,
        with the attribute taken of a module alias (``drill.snippet``)."""
        if name not in self._read_cache:
            strings: set[str] = set()
            attributes: set[tuple[str, str | None]] = set()
            names: dict[int, str] = {}  # id of a loaded Name -> its name
            owners: set[int] = set()  # the Names an attribute is taken of
            for child in ast.walk(node):
                if isinstance(child, ast.Constant) and isinstance(child.value, str):
                    strings.add(child.value)
                elif isinstance(child, ast.BinOp) and isinstance(child.op, ast.Div):
                    path = self._path(child)
                    if path:
                        strings.add(path)
                elif isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name):
                    attributes.add((child.value.id, child.attr))
                    owners.add(id(child.value))
                elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                    names[id(child)] = child.id
            uses = attributes | {(n, None) for i, n in names.items() if i not in owners}
            self._read_cache[name] = (strings, uses)
        return self._read_cache[name]

    def _path(self, node: ast.expr) -> str | None:
        """``CONF / "prometheus" / "tests"`` -> ``conf/prometheus/tests``; an unknown start
        (``copy / "docs" / "x.md"``) gives the rest (``docs/x.md``)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return PATH_ROOTS.get(node.id, "")
        if isinstance(node, ast.Attribute) and node.attr in PATH_ROOTS:
            return PATH_ROOTS[node.attr]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = self._path(node.left), self._path(node.right)
            if right is None:
                return None
            return "/".join(p for p in (left or "", right) if p)
        return ""
