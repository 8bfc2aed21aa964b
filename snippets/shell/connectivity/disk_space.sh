# Free space and inodes where the data directory and its WAL live: a full disk stops PostgreSQL
# page: runbooks/database-connectivity.md
# needs: pg
# user: erpgo_monitor
set -euo pipefail
# Run it on the database host. With the server down, set PGDATA to the data directory;
# with it up, the server says where its data lives (SHOW data_directory).
datadir="${PGDATA:-$(psql -X -At -c 'SHOW data_directory')}"
if [ ! -d "$datadir" ]; then
    echo "$datadir is not on this host: run this on the database host"
    exit 1
fi
# pg_wal may be a symbolic link to a disk of its own: df follows it.
df -h "$datadir" "$datadir/pg_wal"
df -i "$datadir"
