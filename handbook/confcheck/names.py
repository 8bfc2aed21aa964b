"""The names ``conf/`` defines, and the names a page cites: they must agree.

A page cites a name in an inline code span of a known shape; this module knows,
for each shape, which files under ``conf/`` define such names:

- a chat channel, ```#erpgo-oncall```: Alertmanager's Slack receivers;
- a label pair, ```team="platform"```: the alert rules, the scrape config and
  Alertmanager's receivers (``integration``);
- a role or user, ```erpgo_monitor```: ``roles.sql``, ``pg_hba.conf``, ``users.acl``
  (an ``erpgo_*`` name may also be an ERPGo metric);
- an ERPGo option, ```ERPGO_DB_MAX_OPEN_CONNS```: ``conf/erpgo/options.yml``;
- a PostgreSQL setting, ```idle_in_transaction_session_timeout``` (or ``name = value``):
  ``postgresql.conf``, or a snippet that sets it (``SET lock_timeout``);
- a Redis setting, ```maxmemory-policy``` (or ``name value``): ``redis.conf``,
  ``sentinel.conf``.

Which spans are PostgreSQL and Redis settings is decided by the real servers' own
lists (``postgres --describe-config``, ``CONFIG GET *``), passed in by the caller,
so the check needs no list of its own. Names that no program reads (a channel
for people only) are allowed by ``docs/names-allowlist.toml``, each with its reason.

The same registry answers what the runbook pages render from ``conf/``: where
Alertmanager routes an alert (:func:`route`), what each receiver notifies, which
Grafana panel shows an alert, and where a role may log in from.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from handbook.markdown import lines_outside_fences
from handbook.paths import CONF, DOCS, SNIPPETS, rel
from handbook.yamlfile import Finding
from handbook.yamlfile import line as line_of
from handbook.yamlfile import load as load_yaml

ALLOWLIST = DOCS / "names-allowlist.toml"

CHANNEL = re.compile(r"#[a-z0-9][a-z0-9_-]*")
LABEL = re.compile(r'(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>[^"]*)"')
OPTION = re.compile(r"ERPGO_[A-Z0-9_]+")
USER = re.compile(r"erpgo_[a-z0-9_]+|postgres_exporter|replicator")
IDENTIFIER = re.compile(r"[a-z][a-z0-9_.-]*")
# "name = value" or "name value": a setting cited with the value a page talks about
SETTING_WITH_VALUE = re.compile(r"(?P<name>[a-z][a-z0-9_.-]*)\s*(=\s*|\s+)\S.*")
# Labels every series has, or that PromQL creates, whose values no file lists.
OPEN_LABELS = {"instance", "route", "code", "method", "le", "quantile", "reason", "pool"}
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(?P<code>.+?)(?<!`)\1(?!`)")


@dataclass(frozen=True)
class Defined:
    """Where ``conf/`` defines a name: ``conf/x:12``."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Citation:
    page: str  # "docs/runbooks/x.md"
    line: int
    text: str  # the code span's content
    kind: str  # "channel", "label", "user", "option", "pg-setting", "redis-setting"
    name: str  # what is looked up: "#erpgo-oncall", "team=platform", "erpgo_monitor"


@dataclass(frozen=True)
class HbaRule:
    line: int
    type: str
    database: str
    user: str
    address: str
    method: str


@dataclass(frozen=True)
class Panel:
    dashboard_uid: str
    dashboard_title: str
    id: int
    title: str
    file: str


def _lines(path: Path) -> list[tuple[int, str]]:
    return list(enumerate(path.read_text(encoding="utf-8").splitlines(), start=1))


@dataclass
class Registry:
    """Every name ``conf/`` defines, read from the files under ``conf`` (a directory)."""

    conf: Path = CONF
    snippets: Path = SNIPPETS
    _cache: dict = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------------- PostgreSQL

    @cached_property
    def pg_roles(self) -> dict[str, Defined]:
        """Roles ``roles.sql`` creates or alters, and users ``pg_hba.conf`` names."""
        found: dict[str, Defined] = {}
        roles = self.conf / "postgresql" / "roles.sql"
        if roles.exists():
            where = rel(roles)
            in_array = False
            for number, text in _lines(roles):
                code = text.split("--", 1)[0]
                if "ARRAY[" in code:
                    in_array = True
                if in_array:
                    for name in re.findall(r"'([a-z_][a-z0-9_]*)'", code):
                        found.setdefault(name, Defined(where, number))
                    if "]" in code:
                        in_array = False
                for name in re.findall(r"\b(?:CREATE|ALTER)\s+ROLE\s+([a-z_][a-z0-9_]*)", code):
                    found.setdefault(name, Defined(where, number))
        for rule in self.hba_rules:
            for user in rule.user.split(","):
                user = user.lstrip("+")
                if user not in ("all", "") and not user.startswith("@"):
                    found.setdefault(user, Defined(rel(self.hba_file), rule.line))
        return found

    @property
    def hba_file(self) -> Path:
        return self.conf / "postgresql" / "pg_hba.conf"

    @cached_property
    def hba_rules(self) -> list[HbaRule]:
        rules = []
        if not self.hba_file.exists():
            return rules
        for number, text in _lines(self.hba_file):
            fields = text.split("#", 1)[0].split()
            if not fields:
                continue
            if fields[0] == "local":
                fields = [fields[0], fields[1], fields[2], "", *fields[3:]]
            if len(fields) >= 5:
                rules.append(HbaRule(number, *fields[:5]))
        return rules

    def hba_rules_for(self, user: str) -> list[HbaRule]:
        """The rules that admit ``user`` by name or by group (``+group``), not ``all``."""
        groups = {user}
        if user.startswith("erpgo_app_"):
            groups.add("+erpgo_app")
        return [
            rule
            for rule in self.hba_rules
            if rule.method != "reject" and (set(rule.user.split(",")) & groups)
        ]

    @cached_property
    def pg_settings(self) -> dict[str, Defined]:
        """Settings ``postgresql.conf`` sets."""
        path = self.conf / "postgresql" / "postgresql.conf"
        found = {}
        if path.exists():
            for number, text in _lines(path):
                match = re.match(r"\s*([a-z_][a-z0-9_.]*)\s*=", text)
                if match:
                    found.setdefault(match[1], Defined(rel(path), number))
        return found

    @cached_property
    def pg_settings_in_snippets(self) -> dict[str, Defined]:
        """Settings a snippet or migration sets (``SET x``, ``ALTER ... SET x``)."""
        found: dict[str, Defined] = {}
        for path in sorted(self.snippets.rglob("*.sql")):
            for number, text in _lines(path):
                for name in re.findall(r"\bSET\s+(?:LOCAL\s+)?([a-z_][a-z0-9_.]*)", text):
                    found.setdefault(name, Defined(rel(path), number))
        return found

    # ---------------------------------------------------------------------- Redis

    @cached_property
    def redis_users(self) -> dict[str, Defined]:
        path = self.conf / "redis" / "users.acl"
        found = {}
        if path.exists():
            for number, text in _lines(path):
                match = re.match(r"\s*user\s+(\S+)", text)
                if match:
                    found[match[1]] = Defined(rel(path), number)
        return found

    def redis_user_rule(self, user: str) -> str:
        """The ACL rule of ``user`` without its password placeholder."""
        path = self.conf / "redis" / "users.acl"
        for _, text in _lines(path):
            fields = text.split()
            if len(fields) > 1 and fields[0] == "user" and fields[1] == user:
                return " ".join(f for f in fields[2:] if not f.startswith(">"))
        return ""

    def redis_password_variable(self, user: str) -> str:
        """``REDIS_MONITOR_PASSWORD``: the placeholder users.acl takes ``user``'s password from."""
        path = self.conf / "redis" / "users.acl"
        for _, text in _lines(path):
            fields = text.split()
            if len(fields) > 1 and fields[0] == "user" and fields[1] == user:
                for item in fields[2:]:
                    match = re.fullmatch(r">\$\{([A-Z0-9_]+)\}", item)
                    if match:
                        return match[1]
        return ""

    @cached_property
    def redis_settings(self) -> dict[str, Defined]:
        """Directives ``redis.conf`` and ``sentinel.conf`` set (``sentinel x`` as ``x``)."""
        found: dict[str, Defined] = {}
        for name in ("redis.conf", "sentinel.conf"):
            path = self.conf / "redis" / name
            if not path.exists():
                continue
            for number, text in _lines(path):
                fields = text.split("#", 1)[0].split()
                if not fields:
                    continue
                key = fields[1] if fields[0] == "sentinel" and len(fields) > 1 else fields[0]
                found.setdefault(key.lower(), Defined(rel(path), number))
        return found

    # ------------------------------------------------------------------ ERPGo

    @cached_property
    def options(self) -> dict[str, Defined]:
        path = self.conf / "erpgo" / "options.yml"
        found = {}
        if path.exists():
            data = load_yaml(path)
            for option in (data or {}).get("options") or []:
                if isinstance(option, dict) and option.get("name"):
                    found[str(option["name"])] = Defined(rel(path), line_of(option, "name"))
        return found

    # ------------------------------------------------------------- Prometheus

    @cached_property
    def rules(self) -> list[dict]:
        """Every alerting rule of ``alert_rules.yml`` (with line numbers)."""
        path = self.conf / "prometheus" / "alert_rules.yml"
        if not path.exists():
            return []
        data = load_yaml(path) or {}
        return [r for g in data.get("groups") or [] for r in g.get("rules") or [] if "alert" in r]

    @cached_property
    def labels(self) -> dict[tuple[str, str], Defined]:
        """Label pairs conf/ gives series and alerts: ``("team", "platform")`` -> where."""
        found: dict[tuple[str, str], Defined] = {}
        rules = rel(self.conf / "prometheus" / "alert_rules.yml")
        for rule in self.rules:
            found.setdefault(("alertname", str(rule["alert"])), Defined(rules, line_of(rule)))
            for key, value in (rule.get("labels") or {}).items():
                where = Defined(rules, line_of(rule.get("labels"), key))
                found.setdefault((str(key), str(value)), where)
            # absent() gives its series the selector's equality matchers as labels
            for key, value in re.findall(r'([a-z_]+)="([^"]*)"', str(rule.get("expr", ""))):
                found.setdefault((key, value), Defined(rules, line_of(rule, "expr")))
        prometheus = self.conf / "prometheus" / "prometheus.yml"
        if prometheus.exists():
            data = load_yaml(prometheus) or {}
            where = rel(prometheus)
            external = (data.get("global") or {}).get("external_labels") or {}
            for key, value in external.items():
                found.setdefault((str(key), str(value)), Defined(where, line_of(external, key)))
            for job in data.get("scrape_configs") or []:
                found.setdefault(("job", str(job["job_name"])), Defined(where, line_of(job)))
                for static in job.get("static_configs") or []:
                    for key, value in (static.get("labels") or {}).items():
                        at = Defined(where, line_of(static.get("labels"), key))
                        found.setdefault((str(key), str(value)), at)
        for receiver in self.receivers.values():
            for kind in receiver:
                if kind.endswith("_configs"):
                    integration = kind.removesuffix("_configs")
                    found.setdefault(("integration", integration), self.receiver_lines[kind])
        return found

    # ----------------------------------------------------------- Alertmanager

    @property
    def alertmanager_file(self) -> Path:
        return self.conf / "alertmanager" / "alertmanager.yml"

    @cached_property
    def alertmanager(self) -> dict:
        if not self.alertmanager_file.exists():
            return {}
        return load_yaml(self.alertmanager_file) or {}

    @cached_property
    def receivers(self) -> dict[str, dict]:
        return {str(r["name"]): r for r in self.alertmanager.get("receivers") or []}

    @cached_property
    def receiver_lines(self) -> dict[str, Defined]:
        """The first line of each kind of integration (``slack_configs`` -> where)."""
        found: dict[str, Defined] = {}
        where = rel(self.alertmanager_file)
        for receiver in self.receivers.values():
            for kind in receiver:
                if kind.endswith("_configs"):
                    found.setdefault(kind, Defined(where, line_of(receiver, kind)))
        return found

    @cached_property
    def channels(self) -> dict[str, Defined]:
        """Chat channels Alertmanager posts to."""
        found: dict[str, Defined] = {}
        where = rel(self.alertmanager_file)
        for receiver in self.receivers.values():
            for config in receiver.get("slack_configs") or []:
                if config.get("channel"):
                    at = Defined(where, line_of(config, "channel"))
                    found.setdefault(str(config["channel"]), at)
        return found

    def route(self, labels: dict[str, str]) -> list[str]:
        """The receivers Alertmanager notifies for an alert with ``labels`` (as
        ``amtool config routes test`` answers; tests/test_meta_monitoring.py compares)."""
        root = self.alertmanager.get("route") or {}
        found = _walk(root, labels)
        return found or [str(root.get("receiver", ""))]

    def notifies(self, receiver: str) -> list[str]:
        """What a receiver reaches, in words: ``["a PagerDuty page", "#erpgo-oncall"]``."""
        config = self.receivers.get(receiver) or {}
        said = []
        for _ in config.get("pagerduty_configs") or []:
            said.append("a PagerDuty page")
        for slack in config.get("slack_configs") or []:
            said.append(str(slack.get("channel", "Slack")))
        for _ in config.get("webhook_configs") or []:
            said.append("the dead man's switch" if "deadman" in receiver else "a webhook")
        return said

    # ---------------------------------------------------------------- Grafana

    @cached_property
    def panels(self) -> list[Panel]:
        found = []
        for path in sorted((self.conf / "grafana" / "dashboards").glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            for panel in data.get("panels") or []:
                found.append(
                    Panel(
                        str(data.get("uid")),
                        str(data.get("title")),
                        int(panel.get("id", 0)),
                        str(panel.get("title", "")),
                        rel(path),
                    )
                )
        return found

    def panels_for(self, alert: str) -> list[Panel]:
        """The panels whose title names the alert (the title says where it fires)."""
        word = re.compile(rf"(?<![A-Za-z]){re.escape(alert)}(?![A-Za-z])")
        return [p for p in self.panels if word.search(p.title)]

    # --------------------------------------------------------------- teams

    @cached_property
    def teams(self) -> dict[str, Defined]:
        return {value: where for (key, value), where in self.labels.items() if key == "team"}


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    match = re.fullmatch(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*', matcher)
    if not match:
        return False
    name, op, value = match.groups()
    have = labels.get(name, "")
    if op == "=":
        return have == value
    if op == "!=":
        return have != value
    found = re.fullmatch(value, have) is not None
    return found if op == "=~" else not found


def _walk(node: dict, labels: dict[str, str]) -> list[str]:
    """Alertmanager's routing: the first matching child (more with ``continue``), recursively."""
    found: list[str] = []
    for child in node.get("routes") or []:
        if all(_matches(str(m), labels) for m in child.get("matchers") or []):
            below = _walk(child, labels)
            found.extend(below or [str(child.get("receiver") or node.get("receiver"))])
            if not child.get("continue"):
                break
    return found


# --------------------------------------------------------------------------- citations


def code_spans(text: str) -> list[tuple[int, str]]:
    """(line, content) of every inline code span outside fenced blocks and directives."""
    return [
        (number, match["code"].strip())
        for number, line in lines_outside_fences(text)
        for match in CODE_SPAN.finditer(line)
    ]


def citations(
    path: Path, pg_parameters: set[str], redis_parameters: set[str], root: Path = DOCS.parent
) -> list[Citation]:
    """The names a page cites, by shape; settings recognised by the servers' own lists."""
    page = rel(path, root)
    found = []
    for number, code in code_spans(path.read_text(encoding="utf-8")):

        def add(kind: str, name: str, number: int = number, code: str = code) -> None:
            found.append(Citation(page, number, code, kind, name))

        if CHANNEL.fullmatch(code):
            add("channel", code)
            continue
        pairs = LABEL.findall(code)
        parts = [p.strip() for p in code.strip("{}").split(",")]
        if pairs and all(LABEL.fullmatch(p) for p in parts):
            for name, value in pairs:
                add("label", f"{name}={value}")
            continue
        if OPTION.fullmatch(code):
            add("option", code)
            continue
        if USER.fullmatch(code):
            add("user", code)
            continue
        match = SETTING_WITH_VALUE.fullmatch(code)
        name = code if IDENTIFIER.fullmatch(code) else (match["name"] if match else "")
        if name in pg_parameters:
            add("pg-setting", name)
        elif name.lower() in redis_parameters:
            add("redis-setting", name.lower())
    return found


@dataclass(frozen=True)
class Allowed:
    name: str
    reason: str
    line: int


def load_allowlist(path: Path = ALLOWLIST) -> tuple[dict[str, Allowed], list[str]]:
    """Names no file in conf/ defines, each with the reason it may be cited anyway."""
    if not path.exists():
        return {}, []
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return {}, [f"{rel(path)}: not valid TOML: {exc}"]
    starts = [i for i, line in enumerate(text.splitlines(), 1) if line.strip() == "[[name]]"]
    allowed, problems = {}, []
    for index, entry in enumerate(data.get("name", [])):
        line = starts[index] if index < len(starts) else 1
        if not str(entry.get("name", "")).strip() or not str(entry.get("reason", "")).strip():
            problems.append(f"{rel(path)}:{line}: an entry needs 'name' and 'reason'")
            continue
        allowed[entry["name"]] = Allowed(entry["name"], entry["reason"], line)
    return allowed, problems


def check_citation(
    citation: Citation, registry: Registry, metrics: set[str], allowed: dict[str, Allowed]
) -> Finding | None:
    """None when conf/ defines the cited name; else what is wrong and what to do."""
    if citation.text in allowed or citation.name in allowed:
        return None
    kind, name = citation.kind, citation.name

    def wrong(message: str) -> Finding:
        return Finding(citation.page, citation.line, message)

    if kind == "channel":
        if name in registry.channels:
            return None
        known = ", ".join(sorted(registry.channels)) or "none"
        return wrong(
            f"channel {name} is not one Alertmanager posts to (conf/alertmanager: {known}): "
            f"fix the name, or add it to {rel(ALLOWLIST)} with the reason no program uses it"
        )
    if kind == "label":
        key, value = name.split("=", 1)
        if (key, value) in registry.labels or key in OPEN_LABELS:
            return None
        values = sorted(v for k, v in registry.labels if k == key)
        hint = (
            f"conf/ gives {key} the values {', '.join(values)}"
            if values
            else (f"no file under conf/ gives series or alerts a label {key}")
        )
        return wrong(f'label {key}="{value}" is not in conf/ ({hint}): fix the page or conf/')
    if kind == "option":
        if name in registry.options:
            return None
        return wrong(
            f"{name} is not an option of conf/erpgo/options.yml: fix the name or add the option"
        )
    if kind == "user":
        if name in registry.pg_roles or name in registry.redis_users or name in metrics:
            return None
        if name.rstrip("_*") != name:
            return None
        return wrong(
            f"{name} is neither a PostgreSQL role (conf/postgresql/roles.sql, pg_hba.conf), a "
            "Redis user (conf/redis/users.acl) nor an ERPGo metric: fix the name or define it"
        )
    if kind == "pg-setting":
        if name in registry.pg_settings or name in registry.pg_settings_in_snippets:
            return None
        return wrong(
            f"{name} is a PostgreSQL setting that conf/postgresql/postgresql.conf does not set "
            "(nor any snippet): set it there, even to its default, so the page and the server agree"
        )
    if kind == "redis-setting":
        if name in registry.redis_settings:
            return None
        return wrong(
            f"{name} is a Redis setting that conf/redis/redis.conf does not set: set it there, "
            "even to its default, so the page and the server agree"
        )
    return None
