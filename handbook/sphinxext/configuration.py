"""The configuration reference, rendered from ``conf/erpgo/options.yml`` and the
environment files ``conf/erpgo/<env>.env``, never retyped.

- ``{configuration-reference}``: one table per category: option, type and accepted
  values, default, the value of each environment, description.
- ``{required-secrets}``: the options marked ``secret``, when each is required and the
  reference each environment resolves it from.

A catalogue or environment file that breaks the rules (see ``handbook.confcheck.config_catalogue``)
is a build warning naming the file and line; with ``-W`` the build fails.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from handbook import yamlfile
from handbook.confcheck import config_catalogue as cc
from handbook.paths import ROOT, rel

logger = logging.getLogger(__name__)


Cell = nodes.Node | list[nodes.Node]  # one paragraph, or several (one a line)


def _table(widths: list[int], header: list[str], rows: list[list[Cell]]) -> nodes.table:
    group = nodes.tgroup(cols=len(widths))
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head, row = nodes.thead(), nodes.row()
    for title in header:
        row += nodes.entry("", nodes.paragraph(text=title))
    head += row
    group += head
    body = nodes.tbody()
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            lines = cell if isinstance(cell, list) else [cell]
            row += nodes.entry("", *(nodes.paragraph("", "", line) for line in lines))
        body += row
    group += body
    return nodes.table("", group, classes=["handbook-configuration"])


def _labelled(label: str, value: nodes.Node) -> nodes.Node:
    line = nodes.inline()
    line += nodes.emphasis(text=f"{label}: ")
    line += value
    return line


def _code(text: str) -> nodes.Node:
    return nodes.literal(text=text) if text else nodes.Text("empty")


class _CatalogueDirective(SphinxDirective):
    def load(self) -> tuple[cc.Catalogue, dict[str, cc.Environment], list[str]] | None:
        """The catalogue, its environments and their names in the reference's order;
        None (after a warning at the directive's line) when conf/ cannot be read."""
        root = Path(self.env.app.confdir).resolve().parent
        catalogue = root / cc.CATALOGUE.relative_to(ROOT)
        for path in [catalogue, *cc.environment_files(catalogue.parent)]:
            self.env.note_dependency(str(path))
        try:
            loaded, environments = cc.load_all(catalogue)
        except (cc.ConfigError, yamlfile.ConfigError) as exc:
            location = f"{rel(self.env.doc2path(self.env.docname), root)}:{self.lineno}"
            for problem in str(exc).splitlines():
                logger.warning(problem, location=location, type="handbook", subtype="config")
            return None
        return loaded, environments, [n for n in cc.ENVIRONMENTS if n in environments]


class ConfigurationReference(_CatalogueDirective):
    """Every option, per category: type, default, what each environment sets, description."""

    def run(self) -> list[nodes.Node]:
        loaded = self.load()
        if loaded is None:
            return []
        catalogue, environments, names = loaded
        intro = nodes.paragraph(
            text=f"{len(catalogue.options)} options in {len(catalogue.categories)} categories, "
            f"from {rel(catalogue.path)}. The values column gives the default, then the value "
            "of each environment that sets one ("
            + ", ".join(rel(environments[n].path) for n in names)
            + "); an environment not listed keeps the default."
        )
        result: list[nodes.Node] = [intro]
        header = ["Option and type", "Default and environments", "Description"]
        for key, title in catalogue.categories.items():
            options = catalogue.in_category(key)
            if not options:
                continue
            rows: list[list[Cell]] = []
            for option in options:
                name: list[nodes.Node] = [nodes.literal(text=option.name)]
                flags = [
                    f for f, on in (("secret", option.secret), ("required", option.required)) if on
                ]
                if option.required_if:
                    flags.append(f"required if {option.required_if}=true")
                if flags:
                    name.append(nodes.emphasis(text=", ".join(flags)))
                # The type under the name: three columns leave the description its room.
                kind = nodes.inline(classes=["handbook-option-type"])
                kind += nodes.Text(option.type)
                if option.accepts():
                    kind += nodes.Text(" ")
                    kind += nodes.literal(text=option.accepts())
                if option.unit:
                    kind += nodes.Text(f", {option.unit}")
                name.append(kind)
                if option.has_default:
                    default = _code(option.default_text())
                else:
                    default = nodes.Text("none (secret)" if option.secret else "none")
                values = [_labelled("default", default)]
                for env_name in names:
                    text = environments[env_name].value_text(option)
                    if text is not None:
                        values.append(_labelled(env_name, _code(text)))
                rows.append([name, values, nodes.Text(option.description)])
            # A heading per category, with a stable anchor: config-<category key>
            node_id = f"config-{key}"
            section = nodes.section(ids=[node_id], names=[node_id])
            section += nodes.title(text=f"{title} ({len(options)})")
            options_table = _table([37, 30, 33], header, rows)
            options_table["classes"].append("handbook-options")
            section += options_table
            self.set_source_info(section)
            self.env.get_domain("std").note_hyperlink_target(
                node_id, self.env.docname, node_id, title
            )
            result.append(section)
        return result


class RequiredSecrets(_CatalogueDirective):
    """The secrets ERPGo needs and the reference each environment resolves them from."""

    def run(self) -> list[nodes.Node]:
        loaded = self.load()
        if loaded is None:
            return []
        catalogue, environments, names = loaded
        rows: list[list[Cell]] = []
        for option in catalogue.secrets():
            if option.required:
                needed: nodes.Node = nodes.Text("always")
            elif option.required_if:
                needed = nodes.inline()
                needed += nodes.Text("when ")
                needed += nodes.literal(text=f"{option.required_if}=true")
            else:
                needed = nodes.Text("optional")
            refs: list[nodes.Node] = []
            for env_name in names:
                text = environments[env_name].value_text(option)
                if text is not None:
                    refs.append(_labelled(env_name, nodes.literal(text=text)))
            rows.append(
                [
                    nodes.literal(text=option.name),
                    needed,
                    refs or nodes.Text("not set anywhere"),
                    nodes.Text(option.description),
                ]
            )
        header = ["Secret", "Required", "Reference per environment", "What it is"]
        return [_table([26, 14, 36, 24], header, rows)]


def setup(app: Sphinx) -> None:
    app.add_directive("configuration-reference", ConfigurationReference)
    app.add_directive("required-secrets", RequiredSecrets)
