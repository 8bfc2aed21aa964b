"""Alertmanager's configuration checked by ``amtool``: the config and its templates,
where each alert is routed, and what a notification shows.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from handbook.paths import CONF, rel
from handbook.prometheus.tools import ToolResult, require_tool, run
from handbook.yamlfile import ConfigError, Finding
from handbook.yamlfile import load as load_yaml

ALERTMANAGER_CONFIG = CONF / "alertmanager" / "alertmanager.yml"


def loopback_config(
    directory: Path, closed: str, webhook_url: Callable[[str], str], token: str
) -> dict:
    """conf's alertmanager.yml, as a drill runs it: only where notifications go changes.

    The secret files are the drill's own in ``directory`` (a made-up PagerDuty key, the
    Slack webhook URL, ``token`` for the webhooks' bearer authorisation); PagerDuty and
    Slack go to ``closed``, a loopback URL where nothing listens (they fail fast, as
    with nobody there); each webhook receiver goes to ``webhook_url(receiver name)``.
    Routes, waits, inhibitions and templates are conf's. Returns the config to write.
    """
    data = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    data["templates"] = [str(ALERTMANAGER_CONFIG.parent / g) for g in data.get("templates", [])]
    secrets = directory / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "pagerduty").write_text("drill-routing-key")
    (secrets / "slack").write_text(f"{closed}/slack")
    (secrets / "token").write_text(token)
    for receiver in data["receivers"]:
        for config in receiver.get("pagerduty_configs") or []:
            config["routing_key_file"] = str(secrets / "pagerduty")
            config["url"] = f"{closed}/v2/enqueue"
        for config in receiver.get("slack_configs") or []:
            config["api_url_file"] = str(secrets / "slack")
        for config in receiver.get("webhook_configs") or []:
            config["url"] = webhook_url(receiver["name"])
            authorization = (config.get("http_config") or {}).get("authorization")
            if authorization:
                authorization["credentials_file"] = str(secrets / "token")
    return data


def amtool_check_config(path: Path | str = ALERTMANAGER_CONFIG) -> ToolResult:
    """``amtool check-config``: the config and the templates it loads."""
    amtool = require_tool("amtool")
    path = Path(path)
    argv = [amtool, "check-config", str(path)]
    done = run(argv)
    result = ToolResult(argv, done.returncode, done.stdout, done.stderr)
    if done.returncode != 0:
        text = done.stdout + "\n" + done.stderr
        template = re.search(r"template: (?P<file>[^:\s]+):(?P<line>\d+): (?P<msg>.*)", text)
        if template:
            candidates = list(path.parent.rglob(template["file"]))
            file = rel(candidates[0]) if candidates else template["file"]
            # "unclosed action started at x.tmpl:2": the line where the mistake starts
            started = re.search(r"started at [^:\s]+:(?P<line>\d+)", template["msg"])
            line = int((started or template)["line"])
            result.findings.append(Finding(file, line, template["msg"]))
        else:
            lines = [int(n) for n in re.findall(r"\bline (\d+)\b", text)]
            message = " ".join(text.split("FAILED:", 1)[-1].split())
            result.findings.append(Finding(rel(path), lines[0] if lines else None, message))
    return result


def amtool_routes(labels: Mapping[str, str], path: Path | str = ALERTMANAGER_CONFIG) -> list[str]:
    """The receivers Alertmanager would notify for an alert with these labels."""
    amtool = require_tool("amtool")
    argv = [amtool, "config", "routes", "test", f"--config.file={path}"]
    argv += [f"{k}={v}" for k, v in labels.items()]
    done = run(argv)
    if done.returncode != 0:
        raise ConfigError(
            f"{rel(path)}: amtool could not route {dict(labels)}: {done.stderr.strip()}"
        )
    return [name for name in done.stdout.strip().split(",") if name]


def amtool_render(
    template_text: str, data: Mapping[str, object], config: Path | str = ALERTMANAGER_CONFIG
) -> str:
    """Render ``template_text`` with the config's templates and Alertmanager ``data``."""
    amtool = require_tool("amtool")
    config = Path(config)
    loaded = load_yaml(config)
    globs = loaded.get("templates") or [] if isinstance(loaded, dict) else []
    with tempfile.TemporaryDirectory(prefix="amtool-") as tmp:
        data_file = Path(tmp) / "data.json"
        data_file.write_text(json.dumps(data), encoding="utf-8")
        argv = [amtool, "template", "render", f"--template.text={template_text}"]
        argv += [f"--template.glob={config.parent / g}" for g in globs]
        argv += [f"--template.data={data_file}"]
        done = run(argv)
    if done.returncode != 0:
        raise ConfigError(f"{rel(config)}: amtool template render failed: {done.stderr.strip()}")
    return done.stdout
