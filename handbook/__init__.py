"""ERPGo Operations Handbook: the logic shared by the Sphinx build and the test suite.

Foundation modules, importable from anywhere: ``paths`` (where things live),
``yamlfile`` (YAML with line numbers, findings that name ``file:line``), ``snippet``
(a file under ``snippets/`` and its header), ``report`` (``build/verification.json``)
``site`` (building the site as ``tox -e docs`` does) and ``markdown`` (a page's prose
lines, outside fences, with their numbers). Each subpackage says in its
own docstring what it holds and what it may import; ``tests/test_package.py`` holds
them to it and ``docs/onboarding/codebase.md`` shows the map.
"""
