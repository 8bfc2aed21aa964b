"""Unit tests: one function, no server, no files; each test names the rule it pins down."""

from handbook.guide.workflow import check_branch, check_commit

GOOD_MESSAGE = """fix(pool): close transactions left idle by the report job

The nightly report opened a transaction per page and never ended it.

Refs: #123
"""


def test_a_good_branch_name_passes():
    assert check_branch("feat/123-pool-metrics") == []


def test_a_branch_without_an_issue_number_fails_with_its_rule():
    (violation,) = check_branch("feat/pool-metrics")
    assert violation.rule == "branch-issue"


def test_a_good_commit_message_passes():
    assert check_commit(GOOD_MESSAGE) == []


def test_a_subject_in_the_past_tense_fails():
    message = GOOD_MESSAGE.replace("fix(pool): close", "fix(pool): Closed")
    assert [v.rule for v in check_commit(message)] == ["commit-summary-case"]


def test_a_message_without_an_issue_trailer_fails_on_its_last_line():
    message = GOOD_MESSAGE.replace("Refs: #123\n", "")
    (violation,) = check_commit(message)
    assert (violation.rule, violation.line) == ("commit-issue", 3)
