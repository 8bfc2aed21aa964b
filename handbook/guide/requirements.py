"""The seed's requirements and next steps, and the tests that prove each one.

A test proves a requirement by carrying ``@pytest.mark.covers("20.1")`` (or a
module-level ``pytestmark``). The implementation summary page is generated from
these markers, found by reading the test files, and from the outcomes the last
test run recorded in ``build/verification.json``; nothing is ticked by hand.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from handbook.paths import ROOT, rel


@dataclass(frozen=True)
class Requirement:
    id: str  # "20.1" or "next:drill"
    title: str
    scope: str  # what the seed lists under it
    provable: bool = True  # False: a team activity no test can prove


REQUIREMENTS = (
    Requirement(
        "20.1",
        "Runbook links in alerts",
        "Every alert carries a runbook URL that lands on its runbook.",
    ),
    Requirement(
        "20.2",
        "Incident response procedures",
        "Runbooks for high error rate, database connectivity, high latency, authentication "
        "failures, connection pool exhaustion, cache issues, deployment and emergency rollback.",
    ),
    Requirement(
        "20.3",
        "Deployment documentation",
        "Pre-deployment checklist, blue-green and canary deployment, post-deployment "
        "verification, rollback procedures.",
    ),
    Requirement(
        "20.4",
        "Architecture documentation",
        "Production infrastructure diagrams, component configurations, environment-specific "
        "settings, security configuration, disaster recovery procedures.",
    ),
    Requirement(
        "20.5",
        "Onboarding documentation",
        "Development environment setup, codebase overview, development workflow, testing "
        "strategy, deployment process, troubleshooting.",
    ),
    Requirement("next:links", "Test alert runbook links", "Next steps, week 1."),
    Requirement("next:drill", "Conduct incident response drills", "Next steps, month 1."),
    Requirement("next:automate", "Automate common runbook procedures", "Next steps, quarter 1."),
    Requirement(
        "next:templates", "Create runbook templates for new services", "Next steps, quarter 1."
    ),
    Requirement(
        "next:share",
        "Share runbooks with the on-call rotation and hold a walkthrough session",
        "Next steps, week 1.",
        provable=False,
    ),
    Requirement(
        "next:feedback",
        "Gather feedback and update runbooks after real incidents",
        "Next steps, month 1.",
        provable=False,
    ),
    Requirement(
        "next:mttr",
        "Integrate with the incident management system and measure MTTR",
        "Next steps, quarter 1.",
        provable=False,
    ),
)
BY_ID = {r.id: r for r in REQUIREMENTS}


@dataclass(frozen=True)
class Proof:
    requirement: str
    path: str  # "tests/test_site.py"
    line: int
    test: str  # "test_runbook_url_lands_on_an_anchor_of_the_built_site"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


class UnknownRequirement(ValueError):
    """A ``covers`` marker naming an id that is not in REQUIREMENTS."""


def _covered(decorators: list[ast.expr]) -> list[tuple[str, int]]:
    """The ids of every ``pytest.mark.covers(...)`` among decorators or a pytestmark value."""
    ids = []
    for node in decorators:
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "covers"
            ):
                for arg in call.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        ids.append((arg.value, arg.lineno))
    return ids


def _pytestmark(body: list[ast.stmt]) -> list[ast.expr]:
    return [
        stmt.value
        for stmt in body
        if isinstance(stmt, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets)
    ]


def trace(tests: Path = ROOT / "tests", root: Path = ROOT) -> list[Proof]:
    """Every (requirement, test) pair the test files declare; unknown ids raise, naming the line."""
    proofs = []
    for path in sorted(tests.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = rel(path, root)
        module_ids = _covered(_pytestmark(tree.body))
        scopes: list[tuple[list[ast.stmt], list[tuple[str, int]]]] = [(tree.body, module_ids)]
        while scopes:
            body, inherited = scopes.pop()
            for node in body:
                if isinstance(node, ast.ClassDef):
                    own = _covered(node.decorator_list) + _covered(_pytestmark(node.body))
                    scopes.append((node.body, inherited + own))
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    node.name.startswith("test")
                ):
                    for req, line in inherited + _covered(node.decorator_list):
                        if req not in BY_ID:
                            raise UnknownRequirement(
                                f"{where}:{line}: covers({req!r}) names no requirement: use one "
                                f"of {', '.join(BY_ID)} (handbook/guide/requirements.py)"
                            )
                        proofs.append(Proof(req, where, node.lineno, node.name))
    return proofs
