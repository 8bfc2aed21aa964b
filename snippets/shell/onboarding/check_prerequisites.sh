# Check the prerequisites: Python 3.11 or newer, git and bash
# page: onboarding/setup.md
# lint-only: it is one step of the setup sequence, run in order in a new hire's clean HOME
# verified-by: tests/test_onboarding.py
set -euo pipefail
python3 -c 'import sys; assert sys.version_info >= (3, 11), (
    "Python 3.11+ needed, not " + sys.version.split()[0])'
git --version
bash --version | head -n 1
