"""Root conftest: turns files under snippets/ into test items (logic in handbook)."""

pytest_plugins = ["handbook.pytest_plugin", "pytester"]
