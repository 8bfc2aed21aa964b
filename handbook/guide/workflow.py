"""The branch-name and commit-message rules of the onboarding guide, as a checker.

A name or message either passes or fails with the rule it breaks::

    python -m handbook.guide.workflow branch feat/123-pool-metrics
    python -m handbook.guide.workflow commit .git/COMMIT_EDITMSG

Branches are ``<type>/<issue>-<slug>``: ``feat/123-pool-metrics``. Commit messages
follow Conventional Commits: a subject ``<type>(<scope>): <summary>`` of at most 72
characters, a blank line, a body wrapped at 72 (long URLs excepted), and a trailer
naming the issue (``Refs: #123`` or ``Fixes: #123``). Lines starting with ``#`` are
git's comments and are ignored, so the checker also works as a ``commit-msg`` hook.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

TYPES = ("feat", "fix", "docs", "test", "refactor", "perf", "chore", "ci", "hotfix")
BRANCH_MAX = 60
SUBJECT_MAX = 72
BODY_MAX = 72

BRANCH = re.compile(r"^(?P<type>[^/]+)/(?P<issue>[^-/]+)-(?P<slug>.+)$")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SUBJECT = re.compile(r"^(?P<type>[a-z]+)(\((?P<scope>[^)]*)\))?(?P<bang>!)?: (?P<summary>.*)$")
SCOPE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TRAILER = re.compile(r"^(Refs|Fixes): #\d+$")


@dataclass(frozen=True)
class Violation:
    rule: str  # "branch-type", "commit-subject-length", ...
    line: int  # 1-based line of a commit message; 0 for a branch name
    message: str  # what is wrong and what to do

    def render(self, where: str) -> str:
        place = f"{where}:{self.line}" if self.line else where
        return f"{place}: {self.rule}: {self.message}"


def check_branch(name: str) -> list[Violation]:
    """The rules ``name`` breaks (empty when it is a good branch name)."""
    match = BRANCH.match(name)
    if not match:
        return [
            Violation(
                "branch-format",
                0,
                f"{name!r} is not <type>/<issue>-<slug>: name it like feat/123-pool-metrics",
            )
        ]
    found = []
    if match["type"] not in TYPES:
        found.append(
            Violation(
                "branch-type",
                0,
                f"{match['type']!r} is not a change type: use one of {', '.join(TYPES)}",
            )
        )
    if not match["issue"].isdigit():
        found.append(
            Violation(
                "branch-issue",
                0,
                f"{match['issue']!r} is not an issue number: start with the number of the "
                "issue you work on (feat/123-...)",
            )
        )
    if not SLUG.match(match["slug"]):
        found.append(
            Violation(
                "branch-slug",
                0,
                f"{match['slug']!r}: write the slug in lowercase letters and digits joined by "
                "single hyphens",
            )
        )
    if len(name) > BRANCH_MAX:
        found.append(
            Violation(
                "branch-length",
                0,
                f"{len(name)} characters: keep branch names to {BRANCH_MAX} (shorten the slug)",
            )
        )
    return found


def check_commit(text: str) -> list[Violation]:
    """The rules a commit message breaks (empty when it is a good message)."""
    numbered = [
        (number, line.rstrip())
        for number, line in enumerate(text.splitlines(), start=1)
        if not line.startswith("#")
    ]
    while numbered and not numbered[-1][1]:
        numbered.pop()
    if not numbered or not numbered[0][1]:
        return [Violation("commit-subject", 1, "the message is empty or starts with a blank line")]
    number, subject = numbered[0]
    found = _check_subject(number, subject)
    rest = numbered[1:]
    if rest and rest[0][1]:
        found.append(
            Violation(
                "commit-blank-line",
                rest[0][0],
                "leave one blank line between the subject and the body",
            )
        )
    for number, line in rest:
        if len(line) > BODY_MAX and "://" not in line:
            found.append(
                Violation(
                    "commit-body-length",
                    number,
                    f"{len(line)} characters: wrap the body at {BODY_MAX} (URLs may run longer)",
                )
            )
    if not any(TRAILER.match(line) for _, line in rest):
        found.append(
            Violation(
                "commit-issue",
                numbered[-1][0],
                "name the issue in a last-paragraph trailer: 'Refs: #123' or 'Fixes: #123'",
            )
        )
    return found


def _check_subject(number: int, subject: str) -> list[Violation]:
    match = SUBJECT.match(subject)
    if not match:
        return [
            Violation(
                "commit-subject",
                number,
                "write the subject as '<type>(<scope>): <summary>', "
                "e.g. 'fix(pool): close idle transactions'",
            )
        ]
    found = []
    if match["type"] not in TYPES:
        found.append(
            Violation(
                "commit-type",
                number,
                f"{match['type']!r} is not a change type: use one of {', '.join(TYPES)}",
            )
        )
    if match["scope"] is not None and not SCOPE.match(match["scope"]):
        found.append(
            Violation(
                "commit-scope",
                number,
                f"scope {match['scope']!r}: use a lowercase word such as pool, cache or docs",
            )
        )
    summary = match["summary"]
    if not summary.strip() or summary != summary.strip():
        found.append(Violation("commit-summary", number, "write a summary after ': '"))
    elif summary[0].isupper():
        found.append(
            Violation(
                "commit-summary-case",
                number,
                "start the summary in lowercase, in the imperative: 'add', not 'Added'",
            )
        )
    if summary.endswith("."):
        found.append(
            Violation("commit-summary-period", number, "end the summary without a full stop")
        )
    if len(subject) > SUBJECT_MAX:
        found.append(
            Violation(
                "commit-subject-length",
                number,
                f"{len(subject)} characters: keep the subject to {SUBJECT_MAX}",
            )
        )
    return found


USAGE = "usage: python -m handbook.guide.workflow branch NAME | commit FILE"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("branch", "commit"):
        print(USAGE, file=sys.stderr)
        return 2
    what, value = args
    if what == "branch":
        violations, where, ok = check_branch(value), f"branch {value}", f"branch {value}: ok"
    else:
        path = Path(value)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"{value}: cannot read the commit message: {exc.strerror}", file=sys.stderr)
            return 2
        violations, where, ok = check_commit(text), value, f"commit message {value}: ok"
    for violation in violations:
        print(violation.render(where), file=sys.stderr)
    if violations:
        return 1
    print(ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
