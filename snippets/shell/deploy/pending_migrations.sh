# Pending migrations: the release's migration files the database has not applied yet
# page: procedures/deployment.md
# needs: pg
# user: erpgo_monitor
set -euo pipefail
# The release's migration files (golang-migrate naming: NNNN_name.up.sql); by default
# the ones beside this handbook's snippets.
migrations=${MIGRATIONS_DIR:-$(dirname "${BASH_SOURCE[0]}")/../../migrations}
state=$(psql -X -At -v ON_ERROR_STOP=1 -c \
  "SELECT coalesce((SELECT version || ' ' || dirty FROM schema_migrations LIMIT 1),
                   'none false')")
read -r version dirty <<<"$state"
if [ "$dirty" = true ]; then
  echo "STOP: schema_migrations says version $version is dirty" \
    "(a migration failed half-way):"
  echo "recover first (Emergency rollback, failed migration), then deploy"
  exit 1
fi
[ "$version" = none ] && version=0
pending=0
for file in "$migrations"/[0-9]*_*.up.sql; do
  number=${file##*/}
  number=${number%%_*}
  if ((10#$number > version)); then
    echo "pending: ${file##*/}"
    pending=$((pending + 1))
  fi
done
echo "database at version $version (clean); $pending migration(s) pending"
