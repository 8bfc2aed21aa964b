# Start the PostgreSQL service on a Debian database host and wait until it accepts connections
# page: runbooks/database-connectivity.md
# lint-only: needs systemd and a Debian PostgreSQL cluster on the database host
set -euo pipefail
cluster="${CLUSTER:-15/main}"
sudo systemctl start "postgresql@${cluster/\//-}"
pg_lsclusters
pg_isready --timeout=60
