"""Every Python example on a page runs, and prints what the page says it prints."""

import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

from handbook.paths import DOCS, rel

EXAMPLES = list(find_examples(DOCS))


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
