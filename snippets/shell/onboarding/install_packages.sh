# Install the system packages: Python, PostgreSQL 15 with contrib, Redis, promtool, graphviz
# page: onboarding/setup.md
# lint-only: installs Debian packages as root over the network; .ci/run installs the same ones on CI
set -euo pipefail
sudo apt-get update
sudo apt-get install -y --no-install-recommends \
  git python3 python3-venv python3-pip \
  postgresql-15 postgresql-contrib redis-server redis-tools \
  prometheus prometheus-alertmanager graphviz
