"""What a runbook tells the on-call engineer in its first minute, rendered from ``conf/``.

- ``{alert-context} Name``, right below ``{alert} Name``: the severity and where
  Alertmanager sends the alert, the owning team (the rule's ``team`` label), the
  Grafana panel that shows it (a link into ``$HANDBOOK_GRAFANA_URL``), then the
  page's own words in a bullet list: **Users:** what it means for them,
  **Noise:** how often it fires and its known false positives, **Check first:**
  an ongoing deployment, a recent change.
- ``{access}``, once per page: which credentials the page's commands need, for
  which user, and from where, each checked against ``conf/`` (``roles.sql``,
  ``pg_hba.conf``, ``users.acl``, the Grafana data sources, the Kubernetes manifests).

Every name either directive renders comes from a file under ``conf/``; a name that
is not there is a build warning (an error under ``-W``) at the page's line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from handbook.confcheck.names import Registry
from handbook.paths import rel
from handbook.sphinxext import links
from handbook.sphinxext.alerts import field_row, load, project_root, table

logger = logging.getLogger(__name__)

CONTEXT_ITEMS = ("Users", "Noise", "Check first")
SEVERITY_WORDS = {
    "critical": "critical: someone is paged, at any hour",
    "warning": "warning: a message in the on-call channel, for working hours unless it gets worse",
    "none": "none: no person is notified",
}


def registry(env: BuildEnvironment) -> Registry:
    root = project_root(env.app)
    return Registry(conf=root / "conf", snippets=root / "snippets")


def _warn(message: str, location: str) -> None:
    logger.warning(message, location=location, type="handbook", subtype="oncall")


def _text(*parts: nodes.Node | str) -> nodes.paragraph:
    para = nodes.paragraph()
    for part in parts:
        para += nodes.Text(part) if isinstance(part, str) else part
    return para


def _comma(items: list[nodes.Node | str]) -> list[nodes.Node | str]:
    out: list[nodes.Node | str] = []
    for index, item in enumerate(items):
        if index:
            out.append(", ")
        out.append(item)
    return out


class AlertContextDirective(SphinxDirective):
    required_arguments = 1
    has_content = True

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        where = self.get_location()
        alerts = load(self.env)
        if name not in alerts:
            _warn(f"{{alert-context}} names {name!r}, which the rules file does not define", where)
            return []
        alert = alerts[name]
        names = registry(self.env)
        for path in (
            names.alertmanager_file,
            *sorted(names.conf.glob("grafana/dashboards/*.json")),
        ):
            self.env.note_dependency(str(path))
        self.env.handbook_alert_context.setdefault(self.env.docname, []).append(name)

        receivers = names.route(alert.notification_labels())
        reached = [
            nodes.literal(text=said) if said.startswith("#") else said
            for receiver in receivers
            for said in names.notifies(receiver)
        ]
        severity = SEVERITY_WORDS.get(alert.severity, alert.severity)
        rows = [
            field_row(
                "Who is told",
                nodes.Text(f"{severity}. Alertmanager sends it to "),
                *[n if isinstance(n, nodes.Node) else nodes.Text(n) for n in _comma(reached)],
                nodes.Text(f" (receiver {', '.join(receivers)})."),
            ),
        ]
        team = alert.labels.get("team", "")
        if not team:
            _warn(f"alert {name} ({alert.location}) has no team label: add labels.team", where)
        rows.append(field_row("Owning team", nodes.literal(text=f'team="{team}"')))
        panels = names.panels_for(name)
        if not panels:
            _warn(
                f"no Grafana panel shows {name}: add one to conf/grafana/dashboards/ whose title "
                f"names the alert, e.g. '... ({name} fires above ...)'",
                where,
            )
        shown: list[nodes.Node | str] = []
        for panel in panels:
            url = links.grafana_panel(panel.dashboard_uid, panel.id)
            shown.append(nodes.reference("", f"{panel.dashboard_title}: {panel.title}", refuri=url))
        rows.append(
            field_row(
                "Dashboard",
                *[n if isinstance(n, nodes.Node) else nodes.Text(n) for n in _comma(shown)],
            )
        )

        holder = nodes.container()
        self.state.nested_parse(self.content, self.content_offset, holder)
        items = self._items(holder, where)
        for label in CONTEXT_ITEMS:
            if label not in items:
                _warn(
                    f"{{alert-context}} {name} lacks the item '- **{label}:** ...' "
                    f"(every runbook says {', '.join(CONTEXT_ITEMS)})",
                    where,
                )
                continue
            rows.append(field_row("Noise and false positives" if label == "Noise" else label))
            rows[-1][1].clear()
            rows[-1][1].extend(items[label])
        result = table([20, 80], None, rows)
        result["classes"].append("handbook-alert-context")
        return [result]

    def _items(self, holder: nodes.container, where: str) -> dict[str, list[nodes.Node]]:
        lists = [n for n in holder.children if isinstance(n, nodes.bullet_list)]
        if len(lists) != 1 or len(lists) != len(holder.children):
            _warn("{alert-context} holds exactly one bullet list, one item per question", where)
            return {}
        found = {}
        for item in lists[0].children:
            first = item.children[0] if item.children else None
            strong = None
            if isinstance(first, nodes.paragraph):  # MyST may start it with an empty Text
                strong = next((c for c in first.children if c.astext().strip()), None)
            label = strong.astext().rstrip(":").strip() if isinstance(strong, nodes.strong) else ""
            if label not in CONTEXT_ITEMS:
                _warn(
                    f"{{alert-context}} item starts with {label or 'no bold label'!r}: start each "
                    f"with one of {', '.join(f'**{x}:**' for x in CONTEXT_ITEMS)}",
                    where,
                )
                continue
            rest = first.children[first.index(strong) + 1 :]
            first.clear()
            if rest and isinstance(rest[0], nodes.Text):
                text = rest[0].lstrip()
                rest[0] = nodes.Text(text[:1].upper() + text[1:])
            first.extend(rest)
            found[label] = list(item.children)
        return found


ENTRY = re.compile(r"\s*(?P<user>[^\s,()]+)\s*(?:\((?P<purpose>[^)]*)\))?\s*(?:,|$)")


def _entries(value: str) -> list[tuple[str, str]] | None:
    """``"erpgo_monitor (investigation), postgres (resolution)"`` -> [(user, purpose)];
    None when the value is not in that form."""
    found, position = [], 0
    while position < len(value):
        match = ENTRY.match(value, position)
        if not match or match.end() == position:
            return None
        found.append((match["user"], (match["purpose"] or "").strip()))
        position = match.end()
    return found


def _role_purpose(conf: Path, role: str) -> str:
    """The first sentence of the comment right above the ``ALTER ROLE`` block naming ``role``."""
    path = conf / "postgresql" / "roles.sql"
    if not path.exists():
        return ""
    comment: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-- [start:"):
            comment = []
        elif line.startswith("--") and not line.startswith("-- [end:"):
            comment.append(line[2:].strip())
        elif re.match(rf"ALTER ROLE {re.escape(role)}\b", line) and comment:
            text = " ".join(comment)
            return text.split(". ")[0].rstrip(".") + "."
        elif not line.startswith("ALTER ROLE "):
            comment = []  # anything but the described ALTER ROLE block ends the comment
    return ""


def _secret_of(conf: Path) -> str:
    """The Kubernetes secret redis.conf's placeholders are filled from (``redis-secrets``)."""
    text = (conf / "redis" / "redis.conf").read_text(encoding="utf-8")
    match = re.search(r"Kubernetes secret (\S+?)[,.\s]", text)
    return match[1] if match else ""


def _namespaces(conf: Path) -> set[str]:
    found = set()
    for path in sorted((conf / "kubernetes").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            namespace = ((doc or {}).get("metadata") or {}).get("namespace")
            if namespace:
                found.add(str(namespace))
    return found


def _datasources(conf: Path) -> dict[str, str]:
    found = {}
    for path in sorted((conf / "grafana" / "provisioning" / "datasources").glob("*.yml")):
        for source in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(
            "datasources"
        ) or []:
            found[str(source.get("uid"))] = str(source.get("url"))
    return found


class AccessDirective(SphinxDirective):
    """Once per page: the credentials its commands need, checked against conf/."""

    has_content = True
    option_spec: ClassVar[dict] = {
        "postgres": directives.unchanged_required,
        "redis": directives.unchanged_required,
        "monitoring": directives.unchanged_required,
        "kubernetes": directives.unchanged_required,
    }

    def run(self) -> list[nodes.Node]:
        where = self.get_location()
        env = self.env
        names = registry(env)
        conf = names.conf
        for path in ("postgresql/roles.sql", "postgresql/pg_hba.conf", "redis/users.acl"):
            env.note_dependency(str(conf / path))
        count = env.handbook_access.get(env.docname, 0) + 1
        env.handbook_access[env.docname] = count
        if count > 1:
            _warn("a second {access}: state the access a page needs once, at its top", where)
        items = nodes.bullet_list()

        entries = {}
        for option in ("postgres", "redis"):
            entries[option] = _entries(self.options.get(option, ""))
            if entries[option] is None:
                _warn(
                    f":{option}: {self.options[option]!r} is not a list of users: write "
                    "'user (what for), user (what for)'",
                    where,
                )
                entries[option] = []
        for user, purpose in entries["postgres"]:
            if user not in names.pg_roles:
                _warn(
                    f"PostgreSQL role {user!r} is not in conf/postgresql/roles.sql or "
                    "pg_hba.conf: name a role conf/ defines",
                    where,
                )
                continue
            rules = names.hba_rules_for(user)
            if not rules:
                _warn(f"conf/postgresql/pg_hba.conf admits {user!r} nowhere", where)
                continue
            whence = []
            for rule in rules:
                if rule.type == "local":
                    whence.append(
                        f"on the database host, as the system user {user} ({rule.method})"
                    )
                else:
                    whence.append(f"from {rule.address} ({rule.method} over TLS)")
            hba = rel(names.hba_file, conf.parent)
            role_says = _role_purpose(conf, user)
            para = _text(
                nodes.strong(text="PostgreSQL"),
                f" ({purpose}): " if purpose else ": ",
                nodes.literal(text=f"PGUSER={user}"),
                f", {'; or '.join(whence)} ({hba}, line {rules[0].line}). ",
                role_says + " " if role_says else "",
                "psql takes the password from ~/.pgpass (roles.sql sets none: each person's "
                "comes from the secret store)."
                if rules[0].type != "local"
                else "",
            )
            items += nodes.list_item("", para)

        for user, purpose in entries["redis"]:
            if user not in names.redis_users:
                _warn(f"Redis user {user!r} is not in conf/redis/users.acl", where)
                continue
            variable = names.redis_password_variable(user)
            secret = _secret_of(conf)
            para = _text(
                nodes.strong(text="Redis"),
                f" ({purpose}): " if purpose else ": ",
                "the ACL user ",
                nodes.literal(text=user),
                " (conf/redis/users.acl: ",
                nodes.literal(text=names.redis_user_rule(user)),
                "), password ",
                nodes.literal(text=variable),
                f" from the Kubernetes secret {secret}, in the URL: ",
                nodes.literal(text=f"REDIS_URL=redis://{user}:<password>@<master>:6379/0"),
                " (redis-cli reads a URL without the password as if the user name were "
                "the password).",
            )
            items += nodes.list_item("", para)

        if "monitoring" in self.options:
            sources = _datasources(conf)
            parts: list[nodes.Node | str] = []
            for uid in self.options["monitoring"].replace(",", " ").split():
                if uid not in sources:
                    _warn(
                        f"{uid!r} is not a Grafana data source of conf/grafana/provisioning "
                        f"({', '.join(sorted(sources))})",
                        where,
                    )
                    continue
                parts.append(nodes.literal(text=sources[uid]))
            para = _text(
                nodes.strong(text="Monitoring"),
                ": ",
                *_comma(parts),
                " (inside the cluster; from a laptop, through ",
                nodes.literal(text="kubectl -n monitoring port-forward"),
                "). Reading needs no credentials.",
            )
            items += nodes.list_item("", para)

        if "kubernetes" in self.options:
            known = _namespaces(conf)
            namespace = self.options["kubernetes"].strip()
            if namespace not in known:
                _warn(
                    f"namespace {namespace!r} is not used by conf/kubernetes "
                    f"({', '.join(sorted(known))})",
                    where,
                )
            para = _text(
                nodes.strong(text="Kubernetes"),
                ": read access to the namespace ",
                nodes.literal(text=namespace),
                " with your own SSO login (",
                nodes.literal(text="kubectl"),
                "); steps that change the cluster say so.",
            )
            items += nodes.list_item("", para)

        box = nodes.admonition(classes=["handbook-access"])
        box += nodes.title(text="Access you need")
        box += items
        if self.content:
            self.state.nested_parse(self.content, self.content_offset, box)
        if not items.children:
            _warn(
                "{access} names nothing: give :postgres:, :redis:, :monitoring: or :kubernetes:",
                where,
            )
        return [box]


def check_pages(app: Sphinx, env: BuildEnvironment) -> None:
    """Every runbook gives every alert it serves its context, and states its access once."""
    for docname, served in env.handbook_runbooks.items():
        page = f"docs/{docname}.md"
        contexts = env.handbook_alert_context.get(docname, [])
        for alert in served:
            if alert not in contexts:
                _warn(
                    f"runbook of {alert} without its context: add ```{{alert-context}} {alert}``` "
                    "below its ```{alert}```",
                    f"{page}:1",
                )
        if not env.handbook_access.get(docname):
            _warn(
                "runbook without ```{access}```: say once which credentials it needs", f"{page}:1"
            )


def setup(app: Sphinx) -> None:
    app.add_directive("alert-context", AlertContextDirective)
    app.add_directive("access", AccessDirective)
    app.connect("env-check-consistency", check_pages)
