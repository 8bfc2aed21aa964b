# Start a scratch PostgreSQL from a base backup to check it: no archiving, local socket only
# page: architecture/disaster-recovery.md
# lint-only: it starts a PostgreSQL server, which refuses root, the user the snippet tests run as; tests/drills/test_disaster_recovery.py runs it as the postgres user on throwaway servers
# verified-by: tests/drills/test_disaster_recovery.py, handbook/drills/backup.py
# user: postgres
set -euo pipefail
# BACKUP_DIR: a plain-format base backup; SCRATCH_PGDATA: a new directory for the copy;
# PGPORT: a free port for the scratch server (it listens on no network address).
: "${BACKUP_DIR:?}" "${SCRATCH_PGDATA:?}" "${PGPORT:?}"
mkdir -m 700 "$SCRATCH_PGDATA"
cp -a "$BACKUP_DIR/." "$SCRATCH_PGDATA/"
socket_dir="$(dirname "$SCRATCH_PGDATA")"
# Never archive into, or stream from, production: the scratch copy stands alone.
pg_ctl start --pgdata="$SCRATCH_PGDATA" --wait --timeout=600 \
    --log="$SCRATCH_PGDATA.log" \
    -o "--port=$PGPORT --listen_addresses='' --unix_socket_directories='$socket_dir' \
        --archive_mode=off --primary_conninfo=''"
echo "scratch server from $BACKUP_DIR: psql -h $socket_dir -p $PGPORT"
