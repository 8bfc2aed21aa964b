"""The connection variables a page tells the reader to set are the ones the tests use.

Each page says once, at its top ({access}), which user to connect as and how:
PGHOST, PGPORT, PGUSER, PGDATABASE with the password in ~/.pgpass, and
REDIS_URL=redis://<user>:<password>@<host>:<port>/0. The harness runs every snippet
with its variables in exactly that form (handbook.schema.databases.as_readers_set_it),
and a form the client would misread, such as a Redis URL naming the user without the
password, fails here, on the real clients.
"""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

from handbook.paths import SNIPPETS, rel
from handbook.pytest_plugin import DATABASES
from handbook.schema.databases import READER_FORM, SHARED, as_readers_set_it
from handbook.servers import accounts
from handbook.servers import redis as redis_servers

USER_ONLY_URL = re.compile(r"rediss?://[A-Za-z_][\w-]*@")


def test_a_redis_url_without_the_password_is_misread_by_every_redis_cli(redis_server):
    env = redis_server.env(accounts.MONITOR)
    password = env["REDISCLI_AUTH"]
    clients = {i.client.path for i in redis_servers.discover()[0] if i.client}
    assert clients, "no redis-cli found"
    address = f"127.0.0.1:{redis_server.port}"
    for client in sorted(clients):
        for url, works in (
            (f"redis://{accounts.MONITOR}@{address}/0", False),  # + REDISCLI_AUTH: misread
            (f"redis://{accounts.MONITOR}:{password}@{address}/0", True),  # the pages' form
        ):
            result = subprocess.run(
                [str(client), "--no-auth-warning", "-u", url, "DBSIZE"],
                env=env | {"REDIS_URL": url}, capture_output=True, text=True, timeout=30,
                check=False,
            )  # fmt: skip
            answered = result.stdout.strip().isdigit()
            shown = url.replace(password, "<password>")
            assert answered == works, (client, shown, result.stdout, result.stderr)


def test_no_snippet_suggests_a_redis_url_without_its_password():
    found = []
    for path in sorted(SNIPPETS.rglob("*.sh")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if USER_ONLY_URL.search(line):
                found.append(
                    f"{rel(path)}:{number}: a Redis URL with a user and no password, which "
                    "redis-cli reads as a password: write redis://<user>:<password>@<host>:6379/0"
                )
    assert not found, "\n".join(found)


def test_the_harness_sets_the_variables_as_readers_do(pg_server, redis_server, request, tmp_path):
    request.config.stash[DATABASES].ensure(pg_server)
    raw = pg_server.env(accounts.MONITOR) | {"PGDATABASE": SHARED}
    raw |= redis_server.account(accounts.MONITOR)  # its variables; PATH keeps pg's psql
    env = as_readers_set_it(raw, str(tmp_path))
    assert "PGPASSWORD" not in env and "REDISCLI_AUTH" not in env
    assert set(READER_FORM) <= set(env)
    # psql logs in with the password file alone, as a reader's ~/.pgpass does.
    result = subprocess.run(
        ["psql", "-X", "-At", "-w", "-c", "SELECT current_user"],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.stdout.strip() == accounts.MONITOR, result.stderr
    assert Path(env["PGPASSFILE"]).stat().st_mode & 0o077 == 0, "libpq ignores a readable one"


def test_every_page_states_the_redis_url_form_the_tests_use(built_site):
    misread, stated = [], 0
    for page in sorted(built_site.rglob("*.html")):
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
        if "names the user and the master" in text or "in REDISCLI_AUTH;" in text:
            misread.append(rel(page, built_site))
        stated += len(re.findall(r"REDIS_URL=redis://\w+:<password>@", text))
    assert not misread, f"pages that tell readers a Redis URL without the password: {misread}"
    assert stated, "no page states the Redis URL form: the {access} lists lost it"
