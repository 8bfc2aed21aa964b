"""Root conftest: turns files under snippets/ into test items (logic in handbook).

``handbook.unverified`` closes the run listing what a missing tool left unverified.
"""

pytest_plugins = ["handbook.pytest_plugin", "handbook.unverified", "pytester"]
