"""The handbook's Sphinx extension: ``extensions = ["handbook.sphinxext"]`` in ``docs/conf.py``."""

from sphinx.application import Sphinx

from handbook.sphinxext import (
    alertpath,
    alerts,
    configuration,
    diagrams,
    firstfive,
    latex,
    links,
    literal_blocks,
    maintenance,
    oncall,
    packagemap,
    quickref,
    recovery,
    refdeps,
    servers,
    snippets,
    summary,
)


def setup(app: Sphinx) -> dict:
    app.setup_extension("handbook.sphinxext.docstore")  # once, however many modules need it
    refdeps.setup(app)  # an edited page's labels: the pages linking to them are written again
    diagrams.setup(app)
    literal_blocks.setup(app)
    snippets.setup(app)
    alerts.setup(app)
    configuration.setup(app)
    quickref.setup(app)
    packagemap.setup(app)
    summary.setup(app)
    recovery.setup(app)
    alertpath.setup(app)  # {alert-path}: the alert-path drills' figures
    servers.setup(app)
    oncall.setup(app)
    firstfive.setup(app)
    links.setup(app)
    maintenance.setup(app)
    latex.setup(app)  # the PDF's layout (LaTeX builder only)
    # env_version: bump when what the extension keeps in the environment changes
    return {"env_version": 4, "parallel_read_safe": True, "parallel_write_safe": True}
