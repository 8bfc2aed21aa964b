"""Re-write the pages whose links point at a label that moved, vanished or was retitled.

Sphinx re-writes only the pages it re-reads. A page whose ``{ref}`` points at a label that
an edited page no longer defines is left as it was, so an incremental build with warnings
as errors passes with a dangling link (and a link's text taken from a retitled section
stays old). Each page's ``{ref}`` targets are kept here; after reading, every page naming a
label that differs from before the build, or that no page defines (its last build
warned), is written again: its links are resolved, or warned about, afresh, and a
dangling link fails every build until it is fixed.
"""

from __future__ import annotations

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

STORE = "handbook_ref_targets"  # docstore: the labels each page's {ref}s name


def collect(app: Sphinx, doctree: nodes.document) -> None:
    targets = {
        node["reftarget"].lower()
        for node in doctree.findall(addnodes.pending_xref)
        if node.get("refdomain") == "std" and node.get("reftype") == "ref"
    }
    getattr(app.env, STORE)[app.env.docname] = targets


def labels(env: BuildEnvironment) -> dict[str, tuple]:
    """Every label: the page and anchor it names, and its title where it has one."""
    std = env.domains.standard_domain
    return {name: (*where, std.labels.get(name)) for name, where in std.anonlabels.items()}


def before(app: Sphinx, env: BuildEnvironment, added: set, changed: set, removed: set) -> list:
    app.handbook_labels_before = labels(env)  # before the changed pages are purged
    return []


def dependents(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """The pages to write again: those naming a label that changed, or one no page defines."""
    old, now = getattr(app, "handbook_labels_before", {}), labels(env)
    moved = {name for name in old.keys() | now.keys() if old.get(name) != now.get(name)}
    return sorted(
        doc
        for doc, targets in getattr(env, STORE).items()
        if targets & moved or targets - now.keys()
    )


def setup(app: Sphinx) -> None:
    app.connect("doctree-read", collect)
    app.connect("env-get-outdated", before)
    app.connect("env-updated", dependents)
