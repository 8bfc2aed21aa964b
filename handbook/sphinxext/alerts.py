"""Alerts on the pages, rendered from ``conf/prometheus/alert_rules.yml``, never retyped.

- ``{alert} HighErrorRate`` at the top of a runbook: name, severity, threshold,
  ``for``, summary and the expression. It also declares that the page is the
  runbook of that alert.
- ``{alert-table}``: every alert with its severity, threshold and runbook.

After the HTML build, every alert's ``runbook_url`` must land on an anchor that
exists in the built site, every alert must have a runbook page and every runbook
must serve an alert that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from handbook.confcheck.names import Registry
from handbook.paths import rel
from handbook.prometheus import alerts as rules
from handbook.prometheus import metrics
from handbook.sphinxext import links
from handbook.yamlfile import ConfigError

logger = logging.getLogger(__name__)


def project_root(app: Sphinx) -> Path:
    return Path(app.confdir).resolve().parent


def load(env: BuildEnvironment) -> dict[str, rules.Alert]:
    path = project_root(env.app) / "conf" / "prometheus" / "alert_rules.yml"
    if not path.exists():
        return {}  # a project without alert rules (the extension's own test projects)
    env.note_dependency(str(path))
    return {alert.name: alert for alert in rules.load_rules(path)}


def field_row(name: str, *content: nodes.Node) -> nodes.row:
    row = nodes.row()
    row += nodes.entry("", nodes.paragraph(text=name))
    row += nodes.entry("", nodes.paragraph("", "", *content))
    return row


def table(columns: list[int], header: list[str] | None, rows: list[nodes.row]) -> nodes.table:
    group = nodes.tgroup(cols=len(columns))
    for width in columns:
        group += nodes.colspec(colwidth=width)
    if header:
        head = nodes.thead()
        row = nodes.row()
        for title in header:
            row += nodes.entry("", nodes.paragraph(text=title))
        head += row
        group += head
    body = nodes.tbody()
    body.extend(rows)
    group += body
    return nodes.table("", group, classes=["handbook-alert"])


TEMPLATE = re.compile(r"\{\{\s*\$(?:labels\.(?P<label>\w+)|(?P<value>value))[^}]*\}\}")


# {{- with $labels.role }} for the {{ . }}{{ else }} at all{{ end }}: a label that may be unset
WITH = re.compile(
    r"(?P<trim>\s*\{\{-)?(?(trim)|\{\{)\s*with\s+\$labels\.(?P<label>\w+)\s*-?\}\}"
    r"(?P<body>.*?)(?:\{\{-?\s*else\s*-?\}\}(?P<other>.*?))?\{\{-?\s*end\s*-?\}\}",
    re.DOTALL,
)
DOT = re.compile(r"\{\{-?\s*\.\s*-?\}\}")


def placeholders(text: str) -> str:
    """An annotation as a reader can read it: ``{{ $labels.service }}`` -> ``<service>``,
    ``{{ $value | humanizePercentage }}`` -> ``<value>``, and ``{{ with $labels.role }} for
    the {{ . }}{{ else }} at all{{ end }}`` -> `` for the <role> (else: at all)``."""

    def with_block(match: re.Match) -> str:
        body = DOT.sub(f"<{match['label']}>", match["body"])
        other = f" (else:{match['other']})" if match["other"] else ""
        return body + other

    text = WITH.sub(with_block, text)
    return TEMPLATE.sub(lambda m: f"<{m['label'] or 'value'}>", text)


def threshold_text(alert: rules.Alert) -> str:
    return str(alert.threshold) if alert.threshold else "(see expression)"


class AlertDirective(SphinxDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        alerts = load(self.env)
        where = (
            f"{rel(self.env.doc2path(self.env.docname), project_root(self.env.app))}:{self.lineno}"
        )
        if name not in alerts:
            logger.warning(
                f"runbook serves alert {name!r}, which conf/prometheus/alert_rules.yml does not "
                f"define (alerts: {', '.join(sorted(alerts))}): fix the name or add the rule",
                location=where,
                type="handbook",
                subtype="alert",
            )
            return []
        alert = alerts[name]
        served = self.env.handbook_runbooks.setdefault(self.env.docname, [])
        served.append(name)
        text = alert.expr.strip()
        expr = nodes.literal_block(text, text, language="text")
        expr["source"] = str(alert.source)  # included from conf/: the build accepts it
        self.set_source_info(expr)
        where = f"{rel(alert.source)}, line {alert.line}"
        rows = [
            field_row(
                "Alert",
                nodes.literal(text=alert.name),
                nodes.Text(
                    f" ({alert.severity}; fires when the expression holds for {alert.for_})"
                ),
            ),
            field_row("Summary", nodes.Text(placeholders(alert.summary))),
            field_row(
                "Rule",
                links.external(where, links.source_line(rel(alert.source), alert.line)),
                links.online(
                    links.external(
                        "open in Prometheus",
                        links.prometheus_graph(alert.expr),
                        "handbook-prometheus",
                    )
                ),
            ),
        ]
        # The whole expression, threshold included, under the rows (wrapped, never cut).
        shown = table([20, 80], None, rows)
        return [shown, nodes.container("", expr, classes=["handbook-alert-expr"])]


class AlertTableDirective(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        rows = []
        root = project_root(self.env.app)
        names = Registry(conf=root / "conf", snippets=root / "snippets")
        for path in sorted(names.conf.glob("grafana/dashboards/*.json")):
            self.env.note_dependency(str(path))  # the Grafana links come from the panels
        for alert in load(self.env).values():
            try:
                _, anchor = alert.runbook_target()
            except ValueError:
                anchor = ""
            ref = addnodes.pending_xref(
                "", refdomain="std", reftype="ref", reftarget=anchor, refexplicit=False
            )
            ref += nodes.inline(text=anchor)
            name = nodes.inline("", "", nodes.literal(text=alert.name))
            out: list[nodes.Node] = []
            for panel in names.panels_for(alert.name):
                url = links.grafana_panel(panel.dashboard_uid, panel.id)
                out += [links.external("Grafana", url, "handbook-grafana"), nodes.Text(" \u00b7 ")]
            out.append(links.external("Prometheus", links.prometheus_graph(alert.expr)))
            group = links.online(*out, separator="")
            group["classes"].append("handbook-alert-links")
            name += group
            row = nodes.row()
            for content in (
                name,
                nodes.Text(alert.severity),
                nodes.literal(text=threshold_text(alert)),
                nodes.Text(alert.for_),
                ref,
            ):
                row += nodes.entry("", nodes.paragraph("", "", content))
            rows.append(row)
        header = ["Alert", "Severity", "Fires when", "For", "Runbook"]
        return [table([36, 10, 16, 8, 30], header, rows)]


class MetricCatalogueDirective(SphinxDirective):
    """``{metric-catalogue}``: ERPGo's own metrics from ``conf/metrics/erpgo.yml``."""

    def run(self) -> list[nodes.Node]:
        path = project_root(self.env.app) / "conf" / "metrics" / "erpgo.yml"
        self.env.note_dependency(str(path))
        try:
            catalogue = metrics.load_metric_catalogue(path)
        except ConfigError as exc:  # names file:line; a warning fails the -W build
            logger.warning(str(exc), location=self.get_location(), type="handbook")
            return []
        rows = []
        for metric in catalogue.metrics.values():
            labels = nodes.bullet_list()
            for label, meaning in {**metric.labels, **catalogue.common_labels}.items():
                labels += nodes.list_item(
                    "",
                    nodes.paragraph("", "", nodes.literal(text=label), nodes.Text(f": {meaning}")),
                )
            kind = metric.type + (f" ({metric.unit})" if metric.unit else "")
            row = nodes.row()
            row += nodes.entry("", nodes.paragraph("", "", nodes.literal(text=metric.name)))
            row += nodes.entry("", nodes.paragraph(text=kind))
            row += nodes.entry("", nodes.paragraph(text=metric.help), labels)
            rows.append(row)
        note = nodes.paragraph(
            text=f"Generated from conf/metrics/erpgo.yml: {len(rows)} metrics. Every series also "
            "carries the scrape labels " + ", ".join(sorted(catalogue.target_labels)) + "."
        )
        return [table([30, 14, 56], ["Metric", "Type", "Meaning and labels"], rows), note]


def check_contract(app: Sphinx, env: BuildEnvironment) -> None:
    """No alert without a runbook page, and each alert's link names that page."""
    served = {name: doc for doc, names in env.handbook_runbooks.items() for name in names}
    for alert in load(env).values():
        if alert.name not in served:
            logger.warning(
                f"{alert.location}: alert {alert.name} has no runbook: add a page under "
                f"docs/runbooks/ that starts with ```{{alert}} {alert.name}```",
                type="handbook",
                subtype="alert",
            )
            continue
        try:
            page, anchor = alert.runbook_target()
        except ValueError as exc:
            logger.warning(f"{alert.location}: {exc}", type="handbook", subtype="alert")
            continue
        labels = env.domaindata["std"]["labels"]
        if labels.get(anchor, ("",))[0] != served[alert.name]:
            logger.warning(
                f"{alert.location}: {alert.name}'s runbook_url {alert.runbook_url} needs the "
                f"explicit anchor '({anchor})=' above the title of docs/{served[alert.name]}.md "
                "(heading slugs change when a title is reworded)",
                type="handbook",
                subtype="alert",
            )
        if page != served[alert.name] + ".html":
            logger.warning(
                f"{alert.location}: {alert.name}'s runbook_url points at {page}, but its runbook "
                f"is docs/{served[alert.name]}.md: make them agree",
                type="handbook",
                subtype="alert",
            )


def check_built_anchors(app: Sphinx, exception: Exception | None) -> None:
    """Every runbook_url, mapped onto the built site, lands on an existing anchor."""
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    for alert in load(app.env).values():
        try:
            page, anchor = alert.runbook_target()
        except ValueError:
            continue  # reported by check_contract
        built = outdir / page
        html = built.read_text(encoding="utf-8") if built.exists() else ""
        if not re.search(rf'\bid="{re.escape(anchor)}"', html):
            missing = f"anchor #{anchor} in {page}" if html else f"page {page}"
            logger.warning(
                f"{alert.location}: {alert.name}'s runbook_url {alert.runbook_url} lands nowhere: "
                f"the built site has no {missing}; add '({anchor})=' above the runbook's title",
                type="handbook",
                subtype="alert",
            )


def setup(app: Sphinx) -> None:
    app.add_directive("alert", AlertDirective)
    app.add_directive("alert-table", AlertTableDirective)
    app.add_directive("metric-catalogue", MetricCatalogueDirective)
    app.connect("env-check-consistency", check_contract)
    app.connect("build-finished", check_built_anchors)
