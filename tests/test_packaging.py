"""``pip install .`` and a wheel carry the whole ``handbook`` package, not just its top.

The wheel is built from a copy of the sources (so that setuptools' ``build/`` and
``*.egg-info`` never land in the checkout, whose ``build/`` holds the test report)
with this environment's setuptools, offline. It is then unpacked the way pip installs
it, and a child Python that sees only that copy of ``handbook`` imports the Sphinx
extension, the pytest plugins and every other module from it. The package reads the
repository's ``conf/`` beside it, so the unpacked copy gets links to the data folders.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from handbook.paths import ROOT

PACKAGE = ROOT / "handbook"
# What the wheel must let others load by name: conf.py's extension, conftest.py's plugins.
ENTRY_MODULES = ("handbook.sphinxext", "handbook.pytest_plugin", "handbook.unverified")
DATA_DIRS = ("conf", "docs", "snippets")


def source_modules() -> set[str]:
    """Every module of the package in the checkout, as a dotted name."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "handbook", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    wheels = sorted(out.glob("erpgo_handbook-*.whl"))
    assert built.returncode == 0 and len(wheels) == 1, (
        f"pyproject.toml: `pip wheel .` fails:\n{built.stdout}\n{built.stderr}"
    )
    return wheels[0]


def test_the_wheel_holds_every_module_of_the_package(wheel):
    inside = {
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in zipfile.ZipFile(wheel).namelist()
        if name.startswith("handbook/") and name.endswith(".py")
    }
    missing = sorted(source_modules() - inside)
    assert not missing, (
        f"pyproject.toml [tool.setuptools.packages.find]: the wheel lacks {missing}: "
        "every package under handbook/ needs an __init__.py and a place in packages.find"
    )


def test_the_extension_and_the_plugins_import_from_the_wheel_alone(wheel, tmp_path):
    installed = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(installed)
    # The package is this repository's logic: it reads conf/ (and renders docs/,
    # snippets/) beside itself (handbook/paths.py ROOT). Give the wheel's copy the same
    # neighbours; the code itself comes from the wheel only.
    for data in DATA_DIRS:
        (installed / data).symlink_to(ROOT / data, target_is_directory=True)
    modules = sorted(source_modules())
    # python -S: no site-packages and no .pth files, so not the editable install's finder
    # either; the third-party libraries come from this environment's site-packages, added
    # by hand after the unpacked wheel, and handbook from nowhere but the wheel.
    libraries = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    code = f"""
import importlib, json, sys
sys.path[:0] = [{str(installed)!r}, *{libraries!r}]
print(json.dumps({{name: importlib.import_module(name).__file__ for name in {modules!r}}}))
"""
    run = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, f"importing the package from its wheel fails:\n{run.stderr}"
    loaded = json.loads(run.stdout.splitlines()[-1])
    elsewhere = {
        name: where for name, where in loaded.items() if installed not in Path(where).parents
    }
    assert not elsewhere, f"not imported from the wheel: {elsewhere}"
    for name in ENTRY_MODULES:
        assert name in loaded, f"{name} is not in the wheel"
