"""``{benchmark-figures}``: the latest figures of ``python -m handbook.benchmark``.

    ```{benchmark-figures}
    ```

renders what ``build/benchmark.json`` holds (``handbook/benchmark.py`` writes it): the
site built clean and after one page changed, verifying each runbook page alone, the
whole test run serially and in parallel, and the harness's per-server figures, each
part with the date and the machine it was measured on (and how loaded that machine
was). Without a report the build still succeeds and the page says how to make one;
no figure is typed into a page.
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

REPORT = Path("build") / "benchmark.json"
NO_REPORT = (
    "No benchmark report in this checkout: `python -m handbook.benchmark` (or "
    "`tox -e benchmark`) measures this machine and writes `build/benchmark.json`; build "
    "the site again to show its figures here."
)


def _machine(part: dict) -> str:
    m = part.get("machine", {})
    load = f", load average {m['load']} at the start" if m.get("load") is not None else ""
    when = part.get("measured", "").replace("T", " ").removesuffix("Z")
    cpu, cores = m.get("cpu", "an unknown CPU"), m.get("cores", "?")
    return f"measured {when} UTC on {cpu}, {cores} cores{load}"


def markdown(data: dict) -> str:
    """The figures as MyST Markdown: one paragraph and table per part measured."""
    out = []
    if "docs" in data:
        docs = data["docs"]
        out += [
            f"**Site build** ({_machine(docs)}):",
            "",
            "| Build | Seconds |",
            "|---|---|",
            f"| clean, into a new directory | {docs['clean_s']} |",
            f"| again, after saving `{docs['edited']}` | {docs['incremental_s']} |",
            "",
        ]
    if "pages" in data:
        pages = data["pages"]
        out += [
            f"**Verifying one page**, `tox -e tests -- PAGE`, servers' start included "
            f"({_machine(pages)}):",
            "",
            "| Page (`docs/runbooks/`) | Seconds | Result |",
            "|---|---|---|",
        ]
        out += [
            f"| `{name.removeprefix('docs/runbooks/')}` | {f['seconds']} | {f['summary']} |"
            for name, f in sorted(pages["pages"].items())
        ]
        out.append("")
    if "full" in data:
        full = data["full"]
        out += [
            f"**The whole test run** ({_machine(full)}):",
            "",
            "| Run | Seconds | Result |",
            "|---|---|---|",
            f"| serial | {full['serial']['seconds']} | {full['serial']['summary']} |",
            f"| `-n {full['workers']}` | {full['parallel']['seconds']} | "
            f"{full['parallel']['summary']} |",
            "",
        ]
    if "harness" in data:
        harness = data["harness"]
        out += [
            f"**The harness** ({_machine(harness)}); the whole snippet suite took "
            f"{harness['snippet_suite_s']} s:",
            "",
            "| Server | Start (s) | Floor (ms) | SQL snippets | Median (ms) | Median x floor |",
            "|---|---|---|---|---|---|",
        ]
        for label, s in sorted(harness["servers"].items()):
            out.append(
                f"| {s.get('server', label)} | {s.get('start_s', '')} | "
                f"{s.get('floor_ms') or ''} | {s.get('snippets', '')} | "
                f"{s.get('median_ms', '')} | {s.get('median_x_floor', '')} |"
            )
        out.append("")
    return "\n".join(out)


class BenchmarkFigures(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        root = Path(self.env.app.confdir).resolve().parent
        path = root / REPORT
        self.env.note_dependency(str(path))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        text = markdown(data) or NO_REPORT
        return self.parse_text_to_nodes(text)


def setup(app: Sphinx) -> dict:
    app.add_directive("benchmark-figures", BenchmarkFigures)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
