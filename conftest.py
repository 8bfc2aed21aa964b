"""Root conftest: turns files under snippets/ into test items (logic in handbook).

``handbook.unverified`` closes the run listing what a missing tool left unverified; it
comes first because ``handbook.pytest_plugin`` imports it (pytest must see it first to
rewrite its asserts).
"""

pytest_plugins = ["handbook.unverified", "handbook.pytest_plugin", "pytester"]
