# After a failed migration: record the last good version as clean, like `migrate force N`
# page: procedures/rollback.md
# needs: pg
# mode: writes
# changes: schema_migrations only: it records a version as clean, the schema stays as it is
# user: erpgo_migrate
set -euo pipefail
state=$(psql -X -At -v ON_ERROR_STOP=1 -c \
  "SELECT coalesce((SELECT version || ' ' || dirty FROM schema_migrations LIMIT 1),
                   'none false')")
read -r version dirty <<<"$state"
if [ "$dirty" != true ]; then
  echo "schema_migrations: version $version, clean: nothing to force"
  exit 0
fi
# LAST_GOOD: the version whose migration last completed. For a failed up that ran in one
# transaction it is the version before the dirty one; -1 means no version at all.
: "${LAST_GOOD:?set LAST_GOOD to the last good version (see the steps above)}"
psql -X -q -v ON_ERROR_STOP=1 -v version="$LAST_GOOD" <<'SQL'
BEGIN;
TRUNCATE schema_migrations;
INSERT INTO schema_migrations (version, dirty)
    SELECT :version, false WHERE :version >= 0;
COMMIT;
SQL
echo "schema_migrations: was version $version dirty, now version $LAST_GOOD clean"
