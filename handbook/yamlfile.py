"""YAML files read with their line numbers, and findings that point at them.

Every problem is a :class:`Finding` that prints as ``file:line: what is wrong and
what to do``, with the file relative to the repository root. :func:`load` keeps
the line of every mapping and key, so a check can name the line at fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from handbook.paths import rel


class ConfigError(ValueError):
    """A rules, rule-test or catalogue file that cannot be used: ``file:line: ...``."""


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the repository root when inside it
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


def report(findings: Iterable[Finding]) -> str:
    """One finding per line, for an assertion message."""
    return "\n".join(str(f) for f in findings)


class LineMap(dict):
    """A YAML mapping that remembers where it and each of its keys are (1-based lines)."""

    line: int = 0
    key_lines: dict
    value_nodes: dict


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap(loader.construct_pairs(node, deep=True))
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.value_nodes = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            result.key_lines[key_node.value] = key_node.start_mark.line + 1
            result.value_nodes[key_node.value] = value_node
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


def load(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{rel(path)}: file not found") from None
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else "?"
        raise ConfigError(f"{rel(path)}:{line}: not valid YAML: {exc.problem}") from None


def line(mapping: object, key: str | None = None) -> int:
    if not isinstance(mapping, LineMap):
        return 0
    return mapping.key_lines.get(key, mapping.line) if key else mapping.line


def plain(value: object) -> object:
    """Loaded YAML (with line-tracking mappings) back to plain dicts and lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
