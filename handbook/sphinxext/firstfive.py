"""``{first-five-minutes}``: what a paged engineer does first, at the top of a runbook.

    ```{first-five-minutes}
    :fix: pool-leak-resolution

    A leaked transaction: code that opened one and never closed it.
    ```

renders a box, right under the runbook's title, with

1. the **first diagnostic**: the first snippet of the page's *Investigation*
   section, the very block the page shows there (same file, same marks and badge),
   copied in once the page has been read, so it can never differ from the step;
2. the **most likely cause**, in the page's own words (the directive's content), and
   its **fix**: a link to the section the ``:fix:`` anchor names on the same page;
3. **links into the page** (Investigation, Resolution, Escalation) and **out of it**:
   the alert's Grafana panel and its expression in Prometheus (``links.py``).

Every incident runbook has exactly one; one that lacks it, has no Investigation
section with a snippet, or names a ``:fix:`` anchor that is not on the page, is a
build warning (an error under ``-W``) naming the page and line.
"""

from __future__ import annotations

import copy
from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from handbook.sphinxext import links
from handbook.sphinxext.alerts import load
from handbook.sphinxext.oncall import registry

logger = logging.getLogger(__name__)

TITLE = "First five minutes"
SECTIONS = ("Investigation", "Resolution", "Escalation")  # linked from the box, in order


class first_five(nodes.General, nodes.Element):
    """The box, until the page is read and its first diagnostic can be copied in."""


def _warn(message: str, location) -> None:
    logger.warning(message, location=location, type="handbook", subtype="firstfive")


class FirstFiveMinutesDirective(SphinxDirective):
    has_content = True
    option_spec: ClassVar[dict] = {"fix": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        where = self.get_location()
        seen = self.env.handbook_first_five
        if self.env.docname in seen:
            _warn("a second {first-five-minutes}: a runbook has one, at its top", where)
        seen[self.env.docname] = (self.options.get("fix", ""), self.lineno)
        if "fix" not in self.options or not self.content:
            _warn(
                "{first-five-minutes} needs ':fix: <anchor of the section that fixes the most "
                "likely cause>' and one sentence naming that cause as its content",
                where,
            )
            return []
        node = first_five(fix=self.options["fix"])
        self.set_source_info(node)
        cause = nodes.container()
        self.state.nested_parse(self.content, self.content_offset, cause)
        node += cause.children
        return [node]


def _section(doctree: nodes.document, title: str) -> nodes.section | None:
    for section in doctree.findall(nodes.section):
        if section.next_node(nodes.title).astext().strip() == title:
            return section
    return None


def _local(text: str, section_id: str) -> nodes.reference:
    return nodes.reference("", text, refid=section_id, internal=True)


def fill(app: Sphinx, doctree: nodes.document) -> None:
    """Build each box from the page it is on: its first diagnostic, sections and alert."""
    env = app.env
    for node in list(doctree.findall(first_five)):
        docname = env.docname
        investigation = _section(doctree, "Investigation")
        first = None
        if investigation is not None:
            first = next(
                (n for n in investigation.findall(nodes.container) if n.get("handbook_snippet")),
                None,
            )
        if first is None:
            _warn(
                "{first-five-minutes}: the page has no '## Investigation' section showing a "
                "{snippet}: its first snippet is the box's first diagnostic",
                node,
            )
            node.replace_self([])
            continue
        diagnostic = copy.deepcopy(first)
        numbered = [inner for inner in diagnostic.findall(nodes.Element) if inner["ids"]]
        for number, inner in enumerate(numbered):  # the copy's own ids: the step keeps its
            inner["ids"] = ["first-check" + (f"-{number}" if number else "")]
        diagnostic["classes"].append("handbook-first-diagnostic")

        box = nodes.container(classes=["handbook-first-five"])
        box += nodes.rubric(text=TITLE)
        step = nodes.paragraph()
        step += nodes.strong(text="1. Run the first check")
        step += nodes.Text(" (step 1 of ")
        step += _local("Investigation", investigation["ids"][0])
        step += nodes.Text("; the steps after it narrow the cause down):")
        box += step
        box += diagnostic

        cause = nodes.paragraph()
        cause += nodes.strong(text="2. Most likely: ")
        paragraphs = [c for c in node.children if isinstance(c, nodes.paragraph)]
        for para in paragraphs:
            cause.extend(c.deepcopy() for c in para.children)
        cause += nodes.Text(" Fix: ")
        ref = addnodes.pending_xref(
            "", refdomain="std", reftype="ref", reftarget=node["fix"], refexplicit=False
        )
        ref += nodes.inline(text=node["fix"])
        ref.source, ref.line = node.source, node.line
        cause += ref
        cause += nodes.Text(".")
        box += cause

        more = nodes.paragraph(classes=["handbook-first-five-links"])
        more += nodes.strong(text="3. On this page: ")
        for title in SECTIONS:
            section = _section(doctree, title)
            if section is None:
                _warn(f"{{first-five-minutes}}: the runbook has no '## {title}' section", node)
                continue
            if title != SECTIONS[0]:
                more += nodes.Text(" \u00b7 ")
            more += _local(title, section["ids"][0])
        alerts = load(env)
        names = registry(env)
        for name in env.handbook_runbooks.get(docname, []):
            alert = alerts.get(name)
            if alert is None:
                continue  # reported by the {alert} directive
            for panel in names.panels_for(name):
                url = links.grafana_panel(panel.dashboard_uid, panel.id)
                more += links.online(links.external("Grafana panel", url, "handbook-grafana"))
            more += links.online(
                links.external(
                    "the alert in Prometheus",
                    links.prometheus_graph(alert.expr),
                    "handbook-prometheus",
                )
            )
        box += more
        box.source, box.line = node.source, node.line
        node.replace_self(box)


def check_fix_anchors(app: Sphinx, env: BuildEnvironment) -> None:
    """Every runbook has its box, and the box's fix is a section of the same page."""
    labels = env.domaindata["std"]["labels"]
    for docname in env.handbook_runbooks:
        if docname not in env.handbook_first_five:
            _warn(
                "incident runbook without ```{first-five-minutes}``` right under its title: "
                "give it ':fix: <anchor>' and the most likely cause",
                f"docs/{docname}.md:1",
            )
    for docname, (fix, line) in env.handbook_first_five.items():
        if fix and labels.get(fix, ("",))[0] != docname:
            _warn(
                f"{{first-five-minutes}} :fix: {fix} is not an anchor on this page: put "
                f"'({fix})=' above the section that fixes the most likely cause",
                f"docs/{docname}.md:{line}",
            )


def init(app: Sphinx) -> None:
    if not hasattr(app.env, "handbook_first_five"):
        app.env.handbook_first_five = {}  # docname -> (fix anchor, line of the directive)


def purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    env.handbook_first_five.pop(docname, None)


def merge(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
    for docname in docnames & set(other.handbook_first_five):
        env.handbook_first_five[docname] = other.handbook_first_five[docname]


def setup(app: Sphinx) -> None:
    app.add_node(first_five)
    app.add_directive("first-five-minutes", FirstFiveMinutesDirective)
    app.connect("builder-inited", init, priority=100)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    app.connect("doctree-read", fill, priority=600)
    app.connect("env-check-consistency", check_fix_anchors)
