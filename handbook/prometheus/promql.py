"""Reading PromQL without a Prometheus: the metric and label names an expression
uses, the threshold of an alert expression, and Prometheus durations.

This is not a parser (promtool is the judge of syntax); it tokenises well enough to
tell metric names from functions, label names and keywords.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<comment>\#[^\n]*)
    |(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    |(?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
    |(?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?
        |(?i:inf|nan))(?![\w:]))
    |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    |(?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=,(){}\[\]@:])
    """,
    re.VERBOSE,
)
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
SET_OPERATORS = ("and", "or", "unless")
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_AGGREGATORS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
_KEYWORDS = _GROUPING | _AGGREGATORS | set(SET_OPERATORS) | {"bool", "offset", "atan2"}
_OPEN = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokens(expr: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise ValueError(f"cannot read the expression at {expr[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        if kind not in ("ws", "comment"):
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _depths(tokens: list[_Token]) -> list[int]:
    """For each token, how deep inside (), [] and {} it is (a closing bracket counts as inside)."""
    depth, out = 0, []
    for token in tokens:
        if token.kind == "op" and token.text in _OPEN:
            out.append(depth)
            depth += 1
        elif token.kind == "op" and token.text in _OPEN.values():
            depth -= 1
            out.append(depth)
        else:
            out.append(depth)
    return out


def _skip_group(tokens: list[_Token], start: int) -> int:
    """Index after the bracket group opening at ``start``."""
    depth = 0
    for index in range(start, len(tokens)):
        text = tokens[index].text if tokens[index].kind == "op" else ""
        if text in _OPEN:
            depth += 1
        elif text in _OPEN.values():
            depth -= 1
            if depth == 0:
                return index + 1
    return len(tokens)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, as scraped: ``{"erpgo_x_bucket", "pg_up"}``.

    Function and aggregation names, label names (in ``{}`` and in ``by``/``on``
    clauses), durations and keywords are not metric names. ``{__name__="x"}`` is.
    """
    tokens, names, index = _tokens(expr), set(), 0
    while index < len(tokens):
        token = tokens[index]
        nxt = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.kind == "op" and token.text == "{":
            end = _skip_group(tokens, index)
            inner = tokens[index + 1 : end - 1]
            for i in range(len(inner) - 2):
                if inner[i].text == "__name__" and inner[i + 1].text == "=":
                    names.add(inner[i + 2].text[1:-1])
            index = end
            continue
        if token.kind == "ident" and token.text in _GROUPING:
            index += 1
            if index < len(tokens) and tokens[index].text == "(":
                index = _skip_group(tokens, index)
            continue
        is_call = nxt is not None and nxt.kind == "op" and nxt.text == "("
        if token.kind == "ident" and token.text not in _KEYWORDS and not is_call:
            names.add(token.text)
        index += 1
    return names


def label_names(expr: str) -> set[str]:
    """Every label name an expression mentions: in matchers and in by/without/on/ignoring."""
    tokens, labels, index = _tokens(expr), set(), 0
    while index < len(tokens):
        token = tokens[index]
        if token.kind == "op" and token.text == "{":
            end = _skip_group(tokens, index)
            inner = tokens[index + 1 : end - 1]
            for i, inner_token in enumerate(inner[:-1]):
                matcher = inner[i + 1].text in ("=", "!=", "=~", "!~")
                if inner_token.kind == "ident" and matcher and inner_token.text != "__name__":
                    labels.add(inner_token.text)
            index = end
            continue
        opens = index + 1 < len(tokens) and tokens[index + 1].text == "("
        if token.kind == "ident" and token.text in _GROUPING and opens:
            end = _skip_group(tokens, index + 1)
            labels.update(t.text for t in tokens[index + 2 : end - 1] if t.kind == "ident")
            index = end
            continue
        index += 1
    return labels


@dataclass(frozen=True)
class Threshold:
    op: str  # the top-level comparison: ">", "<", "==", ...
    literal: str  # the number as written: "0.05"
    lhs: str  # the measured value, without the comparison: what $value is

    @property
    def value(self) -> float:
        return float(self.literal)

    def __str__(self) -> str:
        return f"{self.op} {self.literal}"


def extract_threshold(expr: str) -> Threshold:
    """The comparison at the top level of ``expr`` and the literal on its right.

    Raises ``ValueError`` (saying how to write the expression) when the top level is
    not ``<measured value> <op> <number>``.
    """
    tokens = _tokens(expr)
    depths = _depths(tokens)
    top = [(i, t) for i, (t, d) in enumerate(zip(tokens, depths, strict=True)) if d == 0]
    for _, token in top:
        if token.kind == "ident" and token.text in SET_OPERATORS:
            raise ValueError(
                f"the top level is '{token.text}', not a comparison: put the filter in "
                "parentheses and end with '<measured value> <op> <number>'"
            )
    comparisons = [(i, t) for i, t in top if t.kind == "op" and t.text in COMPARISONS]
    if len(comparisons) != 1:
        raise ValueError(
            f"expected exactly one comparison outside parentheses, found {len(comparisons)}: "
            "end the expression with '<measured value> <op> <number>'"
        )
    index, op = comparisons[0]
    rhs = tokens[index + 1 :]
    if rhs and rhs[0].kind == "ident" and rhs[0].text == "bool":
        raise ValueError("'bool' turns the comparison into 0/1 and the alert would always fire")
    literal = "".join(t.text for t in rhs)
    numbers = [t for t in rhs if t.kind == "number"]
    signs = [t for t in rhs if t.kind == "op" and t.text in "+-"]
    if len(numbers) != 1 or len(rhs) != len(numbers) + len(signs) or len(signs) > 1:
        raise ValueError(
            f"the right of '{op.text}' is {literal!r}, not a single number: write the "
            "threshold as one literal, e.g. '... > 0.05'"
        )
    lhs = expr[: op.pos].strip()
    if not lhs:
        raise ValueError(f"nothing on the left of '{op.text}'")
    return Threshold(op=op.text, literal=literal, lhs=lhs)


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration: ``"5m"`` -> 300.0, ``"1h30m"`` -> 5400.0."""
    text = str(text).strip()
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r} (write e.g. 5m, 90s, 1h30m)")
    return float(sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))
