"""The verification page shows the benchmark's latest figures, never typed-in ones.

``python -m handbook.benchmark`` writes ``build/benchmark.json``; the page's
``{benchmark-figures}`` (``handbook/sphinxext/benchmark.py``) renders it with the date
and the machine, or says how to make one when there is none.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from handbook import benchmark
from handbook.paths import ROOT
from handbook.site import build
from handbook.sphinxext.benchmark import NO_REPORT

pytestmark = pytest.mark.usefixtures("site_tools")

MACHINE = {"cpu": "AMD EPYC 7B13", "cores": 2, "system": "Linux", "load": 3.5}
FIGURES = {
    "docs": {"measured": "2026-12-03T03:00:00Z", "machine": MACHINE, "clean_s": 21.4,
             "incremental_s": 2.6, "edited": "docs/runbooks/a-page.md", "ok": True},
    "pages": {"measured": "2026-12-03T03:05:00Z", "machine": MACHINE, "pages": {
        "docs/runbooks/a-page.md": {"seconds": 27.9, "exit": 0,
                                          "summary": "81 passed, 796 deselected in 27.1s"},
    }},
    "full": {"measured": "2026-12-03T03:30:00Z", "machine": MACHINE, "workers": 2,
             "serial": {"seconds": 1380.0, "exit": 0, "summary": "877 passed"},
             "parallel": {"seconds": 815.5, "exit": 0, "summary": "877 passed"}},
}  # fmt: skip


@pytest.fixture
def copy(tmp_path) -> Path:
    for name in ("docs", "conf", "snippets", "handbook"):
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("_build", "__pycache__")
        )
    return tmp_path


def test_the_page_renders_the_latest_figures_with_machine_and_date(copy, tmp_path):
    (copy / "build").mkdir()
    (copy / "build" / "benchmark.json").write_text(json.dumps(FIGURES), encoding="utf-8")
    result = build(copy, tmp_path / "out")
    assert result.returncode == 0, f"the site does not build (tox -e docs):\n{result.stderr}"
    html = (tmp_path / "out" / "verification.html").read_text(encoding="utf-8")
    for expected in (
        "27.9",  # verifying a-page.md
        "81 passed, 796 deselected",
        "1380.0",  # the whole run, serial
        "815.5",  # and on two cores
        "2.6",  # the incremental site build
        "2026-12-03 03:05:00 UTC on AMD EPYC 7B13, 2 cores, load average 3.5",
    ):
        assert expected in html, (
            f"docs/verification.md's {{benchmark-figures}} does not show {expected!r} from "
            "build/benchmark.json (handbook/sphinxext/benchmark.py)"
        )
    assert NO_REPORT.split(":")[0] not in html


def test_without_a_report_the_page_says_how_to_make_one(copy, tmp_path):
    shutil.rmtree(copy / "build", ignore_errors=True)
    result = build(copy, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out" / "verification.html").read_text(encoding="utf-8")
    assert "No benchmark report in this checkout" in html, "the page claims figures it lacks"


def test_each_benchmark_part_keeps_its_own_date(tmp_path):
    """A run of some parts keeps the figures an earlier run measured of the others."""
    report = tmp_path / "benchmark.json"
    benchmark.save({"docs": FIGURES["docs"]}, report)
    benchmark.save({"pages": FIGURES["pages"]}, report)
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["docs"] == FIGURES["docs"] and data["pages"] == FIGURES["pages"], data
