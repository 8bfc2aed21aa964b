# Restore a base backup and replay archived WAL up to a restore point or a time, then promote
# page: architecture/disaster-recovery.md
# lint-only: it starts a PostgreSQL server, which refuses root, the user the snippet tests run as; tests/drills/test_disaster_recovery.py runs it as the postgres user on throwaway servers
# verified-by: tests/drills/test_disaster_recovery.py, handbook/drills/backup.py
# user: postgres
set -euo pipefail
# PGDATA: the new (absent) data directory; BACKUP_DIR: a plain-format base backup;
# WAL_ARCHIVE: the directory archive_command copies WAL into; PGPORT: where to start it.
# The target: RECOVERY_TARGET_NAME (made by pg_create_restore_point) or
# RECOVERY_TARGET_TIME.
: "${PGDATA:?}" "${BACKUP_DIR:?}" "${WAL_ARCHIVE:?}" "${PGPORT:?}"
if [ -n "${RECOVERY_TARGET_NAME:-}" ]; then
    target="recovery_target_name = '$RECOVERY_TARGET_NAME'"
else
    : "${RECOVERY_TARGET_TIME:?set it or RECOVERY_TARGET_NAME}"
    target="recovery_target_time = '$RECOVERY_TARGET_TIME'"
fi
mkdir -m 700 "$PGDATA"
cp -a "$BACKUP_DIR/." "$PGDATA/"
cat >>"$PGDATA/postgresql.auto.conf" <<CONF
# point-in-time recovery by restore_pitr.sh, $(date -u +%FT%TZ): remove after the
# restore
restore_command = 'cp "$WAL_ARCHIVE/%f" "%p"'
$target
recovery_target_action = 'promote'
CONF
touch "$PGDATA/recovery.signal"
pg_ctl start --pgdata="$PGDATA" --wait --timeout=3600 --log="$PGDATA.log" \
    -o "--port=$PGPORT"
# Read-only connections come first; the server takes writes once it has promoted.
for _ in $(seq 1500); do
    [ "$(psql -X -At -c 'SELECT pg_is_in_recovery()')" = f ] && break
    pg_ctl status --pgdata="$PGDATA" >/dev/null ||
        { echo "server stopped: read $PGDATA.log" >&2; exit 1; }
    sleep 0.2
done
if [ "$(psql -X -At -c 'SELECT pg_is_in_recovery()')" != f ]; then
    echo "still in recovery after 5 minutes: read $PGDATA.log" >&2
    exit 1
fi
psql -X -At \
    -c "SELECT 'promoted on timeline ' || timeline_id FROM pg_control_checkpoint()"
