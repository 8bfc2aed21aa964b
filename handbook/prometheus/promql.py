"""Reading PromQL without a Prometheus: the metric and label names an expression uses,
the threshold of an alert expression, and Prometheus durations.

The syntax tree comes from ``promql-parser`` (Prometheus 2.45's grammar, in Rust).
promtool stays the judge of what Prometheus accepts: an expression the parser refuses
raises :class:`PromQLSyntaxError`, and a caller that also runs promtool lets promtool
say (and locate) what is wrong.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import promql_parser

COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
SET_OPERATORS = ("and", "or", "unless")


class PromQLSyntaxError(ValueError):
    """The parser cannot read the expression; promtool says where it is wrong."""


def parse(expr: str) -> promql_parser.Expr:
    """The syntax tree of ``expr``; :class:`PromQLSyntaxError` when it does not parse."""
    try:
        return promql_parser.parse(expr)
    except ValueError as exc:
        raise PromQLSyntaxError(f"cannot parse the expression: {exc}") from None


def nodes(expr: str) -> list[promql_parser.Expr]:
    """Every node of the expression's syntax tree, depth first."""
    found: list[promql_parser.Expr] = []
    promql_parser.walk(parse(expr), found.append)
    return found


def _matchers(selector: promql_parser.VectorSelector) -> list[promql_parser.Matcher]:
    matchers = selector.matchers
    return [*matchers.matchers, *(m for group in matchers.or_matchers for m in group)]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, as scraped: ``{"erpgo_x_bucket", "pg_up"}``.

    Function and aggregation names, label names, durations and keywords are not metric
    names; ``{__name__="x"}`` is.
    """
    names = set()
    for node in nodes(expr):
        if not isinstance(node, promql_parser.VectorSelector):
            continue
        if node.name:
            names.add(node.name)
        names.update(
            m.value
            for m in _matchers(node)
            if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal
        )
    return names


def label_names(expr: str) -> set[str]:
    """Every label name an expression mentions: in matchers and in by/without/on/ignoring
    and group_left/group_right."""
    labels = set()
    for node in nodes(expr):
        if isinstance(node, promql_parser.VectorSelector):
            labels.update(m.name for m in _matchers(node) if m.name != "__name__")
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                labels.update(node.modifier.matching.labels)
            labels.update(node.modifier.group_labels or ())
    return labels


@dataclass(frozen=True)
class Threshold:
    op: str  # the top-level comparison: ">", "<", "==", ...
    literal: str  # the number as written: "0.05"
    lhs: str  # the measured value, without the comparison: what $value is
    value: float  # the number the literal means

    def __str__(self) -> str:
        return f"{self.op} {self.literal}"


# The end of a threshold expression as written: "<op> [bool] <number> [# comment]". Only
# used to keep the reader's spelling ("7e-1", not "0.7"); the syntax tree decides.
_NUMBER = r"[-+]?\s*(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI]nf|[nN]a[nN])"
_TAIL = re.compile(
    rf"(?P<op>==|!=|>=|<=|>|<)\s*(?P<literal>{_NUMBER})\s*(?:#[^\n]*\s*)*\Z", re.DOTALL
)


def _describe(node: promql_parser.Expr) -> str:
    if isinstance(node, promql_parser.BinaryExpr):
        return f"'{node.op}'"
    if isinstance(node, promql_parser.ParenExpr):
        return "'( ... )'"
    if isinstance(node, promql_parser.Call):
        return f"'{node.func.name}( ... )'"
    return f"{str(node)!r}"


def _same_number(literal: str, value: float) -> bool:
    try:
        written = promql_parser.parse(literal.replace(" ", ""))
    except ValueError:
        return False
    if not isinstance(written, promql_parser.NumberLiteral):
        return False
    return written.val == value or (math.isnan(written.val) and math.isnan(value))


def extract_threshold(expr: str) -> Threshold:
    """The comparison at the top level of ``expr`` and the number on its right.

    Raises ``ValueError`` (saying how to write the expression) when the top level is
    not ``<measured value> <op> <number>``; :class:`PromQLSyntaxError` when it does not
    parse.
    """
    tree = parse(expr)
    op = str(tree.op) if isinstance(tree, promql_parser.BinaryExpr) else ""
    if op in SET_OPERATORS:
        raise ValueError(
            f"the top level is '{op}', not a comparison: put the filter in parentheses and "
            "end with '<measured value> <op> <number>'"
        )
    if op not in COMPARISONS:
        raise ValueError(
            f"the top level is {_describe(tree)}, not a comparison: end the expression "
            "with '<measured value> <op> <number>' outside parentheses"
        )
    if tree.modifier is not None and tree.modifier.return_bool:
        raise ValueError("'bool' turns the comparison into 0/1 and the alert would always fire")
    if not isinstance(tree.rhs, promql_parser.NumberLiteral):
        raise ValueError(
            f"the right of '{op}' is {str(tree.rhs)!r}, not a single number: write the "
            "threshold as one literal, e.g. '... > 0.05'"
        )
    tail = _TAIL.search(expr)
    if tail and tail["op"] == op and _same_number(tail["literal"], tree.rhs.val):
        literal, lhs = tail["literal"].replace(" ", ""), expr[: tail.start()].strip()
    else:  # written in a way the pattern does not know: the parser's own spelling
        literal, lhs = f"{tree.rhs.val:g}", str(tree.lhs)
    return Threshold(op=op, literal=literal, lhs=lhs, value=tree.rhs.val)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration: ``"5m"`` -> 300.0, ``"1h30m"`` -> 5400.0."""
    text = str(text).strip()
    # A zero duration ("0s", a rule without 'for', an eval_time of 0m) is valid in the
    # rule files; the parser only takes positive ones (PromQL ranges): check its form.
    zero = bool(re.fullmatch(r"[0a-z]+", text)) and "0" in text
    try:
        delta = promql_parser.parse_duration(re.sub(r"0+", "1", text) if zero else text)
    except ValueError:
        raise ValueError(
            f"not a Prometheus duration: {text!r} (write e.g. 5m, 90s, 1h30m)"
        ) from None
    return 0.0 if zero else delta.total_seconds()
