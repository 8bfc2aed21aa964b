"""ERPGo Operations Handbook: the logic shared by the Sphinx build and the test suite.

Modules are named after the noun they hold: ``snippet`` (a file under
``snippets/`` and its header), ``servers`` (PostgreSQL and Redis providers),
``runners`` (how a snippet is executed; no pytest in there), ``report``
(``build/verification.json``), ``sphinxext`` (the Sphinx extension) and
``pytest_plugin`` (the glue that turns snippets into test items).
"""
