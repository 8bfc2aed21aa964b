"""Every Python example on a page runs, and prints what the page says it prints.

pytest-examples runs them. They are found with markdown-it (the parser MyST itself
builds on) rather than pytest-examples' own ``find_examples``, whose pattern pairs
fences up by position: a directive with an empty body (````` ```{package-map} `````
then the closing fence) shifts every pair after it, and the page's Python examples
silently stop running.
"""

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from markdown_it import MarkdownIt
from pytest_examples import CodeExample, EvalExample

from handbook.paths import DOCS, rel

PYTHON = ("py", "{.py")  # the info strings pytest-examples runs: py, python, pycon...


def _fences(text: str, first_line: int) -> Iterator[tuple[str, int, str]]:
    """(info, 0-based line of the opening fence, body) of every fence, nested ones too."""
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence" or token.map is None:
            continue
        line = first_line + token.map[0]
        yield token.info.strip(), line, token.content
        if token.info.startswith("{"):  # a MyST directive: its body may hold fences
            yield from _fences(token.content, line + 1)


def find_examples(root: Path) -> list[CodeExample]:
    examples = []
    for path in sorted(root.rglob("*.md")):
        if "_build" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        line_starts = [0]
        for line in text.splitlines(keepends=True):
            line_starts.append(line_starts[-1] + len(line))
        group = uuid4()
        for info, line, body in _fences(text, 0):
            if not info.lower().startswith(PYTHON):
                continue
            start = line_starts[line + 1]
            examples.append(
                CodeExample(
                    source=body,
                    path=path,
                    start_line=line + 1,
                    end_line=line + 1 + body.count("\n") + 1,
                    start_index=start,
                    end_index=start + len(body),
                    prefix=info.lower(),
                    indent=0,
                    group=group,
                )
            )
    return examples


EXAMPLES = find_examples(DOCS)


def test_examples_are_found():
    """The pages' Python examples are collected: a glob that found none would prove nothing."""
    pages = {example.path for example in EXAMPLES}
    assert all(path.is_relative_to(DOCS) for path in pages)
    # The guide and the explanation pages that show running Python (count them on change).
    assert {"verification.md", "index.md", "codebase.md"} <= {p.name for p in pages}, pages


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{rel(e.path)}:{e.start_line}")
def test_example_runs(example: CodeExample, eval_example: EvalExample):
    eval_example.set_config(line_length=100, target_version="py311")
    eval_example.lint_ruff(example)
    failure = None
    try:
        eval_example.run_print_check(example)
    except Exception as exc:  # reported below, outside the except block
        failure = f"{rel(example.path)}:{example.start_line}: example failed: {exc}"
    if failure:
        # Outside the except block: pytest 9 on Python 3.11.7 can crash otherwise.
        pytest.fail(failure, pytrace=False)
