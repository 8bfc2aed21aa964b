"""A page names only settings, users, channels and labels that conf/ has.

``handbook/confcheck/names.py`` reads what the files under ``conf/`` define and the
inline code spans of every page; a span of a known shape (```#erpgo-oncall```,
```team="platform"```, ```erpgo_monitor```, ```ERPGO_DB_MAX_OPEN_CONNS```, a
PostgreSQL or Redis setting name) that conf/ does not define fails, naming the page
and line. Whether a span is a PostgreSQL or a Redis setting is what the real servers
say: ``pg_settings`` and ``CONFIG GET *`` of every available server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from handbook.confcheck import names
from handbook.paths import DOCS, ROOT, rel
from handbook.prometheus.metrics import load_metric_catalogue
from handbook.servers.base import Server
from handbook.yamlfile import report

PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
CATALOGUE = load_metric_catalogue()
METRICS = CATALOGUE.series_names() | set(CATALOGUE.metrics)
REGISTRY = names.Registry()
ALLOWED, ALLOWLIST_PROBLEMS = names.load_allowlist()


def findings(kinds: set[str], pg: set[str] = frozenset(), redis: set[str] = frozenset(),
             pages: list[Path] = PAGES, registry: names.Registry = REGISTRY) -> list:  # fmt: skip
    found = []
    for page in pages:
        for citation in names.citations(page, set(pg), set(redis)):
            if citation.kind in kinds:
                problem = names.check_citation(citation, registry, METRICS, ALLOWED)
                if problem:
                    found.append(problem)
    return found


def pg_parameters(server: Server) -> set[str]:
    done = subprocess.run(
        ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", "SELECT name FROM pg_settings"],
        env=server.env("admin"), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{server.describe()}: {done.stderr}"
    return set(done.stdout.split())


def redis_parameters(server: Server) -> set[str]:
    env = server.env("admin")
    done = subprocess.run(
        ["redis-cli", "--no-auth-warning", "-u", env["REDIS_URL"], "CONFIG", "GET", "*"],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip(), f"{server.describe()}: {done.stderr}"
    return set(done.stdout.split("\n")[0::2]) - {""}


@pytest.mark.covers("20.4")
def test_pages_cite_only_channels_labels_users_and_options_conf_defines():
    found = findings({"channel", "label", "user", "option"})
    assert not found, report(found)


@pytest.mark.covers("20.4")
def test_pages_cite_only_postgresql_settings_conf_sets(pg_server):
    parameters = pg_parameters(pg_server)
    assert "idle_in_transaction_session_timeout" in parameters, pg_server.describe()
    found = findings({"pg-setting"}, pg=parameters)
    assert not found, f"against {pg_server.describe()}:\n{report(found)}"


@pytest.mark.covers("20.4")
def test_pages_cite_only_redis_settings_conf_sets(redis_server):
    parameters = redis_parameters(redis_server)
    assert "maxmemory-policy" in parameters, redis_server.describe()
    found = findings({"redis-setting"}, redis=parameters)
    assert not found, f"against {redis_server.describe()}:\n{report(found)}"


def test_the_pages_cite_what_the_issue_asks_about():
    """The check is not vacuous: the pages do cite each kind, and the names agree."""
    cited = {
        (c.kind, c.name)
        for page in PAGES
        for c in names.citations(page, {"idle_in_transaction_session_timeout"}, set())
    }
    assert ("channel", "#erpgo-oncall") in cited
    assert ("user", "erpgo_monitor") in cited
    assert ("pg-setting", "idle_in_transaction_session_timeout") in cited
    assert any(kind == "label" and name.startswith("team=") for kind, name in cited)


BAD_PAGE = """(x)=
# A page that names what conf/ lacks

Alerts go to `#ops-oncall` and to `#erpgo-oncall`, with `team="ops"` or
`team="platform"`, `job="postgres"`, `integration="pagerduty"`.

Log in as `erpgo_oncall`, not `erpgo_monitor`; set `ERPGO_DB_MAX_IDLE`.
Servers: `idle_session_timeout = 5min`, `idle_in_transaction_session_timeout`,
`maxmemory-policy allkeys-lru`, `hz`.

```text
`#not-checked` inside a fence
```
"""


def test_a_name_conf_lacks_fails_naming_page_and_line(tmp_path):
    page = tmp_path / "docs" / "bad.md"
    page.parent.mkdir()
    page.write_text(BAD_PAGE, encoding="utf-8")
    pg = {"idle_session_timeout", "idle_in_transaction_session_timeout"}
    redis = {"maxmemory-policy", "hz"}
    kinds = {"channel", "label", "user", "option", "pg-setting", "redis-setting"}
    found = [str(f) for f in findings(kinds, pg, redis, pages=[page])]
    where = rel(page)
    assert [f.split(": ", 1)[0] for f in found] == [
        f"{where}:4",
        f"{where}:4",
        f"{where}:7",
        f"{where}:7",
        f"{where}:8",
        f"{where}:9",
    ], "\n".join(found)
    text = "\n".join(found)
    assert "channel #ops-oncall is not one Alertmanager posts to" in text
    assert 'label team="ops" is not in conf/ (conf/ gives team the values' in text
    assert "erpgo_oncall is neither a PostgreSQL role" in text
    assert "ERPGO_DB_MAX_IDLE is not an option of conf/erpgo/options.yml" in text
    assert (
        "idle_session_timeout is a PostgreSQL setting that conf/postgresql/postgresql.conf" in text
    )
    assert "hz is a Redis setting that conf/redis/redis.conf does not set" in text


def test_a_channel_renamed_in_conf_fails_the_pages(tmp_path):
    """The other direction: conf/ changes, the pages that cite the old name fail."""
    conf = tmp_path / "conf"
    for path in (ROOT / "conf").rglob("*"):
        if path.is_file():
            target = conf / path.relative_to(ROOT / "conf")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    am = conf / "alertmanager" / "alertmanager.yml"
    am.write_text(am.read_text().replace('"#erpgo-oncall"', '"#ops-oncall"'))
    renamed = names.Registry(conf=conf)
    found = findings({"channel"}, registry=renamed)
    assert any(
        "docs/onboarding/resources.md" in str(f) and "#erpgo-oncall" in str(f) for f in found
    )


def test_every_allowlist_entry_has_a_reason_and_is_still_needed():
    assert not ALLOWLIST_PROBLEMS, "\n".join(ALLOWLIST_PROBLEMS)
    everything = set()
    for page in PAGES:
        for citation in names.citations(page, {"reserved_connections"}, set()):
            everything |= {citation.text, citation.name}
    for name, entry in ALLOWED.items():
        assert name in everything, (
            f"docs/names-allowlist.toml:{entry.line}: no page cites {name!r} any more: "
            "remove the entry"
        )


def test_an_allowlist_entry_without_reason_is_refused(tmp_path):
    path = tmp_path / "names.toml"
    path.write_text('[[name]]\nname = "#x"\n\n[[name]]\nname = "#y"\nreason = "people"\n')
    allowed, problems = names.load_allowlist(path)
    assert list(allowed) == ["#y"]
    assert problems == [f"{rel(path)}:1: an entry needs 'name' and 'reason'"]
