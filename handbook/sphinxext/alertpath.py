"""``{alert-path}``: time to page and time to diagnosis, as the alert-path drills measured them.

    ```{alert-path}
    ```

renders one row per drill of ``handbook.drills.pathreport.DRILLS``: the alert, its ``for``
in ``conf/prometheus/alert_rules.yml`` and in the drill's copy, what the drill breaks, and
the seconds it measured from the fault to ``handbook respond``'s notification and from the
notification to a note naming the cause, read from ``build/alert-path.json`` (written by
``tests/drills/test_alert_path.py``). A drill without figures says "not measured in this
build"; the build never fails for want of them, and no figure is ever typed into a page.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from handbook.drills import objectives, pathreport
from handbook.sphinxext.alerts import load, project_root, table

NOT_MEASURED = "not measured in this build"
HEADER = [
    "Alert",
    "for: production / drill",
    "The fault",
    "Fault to webhook",
    "Webhook to a note naming the cause",
]


def seconds(entry: dict | None, key: str) -> str:
    if not entry or key not in entry.get("measured", {}):
        return NOT_MEASURED
    return objectives.figure(float(entry["measured"][key]), "s")


def cell(text: str, literal: bool = False) -> nodes.entry:
    para = nodes.paragraph()
    para += nodes.literal(text=text) if literal else nodes.Text(text)
    return nodes.entry("", para)


class AlertPath(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        path = project_root(self.env.app) / "build" / pathreport.REPORT.name
        self.env.note_dependency(str(path))
        entries = pathreport.load(path).get("entries", {})
        alerts = load(self.env)
        rows = []
        for drill in pathreport.DRILLS:
            entry = entries.get(drill.name)
            rule = alerts.get(drill.alert)
            # a project without the rules file (a test's one-page site): the report's
            production = (rule.for_ or "0s") if rule else str((entry or {}).get("for", ""))
            row = nodes.row()
            row += cell(drill.alert, literal=True)
            drilled = pathreport.drill_for(drill.alert, production) or "?"
            row += cell(f"{production or '?'} / {drilled}")  # one column: the table fits a desktop
            row += cell(drill.fault)
            row += cell(seconds(entry, "fault_to_notification_seconds"))
            row += cell(seconds(entry, "notification_to_note_seconds"))
            rows.append(row)
        result: list[nodes.Node] = [table([22, 14, 32, 16, 16], HEADER, rows)]
        note = nodes.paragraph(classes=["handbook-alert-path-source"])
        measured = [entries[d.name] for d in pathreport.DRILLS if d.name in entries]
        if not measured:
            note += nodes.emphasis(
                text="No alert-path report in this build (build/alert-path.json is missing): "
                f"run `{pathreport.TEST_COMMAND}` or `tox`, then build the site again."
            )
            return [*result, note]
        machines = sorted(
            {
                f"{e['machine'].get('cpu', 'unknown CPU')}, {e['machine'].get('cores', '?')} cores"
                for e in measured
                if isinstance(e.get("machine"), dict)
            }
        )
        dates = sorted(str(e.get("when", "")) for e in measured)
        servers = sorted({str(e.get("server", "")) for e in measured})
        when = f"on {dates[0]}" if dates[0] == dates[-1] else f"between {dates[0]} and {dates[-1]}"
        note += nodes.Text(
            f"Measured on {'; '.join(machines)}, {when}, against {', '.join(servers)}, by "
        )
        note += nodes.literal(text=pathreport.TEST_COMMAND)
        note += nodes.Text(
            ". The webhook is the moment handbook respond received Alertmanager's "
            "notification: the fault's detection (a scrape every 2 s), the alert's for, "
            "Alertmanager's group_wait and the delivery. The figures are measured, never "
            "asserted: a slower machine takes longer and fails nothing."
        )
        return [*result, note]


def setup(app: Sphinx) -> None:
    app.add_directive("alert-path", AlertPath)
