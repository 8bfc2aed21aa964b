# Roll the schema back one version, like `migrate down 1`: run the current version's down file
# page: procedures/rollback.md
# needs: pg
# mode: writes
# changes: the schema: the current migration's down file runs, and schema_migrations names the version before it
# user: erpgo_migrate
set -euo pipefail
# The release's migration files; by default the ones beside this handbook's snippets.
migrations=${MIGRATIONS_DIR:-$(dirname "${BASH_SOURCE[0]}")/../../migrations}
state=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT current_database() || ' ' || coalesce(
  (SELECT version || ' ' || dirty FROM schema_migrations LIMIT 1), 'none false')")
read -r database version dirty <<<"$state"
if [ "$dirty" = true ]; then
  echo "STOP: version $version is dirty: recover from the failed migration first" >&2
  exit 1
fi
if [ "$version" = none ]; then
  echo "nothing to roll back: schema_migrations records no version" >&2
  exit 1
fi
down="" previous=-1
for file in "$migrations"/[0-9]*_*.down.sql; do
  number=${file##*/}
  number=$((10#${number%%_*}))
  if ((number == version)); then
    down=$file
  elif ((number < version && number > previous)); then
    previous=$number
  fi
done
if [ -z "$down" ]; then
  echo "STOP: no down file for version $version in $migrations" >&2
  exit 1
fi
# golang-migrate's advisory lock (crc32 of "/<database>\0public\0schema_migrations"
# times its salt), so this never runs beside a `migrate` run; gzip's trailer holds the
# crc32.
crc=$(printf '/%s\0public\0schema_migrations' "$database" | gzip -c | tail -c 8 |
    od -An -N4 -tu4)
key=$(((crc * 1486364155) % 4294967296))
# As golang-migrate records it: the target version dirty, the down file, the target
# clean (-1 is "no version": the table is left empty).
psql -X -q -v ON_ERROR_STOP=1 -v key="$key" -v previous="$previous" \
    -v down="$down" <<'SQL'
SELECT pg_try_advisory_lock(:key) AS locked \gset
\if :locked
\else
  DO $$ BEGIN
    RAISE EXCEPTION 'another migration run holds the migration lock: wait for it';
  END $$;
\endif
BEGIN;
TRUNCATE schema_migrations;
INSERT INTO schema_migrations (version, dirty) VALUES (:previous, true);
COMMIT;
\i :down
BEGIN;
TRUNCATE schema_migrations;
INSERT INTO schema_migrations (version, dirty)
    SELECT :previous, false WHERE :previous >= 0;
COMMIT;
SQL
echo "rolled back ${down##*/}: schema at version $previous"
