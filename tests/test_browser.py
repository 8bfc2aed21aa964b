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
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from playwright import sync_api as playwright_api

from handbook import report as verification
from handbook import snippet as snippets
from handbook.paths import BUILD, DOCS, ROOT, SNIPPETS
from handbook.prometheus import alerts
from handbook.pytest_plugin import unavailable
from handbook.site import DEFAULT_BASE_URL, build
from handbook.sphinxext.snippets import OUTCOMES

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


def serve(site: Path):
    """``site`` on http://127.0.0.1:<free port>/ until the generator is closed."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(built_site):
    """The built site on http://127.0.0.1:<free port>/, stopped after the module."""
    yield from serve(built_site)


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


@functools.cache
def parsed(path: Path) -> Links:
    """The links and ids of a built page, parsed once: a page's every link with a
    fragment reads its target's ids (without the cache, 2 minutes of parsing)."""
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


# -- What a paged engineer sees first (issue 19) ----------------------------------------

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
RUNBOOKS = sorted(p.stem for p in (DOCS / "runbooks").glob("*.md") if p.stem != "index")
ARTEFACTS = BUILD / "artefacts"  # screenshots a reviewer looks at without building
SIDEWAYS = """() => [...document.querySelectorAll(
        'article pre, article table, article .table-wrapper')]
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => `${e.tagName.toLowerCase()} ${e.scrollWidth - e.clientWidth} px too wide: `
              + (e.innerText || '').trim().split('\\n')[0].slice(0, 70))"""


@pytest.mark.parametrize("name", RUNBOOKS)
def test_a_runbook_shows_a_command_on_its_first_desktop_screen(page, name):
    page.set_viewport_size(DESKTOP)
    page.goto(f"runbooks/{name}.html")
    command = page.locator(".handbook-first-five pre").first
    assert command.count() and command.is_visible(), (
        f"docs/runbooks/{name}.md: no first diagnostic in a first-five-minutes box: add "
        "```{first-five-minutes}``` under the title"
    )
    top = command.bounding_box()["y"]
    # At least three lines of the command (about 20 px each) are on the first screen.
    assert top + 60 < DESKTOP["height"], (
        f"docs/runbooks/{name}.md: the first diagnostic starts {top:.0f} px down, below the "
        f"first {DESKTOP['height']} px: shorten what comes before the first-five-minutes box"
    )
    fix = page.locator(".handbook-first-five a.reference.internal").all()
    assert len(fix) >= 4, f"docs/runbooks/{name}.md: the box links too little into the page"


@pytest.mark.parametrize("name", RUNBOOKS)
def test_no_code_block_or_table_scrolls_sideways_on_a_desktop(page, name):
    page.set_viewport_size(DESKTOP)
    page.goto(f"runbooks/{name}.html")
    wide = page.evaluate(SIDEWAYS)
    assert not wide, (
        f"docs/runbooks/{name}.md at {DESKTOP['width']} px: blocks that scroll sideways "
        "(wrap the snippet's lines, tests/test_snippet_width.py, or the table's cells):\n"
        + "\n".join(wide)
    )


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("name", RUNBOOKS)
def test_every_snippet_block_has_a_mode_mark_and_a_verification_badge(page, name, size):
    page.set_viewport_size(DESKTOP if size == "desktop" else PHONE)
    page.goto(f"runbooks/{name}.html")
    blocks = page.locator("article .handbook-snippet:not(.handbook-first-diagnostic)")
    source = (DOCS / "runbooks" / f"{name}.md").read_text(encoding="utf-8")
    assert blocks.count() == source.count("{snippet}"), (
        f"docs/runbooks/{name}.md shows {source.count('{snippet}')} snippets, the page "
        f"{blocks.count()} snippet blocks: every {{snippet}} renders as one block"
    )
    problems = []
    for index in range(blocks.count()):
        block = blocks.nth(index)
        caption = block.locator(".caption-text").first.inner_text()
        mode = block.locator(".handbook-mode")
        badge = block.locator(".handbook-badge")
        if mode.count() != 1 or not mode.is_visible():
            problems.append(f"{caption}: no visible mode mark")
        writes = "handbook-snippet-writes" in (block.get_attribute("class") or "")
        if writes and not block.locator(".handbook-changes").first.is_visible():
            problems.append(f"{caption}: changes state but does not say what it changes")
        if badge.count() != 1 or not badge.is_visible():
            problems.append(f"{caption}: no visible verification badge")
            continue
        classes = badge.get_attribute("class") or ""
        if not any(f"handbook-badge-{outcome}" in classes.split() for outcome in OUTCOMES):
            problems.append(f"{caption}: the badge names no outcome ({classes})")
        if not (badge.get_attribute("href") or "").endswith("#how-this-handbook-is-verified"):
            problems.append(f"{caption}: the badge does not link to the verification page")
    assert not problems, f"docs/runbooks/{name}.md ({size}):\n" + "\n".join(problems)
    assert not page.errors, "\n".join(page.errors)


@pytest.mark.parametrize("doc", ["index", "quick-reference"])
def test_the_runbook_link_column_is_visible_on_a_phone(page, doc):
    page.set_viewport_size(PHONE)
    page.goto(f"{doc}.html")
    table = page.locator("article table").first
    links = table.locator("a.reference.internal[href*='runbooks/']")
    assert links.count() >= 10, f"docs/{doc}.md: the alert table links {links.count()} runbooks"
    hidden = []
    for index in range(links.count()):
        link = links.nth(index)
        box = link.bounding_box()
        if not link.is_visible() or box is None or box["x"] + box["width"] > PHONE["width"] + 1:
            hidden.append(link.inner_text())
    assert not hidden, (
        f"docs/{doc}.md at {PHONE['width']} px: runbook links off the screen (the table is "
        f"wider than the phone; docs/_static/handbook.css): {hidden}"
    )
    assert not page.evaluate(SIDEWAYS), f"docs/{doc}.md: a table scrolls sideways on a phone"


def test_first_screen_screenshots_are_saved_for_review(browser, served):
    """build/artefacts/: a runbook's first screen on a desktop, a phone, and in dark mode."""
    base, _ = served
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shots = {
        "runbook-desktop.png": (DESKTOP, "light"),
        "runbook-phone.png": (PHONE, "light"),
        "runbook-dark.png": (DESKTOP, "dark"),
    }
    for name, (size, scheme) in shots.items():
        context = browser.new_context(base_url=base, viewport=size, color_scheme=scheme)
        try:
            tab = context.new_page()
            tab.goto("runbooks/connection-pool-exhaustion.html")
            tab.screenshot(path=str(ARTEFACTS / name))
            if scheme == "dark":  # furo follows the system: the page really is dark
                background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
                assert background != "rgb(255, 255, 255)", "dark mode left the page white"
        finally:
            context.close()
        assert (ARTEFACTS / name).stat().st_size > 10_000, f"{name}: an empty screenshot"


# -- A badge follows the recorded outcome ------------------------------------------------

# Snippets of one page that is not a runbook: a runbook that shows a failed snippet fails
# the build itself (handbook/sphinxext/maintenance.py), so no reader ever sees one there.
REPORTED_PAGE = "architecture/disaster-recovery.html"
FAILED = "snippets/sql/dr/archiver_status.sql"
PASSED = "snippets/sql/dr/replication_status.sql"
STALE = "snippets/sql/dr/standby_status.sql"
BADGE_COLOURS = {  # the background each outcome has in docs/_static/handbook.css (light)
    "failed": "rgb(185, 28, 28)",
    "passed": "rgb(220, 252, 231)",
    "stale": "rgb(253, 230, 138)",
}


@pytest.fixture(scope="module")
def reported_site(tmp_path_factory, site_tools):
    """A copy of the handbook built after a test report with one failure, one pass and one
    result for content that has changed since, written by the real report writer."""
    copy = tmp_path_factory.mktemp("reported")
    for name in ("docs", "conf", "snippets", "handbook"):
        shutil.copytree(
            ROOT / name, copy / name, ignore=shutil.ignore_patterns("_build", "__pycache__")
        )
    report = verification.Report(copy / "build" / "verification.json", root=copy)
    server = "PostgreSQL 15.20"
    for snippet, outcome in ((FAILED, "failed"), (PASSED, "passed"), (STALE, "passed")):
        entry = verification.Entry(snippet, "pg15", outcome, server=server, provider="local")
        entry.reason = "ERROR: relation does not exist" if outcome == "failed" else ""
        report.add(entry)
    report.write()
    stale = copy / STALE
    stale.write_text(stale.read_text(encoding="utf-8") + "-- changed after the run\n")
    out = copy / "out"
    result = build(copy, out)
    assert result.returncode == 0, f"the copy does not build:\n{result.stderr}"
    yield from serve(out)


def test_a_failed_snippet_shows_a_red_failed_badge(browser, reported_site):
    base, _ = reported_site
    context = browser.new_context(base_url=base, viewport=DESKTOP)
    try:
        tab = context.new_page()
        tab.goto(REPORTED_PAGE)
        seen = {}
        for snippet, outcome in ((FAILED, "failed"), (PASSED, "passed"), (STALE, "stale")):
            title = snippets.parse(ROOT / snippet).title
            block = tab.locator(
                "article .handbook-snippet:not(.handbook-first-diagnostic)", has_text=title
            ).first
            badge = block.locator(".handbook-badge")
            classes = (badge.get_attribute("class") or "").split()
            colour = badge.evaluate("e => getComputedStyle(e).backgroundColor")
            seen[snippet] = (classes, colour, badge.inner_text())
            assert f"handbook-badge-{outcome}" in classes, (
                f"{snippet}: recorded {outcome}, but its badge is {classes}"
            )
            assert colour == BADGE_COLOURS[outcome], (
                f"{snippet}: a {outcome} badge coloured {colour}, not {BADGE_COLOURS[outcome]} "
                "(docs/_static/handbook.css)"
            )
        classes, _, words = seen[FAILED]
        assert words.startswith("\u2717 Failed on pg15"), words
        others = tab.locator(".handbook-badge:not(.handbook-badge-failed)").all()
        assert others and all(
            "handbook-badge-failed" not in (o.get_attribute("class") or "") for o in others
        )
    finally:
        context.close()


def test_the_architecture_diagram_is_readable_opens_full_size_and_suits_dark_mode(browser, served):
    base, site = served
    context = browser.new_context(base_url=base, viewport=DESKTOP, color_scheme="dark")
    try:
        tab = context.new_page()
        tab.goto("architecture/index.html")
        drawing = tab.locator("a.handbook-diagram object").first
        assert drawing.is_visible(), (
            "docs/architecture/index.md: no diagram (handbook/sphinxext/diagrams.py)"
        )
        href = tab.locator("a.handbook-diagram").first.get_attribute("href") or ""
        svg = (site / "architecture" / href).resolve()
        assert href.endswith(".svg") and svg.is_file(), f"the diagram opens {href!r}, no SVG"
        # The smallest node text as drawn in the column: Graphviz's font size (pt) x scale.
        intrinsic = float(re.search(r'<svg width="([\d.]+)pt"', svg.read_text())[1]) * 4 / 3
        scale = drawing.bounding_box()["width"] / intrinsic
        code = (DOCS / "architecture" / "index.md").read_text(encoding="utf-8")
        points = min(float(p) for p in re.findall(r"node \[[^]]*fontsize=([\d.]+)", code))
        pixels = points * 4 / 3 * scale
        assert pixels >= 9, (
            f"docs/architecture/index.md: node text is drawn {pixels:.1f} px high at "
            f"{DESKTOP['width']} px (the drawing is scaled to {scale:.0%}): lay it out narrower"
        )
        dark = drawing.evaluate("e => getComputedStyle(e).filter")
        assert "invert" in dark, f"in dark mode the diagram stays a white slab (filter: {dark})"
    finally:
        context.close()
