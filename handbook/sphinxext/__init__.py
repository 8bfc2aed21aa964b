"""The handbook's Sphinx extension: ``extensions = ["handbook.sphinxext"]`` in ``docs/conf.py``."""

from sphinx.application import Sphinx

from handbook.sphinxext import alerts, docstore, literal_blocks, snippets


def setup(app: Sphinx) -> dict:
    docstore.setup(app)
    literal_blocks.setup(app)
    snippets.setup(app)
    alerts.setup(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
