# Back up one database with pg_dump into a custom-format archive, and check the archive reads back
# page: runbooks/database-connectivity.md
# needs: pg
# user: erpgo_monitor
set -euo pipefail
# Writes $BACKUP_DIR/<database>-<UTC time>.dump (BACKUP_DIR defaults to the current
# directory). A read-only role with pg_read_all_data is enough; pg_dump takes a
# consistent snapshot and blocks no writer.
backup_dir="${BACKUP_DIR:-.}"
database="${PGDATABASE:?set PGDATABASE to the database to back up}"
archive="$backup_dir/$database-$(date -u +%Y%m%dT%H%M%SZ).dump"
pg_dump --format=custom --no-owner --no-privileges --file="$archive" "$database"
# The table of contents lists every table whose rows the archive holds.
tables=$(pg_restore --list "$archive" | grep -c ' TABLE DATA ')
echo "$archive: $tables tables of data, $(du -h "$archive" | cut -f1)"
