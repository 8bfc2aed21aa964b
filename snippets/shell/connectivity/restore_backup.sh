# Restore a pg_dump archive into a new database and count every table's rows
# page: runbooks/database-connectivity.md
# mode: writes
# changes: a new database, which the archive is restored into; the live one is left alone
# needs: pg
# user: postgres
set -euo pipefail
# BACKUP_FILE: the archive (pg_dump --format=custom) to restore. RESTORE_DB: the new
# database to restore into (default: <PGDATABASE>_restored); it must not exist yet,
# so a restore never lands on top of data. Without BACKUP_FILE it rehearses: it
# dumps PGDATABASE now, restores that, counts, and drops the copy again.
source_db="${PGDATABASE:?set PGDATABASE to the database the backup is of}"
target="${RESTORE_DB:-${source_db}_restored}"
archive="${BACKUP_FILE:-}"
if [ -z "$archive" ]; then
    archive="$(mktemp --suffix=.dump)"
    trap 'rm -f "$archive"' EXIT
    pg_dump --format=custom --no-owner --no-privileges --file="$archive" "$source_db"
    echo "rehearsal: restoring a fresh dump of $source_db into $target"
fi
# A damaged archive stops here, before anything changes.
pg_restore --list "$archive" >/dev/null
createdb --template=template0 "$target"
if [ -z "${BACKUP_FILE:-}" ]; then
    trap 'rm -f "$archive"; dropdb --if-exists "$target"' EXIT
fi
pg_restore --exit-on-error --no-owner --no-privileges --single-transaction \
    --dbname="$target" "$archive"
# Exact row counts (not statistics) of every table, to compare with the source or the
# application's own figures: one count(*) per table, built and run by psql's \gexec.
psql -X -q -v ON_ERROR_STOP=1 --dbname="$target" <<'SQL'
SELECT string_agg(format('SELECT %L AS "table", count(*) AS rows FROM %I.%I',
                         n.nspname || '.' || c.relname, n.nspname, c.relname),
                  E'\nUNION ALL ' ORDER BY n.nspname, c.relname) || E'\nORDER BY 1'
  FROM pg_class AS c
  JOIN pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%'
\gexec
SQL
