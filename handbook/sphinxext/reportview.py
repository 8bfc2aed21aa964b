"""What a page shows of the last test run, rendered when the page is written, not read.

Every test run rewrites ``build/verification.json``. If the pages that show its results
(the snippets' badges, the requirement trace, the server matrix, the run sentence) read
it while Sphinx reads them, each run makes the next build read almost every page again:
a one-page edit followed by a test run would cost a whole build.

So a directive leaves a :class:`report_view` placeholder that names a view and what it
shows (``placeholder("badge", snippet=...)``). When a page is written, the report is
read once for the build and each placeholder is replaced by its view's nodes. After
reading, the build re-writes (without re-reading) exactly the pages whose views render
differently from when they were last written (``env-updated``): a test run that changed
one page's badges re-writes that page and the summaries, nothing else.

A view is one function registered with :func:`register`:
``render(app, attrs, data) -> list[Node]``, with ``data`` the report as loaded; the module
that registers it calls ``app.setup_extension("handbook.sphinxext.reportview")``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.transforms.post_transforms import SphinxPostTransform

from handbook import report as verification

Render = Callable[[Sphinx, dict, dict], list[nodes.Node]]
VIEWS: dict[str, Render] = {}
# docstore keeps both per page: the views a page holds, and what they rendered when the
# page was last written (a digest).
VIEWS_STORE, DIGESTS_STORE = "handbook_report_views", "handbook_report_digests"


class report_view(nodes.General, nodes.Element):
    """Replaced by its view's nodes when the page is written (never reaches a writer)."""


def register(name: str, render: Render) -> None:
    VIEWS[name] = render


def placeholder(env: BuildEnvironment, name: str, **attrs) -> report_view:
    """The node a directive returns (or nests) where view ``name`` goes on this page."""
    if name not in VIEWS:
        raise KeyError(f"no report view {name!r}: register it (handbook/sphinxext/reportview.py)")
    getattr(env, VIEWS_STORE).setdefault(env.docname, []).append((name, attrs))
    return report_view("", view=name, attrs=attrs)


def report_path(app: Sphinx) -> Path:
    return Path(app.confdir).resolve().parent / "build" / "verification.json"


_loaded: dict[tuple, dict] = {}


def report(app: Sphinx) -> dict:
    """The report as it is now, read once however many pages show it."""
    path = report_path(app)
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (str(path), None, None)
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = verification.load(path)
    return _loaded[key]


def render(app: Sphinx, name: str, attrs: dict) -> list[nodes.Node]:
    return VIEWS[name](app, attrs, report(app))


class Fill(SphinxPostTransform):
    """Each placeholder becomes its view, before the theme's own post-transforms (furo
    wraps tables at 500) and the badges' links (doctree-resolved)."""

    default_priority = 100

    def run(self, **kwargs) -> None:
        for node in list(self.document.findall(report_view)):
            node.replace_self(render(self.app, node["view"], node["attrs"]))


def digest(app: Sphinx, views: list[tuple[str, dict]]) -> str:
    text = "\n".join(n.pformat() for name, attrs in views for n in render(app, name, attrs))
    return hashlib.sha256(text.encode()).hexdigest()


def rewrite_changed(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """The pages not re-read whose views now render differently: re-write them. While the
    report is byte for byte the one of the last comparison, none can: what else a view
    shows (a snippet's file, the tests) makes its page re-read when it changes."""
    try:
        stamp = hashlib.sha256(report_path(app).read_bytes()).hexdigest()
    except OSError:
        stamp = ""
    if getattr(env, "handbook_report_stamp", None) == stamp:
        return []
    digests = getattr(env, DIGESTS_STORE)
    changed = []
    for docname, views in sorted(getattr(env, VIEWS_STORE).items()):
        now = digest(app, views)
        if digests.get(docname) != now:
            digests[docname] = now
            changed.append(docname)
    env.handbook_report_stamp = stamp
    return changed


def setup(app: Sphinx) -> dict:
    """Loaded once however many modules ask (``app.setup_extension``): each module that
    registers a view sets this up itself, so a test's small site can load it alone."""
    app.setup_extension("handbook.sphinxext.docstore")  # keeps the views per page
    app.add_node(report_view)
    app.add_post_transform(Fill)
    app.connect("env-updated", rewrite_changed)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
