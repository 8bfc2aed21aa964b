"""Facts the extension collects per page, kept in step with Sphinx's incremental builds.

``env.<name>`` is a ``dict`` from docname to what that page contributed; it is
emptied for a page that is re-read and merged back from parallel readers.
"""

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

STORES = (
    "handbook_allowlist_used",  # allowlist entries (by line) a page's blocks matched
    "handbook_snippets_shown",  # snippets a page shows
    "handbook_snippet_order",  # the same, as a list in page order
    "handbook_runbooks",  # alerts a page is the runbook of
    "handbook_alert_context",  # oncall: the alerts a page gives its context
    "handbook_access",  # oncall: where a page states its access prerequisites
    "handbook_report_views",  # reportview: the report's views a page shows
    "handbook_ref_targets",  # refdeps: the labels a page's {ref}s name
    "handbook_report_digests",  # reportview: what they rendered when it was last written
)


def init(app: Sphinx) -> None:
    for name in STORES:
        if not hasattr(app.env, name):
            setattr(app.env, name, {})


def purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    for name in STORES:
        getattr(env, name).pop(docname, None)


def merge(app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
    for name in STORES:
        theirs = getattr(other, name)
        for docname in docnames:
            if docname in theirs:
                getattr(env, name)[docname] = theirs[docname]


def everything(env: BuildEnvironment, name: str) -> set:
    """The union of what every page contributed to store ``name``."""
    return set().union(*getattr(env, name).values())


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", init, priority=100)  # before the checks that fill them
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
