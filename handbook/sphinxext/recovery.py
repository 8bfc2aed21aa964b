"""``{recovery-objectives}``: production RTO/RPO targets beside what the drills measured.

    ```{recovery-objectives}
    ```

renders one row per scenario of ``handbook.drills.objectives.OBJECTIVES`` (the targets)
with the figures its drills last measured, read from ``build/dr-report.json`` (written by the
drill tests and by ``python -m handbook.drills.dr``), then the machine, the dates and the
command that measured them. Without a report the build still succeeds: the measured
column says so, and a note says how to fill it. No figure is ever typed into a page.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from handbook.drills import objectives


def _table(header: list[str], widths: list[int], rows: list[list[nodes.Node]]) -> nodes.table:
    group = nodes.tgroup(cols=len(header))
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head, body = nodes.thead(), nodes.tbody()
    row = nodes.row()
    for title in header:
        row += nodes.entry("", nodes.paragraph(text=title))
    head += row
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            row += nodes.entry("", *(cell if isinstance(cell, list) else [cell]))
        body += row
    group += head
    group += body
    return nodes.table("", group, classes=["handbook-recovery"])


def _machine(entry: dict) -> str:
    m = entry.get("machine", {})
    return f"{m.get('cpu', 'unknown CPU')}, {m.get('cores', '?')} cores, {m.get('system', '')}"


def measured_cell(objective: objectives.Objective, entries: list[dict]) -> list[nodes.Node]:
    lines = []
    for name in objective.drills:
        for item in sorted(
            (e for e in entries if e.get("drill") == name), key=lambda e: e.get("label", "")
        ):
            para = nodes.paragraph()
            para += nodes.strong(text=f"{item.get('server', item.get('label'))}")
            para += nodes.Text(f" ({name}): {objectives.describe(item)}")
            lines.append(para)
    return lines or [nodes.paragraph(text="not measured in this build (no drill report)")]


class RecoveryObjectives(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        root = Path(self.env.app.confdir).resolve().parent
        path = root / "build" / objectives.REPORT.name
        self.env.note_dependency(str(path))
        self.env.note_dependency(str(objectives.SENTINEL_CONF))
        entries = list(objectives.load(path).get("entries", {}).values())
        rows = [
            [
                nodes.paragraph(text=o.scenario),
                nodes.paragraph(text=o.rto),
                nodes.paragraph(text=o.rpo),
                measured_cell(o, entries),
                nodes.paragraph(text=o.procedure),
            ]
            for o in objectives.OBJECTIVES
        ]
        header = ["Scenario", "Target RTO", "Target RPO", "Measured in the drills", "Procedure"]
        result: list[nodes.Node] = [_table(header, [20, 15, 18, 30, 17], rows)]
        note = nodes.paragraph(classes=["handbook-recovery-source"])
        if not entries:
            note += nodes.emphasis(
                text="No drill report in this build (build/dr-report.json is missing): run "
                f"`{objectives.COMMAND}` or `tox`, then build the site again to fill the "
                "measured column."
            )
            return [*result, note]
        machines = sorted({_machine(e) for e in entries})
        dates = sorted(str(e.get("when", "")) for e in entries)
        commands = sorted({str(e.get("command", objectives.COMMAND)) for e in entries})
        note += nodes.Text("Measured on " + "; ".join(machines) + ", ")
        note += nodes.Text(
            f"on {dates[0]}" if dates[0] == dates[-1] else f"between {dates[0]} and {dates[-1]}"
        )
        note += nodes.Text(", by ")
        for index, command in enumerate(commands):
            if index:
                note += nodes.Text(" and ")
            note += nodes.literal(text=command)
        note += nodes.Text(
            ". The drills run on throwaway servers with a small database on that machine: "
            "they show the procedure works and what it costs at that size, not what "
            "production hardware and data volumes will take."
        )
        return [*result, note]


def setup(app: Sphinx) -> None:
    app.add_directive("recovery-objectives", RecoveryObjectives)
