# Build a streaming standby from the primary with pg_basebackup, and start it
# page: architecture/disaster-recovery.md
# lint-only: it starts a PostgreSQL server, which refuses root, the user the snippet tests run as; tests/drills/test_disaster_recovery.py runs it as the postgres user on throwaway servers
# verified-by: tests/drills/test_disaster_recovery.py, handbook/drills/promotion.py
# user: replicator
set -euo pipefail
# PG* variables: the primary (a role with REPLICATION); STANDBY_PGDATA: a new directory;
# STANDBY_NAME: the application_name synchronous_standby_names refers to; STANDBY_PORT.
: "${STANDBY_PGDATA:?}" "${STANDBY_NAME:?}" "${STANDBY_PORT:?}"
# -R writes primary_conninfo and standby.signal; -X stream brings the WAL the copy
# needs.
pg_basebackup --pgdata="$STANDBY_PGDATA" --wal-method=stream --checkpoint=fast \
    --write-recovery-conf --dbname="application_name=$STANDBY_NAME"
pg_ctl start --pgdata="$STANDBY_PGDATA" --wait --timeout=600 \
    --log="$STANDBY_PGDATA.log" \
    -o "--port=$STANDBY_PORT"
psql -X -At -p "$STANDBY_PORT" \
    -c "SELECT 'standby in recovery: ' || pg_is_in_recovery()"
