"""Links out of the handbook: Prometheus, Grafana and the repository's source files.

Each base URL comes from an environment variable (tox passes every ``HANDBOOK_*``
through), with the default production's own address:

- ``HANDBOOK_PROMETHEUS_URL`` (default :data:`DEFAULT_PROMETHEUS_URL`): every PromQL
  block and every alert expression opens there, in Prometheus's graph page;
- ``HANDBOOK_GRAFANA_URL`` (default :data:`DEFAULT_GRAFANA_URL`): each alert's
  dashboard panel (:func:`grafana_panel`);
- ``HANDBOOK_SOURCE_URL`` (default :data:`DEFAULT_SOURCE_URL`): where the repository's
  files are browsed; an alert's rule links to its file and line there (``#L81``).

Only the HTML site links out: on paper (the PDF) a link to a live Prometheus is no use
and its URL, printed as a footnote, a line of percent signs. There an :func:`online`
group (the link and the separator before it) is left out, and any other link out shows
as its text.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlencode

from docutils import nodes
from sphinx.application import Sphinx

DEFAULT_PROMETHEUS_URL = "https://prometheus.erpgo.com/"
DEFAULT_SOURCE_URL = "https://git.erpgo.com/erpgo/handbook/-/blob/main/"
DEFAULT_GRAFANA_URL = "https://grafana.erpgo.com/"


def _base(variable: str, default: str) -> str:
    url = os.environ.get(variable) or default
    return url if url.endswith("/") else url + "/"


def prometheus_url() -> str:
    """``$HANDBOOK_PROMETHEUS_URL`` or :data:`DEFAULT_PROMETHEUS_URL`, ending in ``/``."""
    return _base("HANDBOOK_PROMETHEUS_URL", DEFAULT_PROMETHEUS_URL)


def grafana_url() -> str:
    """Where Grafana is published: ``$HANDBOOK_GRAFANA_URL`` or :data:`DEFAULT_GRAFANA_URL`."""
    return _base("HANDBOOK_GRAFANA_URL", DEFAULT_GRAFANA_URL)


def grafana_panel(dashboard_uid: str, panel_id: object) -> str:
    """One panel of a dashboard of ``conf/grafana/dashboards/``, alone on the screen."""
    return f"{grafana_url()}d/{dashboard_uid}?viewPanel={panel_id}"


def source_url() -> str:
    """``$HANDBOOK_SOURCE_URL`` or :data:`DEFAULT_SOURCE_URL`, ending in ``/``."""
    return _base("HANDBOOK_SOURCE_URL", DEFAULT_SOURCE_URL)


def prometheus_graph(expr: str) -> str:
    """The Prometheus graph page evaluating ``expr`` (table view, now)."""
    query = urlencode({"g0.expr": expr.strip(), "g0.tab": "1"}, quote_via=quote)
    return f"{prometheus_url()}graph?{query}"


def source_line(path: str, line: int) -> str:
    """A repository file at a line: ``conf/prometheus/alert_rules.yml``, 81."""
    return f"{source_url()}{path}#L{line}"


def external(text: str, url: str, *classes: str) -> nodes.reference:
    return nodes.reference("", text, refuri=url, classes=["handbook-link-out", *classes])


def online(*parts: nodes.Node, separator: str = " \u00b7 ") -> nodes.inline:
    """A link out with the separator before it: the whole group is left out of the PDF."""
    group = nodes.inline(classes=["handbook-online"])
    if separator:
        group += nodes.Text(separator)
    group.extend(parts)
    return group


def offline(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Outside HTML: drop the :func:`online` groups, show other links out as their text."""
    if app.builder.format == "html":
        return
    for group in list(doctree.findall(nodes.inline)):
        if "handbook-online" in group["classes"]:
            group.parent.remove(group)
    for link in list(doctree.findall(nodes.reference)):
        if "handbook-link-out" in link["classes"]:
            link.replace_self(nodes.inline("", "", *link.children))


def setup(app: Sphinx) -> None:
    app.connect("doctree-resolved", offline)
