"""The built site in a real browser: headless Debian Chromium driven by Playwright.

The site is served from 127.0.0.1 on a free port for the duration of the module.
Chromium comes from Debian (``.ci/run`` installs it); Playwright's own browser
download is not used. Without Chromium the tests are skipped before the site is built
(the session-scoped ``chromium`` fixture comes first), except under CI.
"""

from __future__ import annotations

import functools
import html.parser
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from playwright import sync_api as playwright_api

from handbook import snippet as snippets
from handbook.paths import SNIPPETS
from handbook.prometheus import alerts
from handbook.pytest_plugin import unavailable
from handbook.site import DEFAULT_BASE_URL

# Debian's chromium (or Ubuntu's chromium-browser) on PATH; HANDBOOK_CHROMIUM for another.
CHROMIUM_VAR = "HANDBOOK_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
# Flags for a CI machine without a network (and often as root, hence no sandbox): no
# background connections that the closed network would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def served(built_site):
    """The built site on http://127.0.0.1:<free port>/, stopped after the module."""
    handler = functools.partial(QuietHandler, directory=str(built_site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", built_site
    finally:
        server.shutdown()
        server.server_close()


def find_chromium() -> tuple[str | None, str]:
    """The Chromium executable, or None and where it was looked for."""
    override = os.environ.get(CHROMIUM_VAR)
    if override:
        found = override if Path(override).is_file() else shutil.which(override)
        return found, f"${CHROMIUM_VAR}={override}"
    found = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    return found, f"{' or '.join(CHROMIUM_NAMES)} on PATH, or ${CHROMIUM_VAR}"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Session-scoped, so that it runs before the (session-scoped) site build."""
    found, looked = find_chromium()
    if found is None:
        unavailable(f"Chromium not found ({looked}): apt-get install chromium")
    return found


# Every test here needs the browser: without one, skip before anything builds the site.
pytestmark = pytest.mark.usefixtures("chromium")


@pytest.fixture(scope="module")
def browser(chromium):
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, served):
    base, _ = served
    context = browser.new_context(base_url=base)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base.rstrip("/"))
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda exc: tab.errors.append(f"{tab.url}: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            tab.errors.append(f"{tab.url}: console {msg.type}: {msg.text}")
            if msg.type == "error"
            else None
        ),
    )
    tab.on(
        "response",
        lambda response: (
            tab.errors.append(f"{tab.url}: {response.status} for {response.url}")
            if response.status >= 400
            else None
        ),
    )
    yield tab
    context.close()


def local(url: str, base: str) -> str:
    """A production runbook_url mapped onto the locally served build."""
    return base + url.removeprefix(DEFAULT_BASE_URL)


@pytest.mark.covers("20.1")
@pytest.mark.parametrize("alert", alerts.load_rules(), ids=lambda a: a.name)
def test_runbook_url_lands_on_the_runbook_heading(page, served, alert):
    base, _ = served
    page.goto(local(alert.runbook_url, base))
    _, anchor = alert.runbook_target()
    heading = page.locator(f"[id='{anchor}'] h1, [id='{anchor}'] + section h1").first
    assert heading.is_visible(), f"{alert.location}: {alert.runbook_url}: no heading at #{anchor}"
    top = heading.bounding_box()["y"]
    assert top < page.viewport_size["height"], (
        f"{alert.location}: {alert.runbook_url}: the heading is not in view after landing"
    )
    # The runbook shows its alert at the top (rendered from the rules file).
    assert page.get_by_text(alert.name, exact=True).first.is_visible()
    assert not page.errors, "\n".join(page.errors)


def test_search_finds_a_diagnostic_function(page):
    page.goto("search.html?q=pg_blocking_pids")
    results = page.locator("ul.search li a")
    results.first.wait_for(timeout=15000)
    hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    assert any("runbooks/high-latency" in (href or "") for href in hrefs), (
        f"searching pg_blocking_pids finds {hrefs}, not the high latency runbook"
    )
    assert not page.errors, "\n".join(page.errors)


def test_a_tab_set_switches(page):
    page.goto("reference/schema.html")
    labels = page.locator(".sd-tab-set > label")
    assert labels.count() >= 2, "reference/schema.html has no tab set with two tabs"
    panels = page.locator(".sd-tab-set").first.locator(":scope > .sd-tab-content")
    assert panels.nth(0).is_visible() and not panels.nth(1).is_visible()
    labels.nth(1).click()
    assert panels.nth(1).is_visible() and not panels.nth(0).is_visible(), (
        "clicking the second tab did not show its content"
    )


def test_copy_button_copies_the_command_only(page):
    snippet = snippets.parse(SNIPPETS / "shell" / "cache" / "hit_rate.sh")
    page.goto(snippet.page.replace(".md", ".html"))
    wrapper = page.locator("div.literal-block-wrapper", has_text=snippet.title).first
    block = wrapper.locator("div.highlight")
    block.hover()
    block.locator("button.copybtn").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.rstrip("\n") == snippet.body().rstrip("\n"), (
        f"{snippet.name}: the copy button copied {copied!r}"
    )


class Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def parsed(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def test_every_page_loads_without_errors_and_no_internal_link_is_broken(page, served):
    base, site = served
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    pages = [p for p in pages if not p.startswith(("_", "."))]
    assert len(pages) > 10
    broken = []
    for name in pages:
        page.goto(name)
        for href in parsed(site / name).hrefs:
            target = urlsplit(urljoin(base + name, href))
            if f"{target.scheme}://{target.netloc}/" != base:
                continue  # an external link: tox -e linkcheck checks those
            path = site / unquote(target.path.lstrip("/"))
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                broken.append(f"{name}: {href} (no such page)")
            elif (
                target.fragment
                and path.suffix == ".html"
                and unquote(target.fragment) not in parsed(path).ids
            ):
                broken.append(f"{name}: {href} (no #{target.fragment} there)")
    assert not page.errors, "console errors:\n" + "\n".join(page.errors)
    assert not broken, "broken internal links:\n" + "\n".join(broken)
