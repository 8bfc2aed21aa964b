# Start a stopped PostgreSQL with pg_ctl once the disk has room; does nothing if it already runs
# page: runbooks/database-connectivity.md
# mode: writes
# changes: the server: a stopped PostgreSQL is started
# needs: pg
# user: postgres
set -euo pipefail
# Run it on the database host with PGDATA set to the data directory, as root or as
# the directory's owner, with the server's own bin directory first on PATH. The
# start replays the WAL (crash recovery) before it accepts connections.
if pg_isready --quiet --timeout=5; then
    echo "already accepting connections: nothing to start"
    exit 0
fi
datadir="${PGDATA:?set PGDATA to the data directory of the stopped server}"
min_free_mb="${MIN_FREE_MB:-1024}"
free_mb=$(($(df --output=avail -k "$datadir" | tail -n 1) / 1024))
if [ "$free_mb" -lt "$min_free_mb" ]; then
    echo "only $free_mb MiB free for $datadir:" \
        "free space first (disk checks above), or it stops again"
    exit 1
fi
pg_ctl="$(command -v pg_ctl)" ||
    { echo "no pg_ctl on PATH: put the server's bin directory first"; exit 1; }
# PostgreSQL refuses to run as root: run pg_ctl as the owner of the data directory.
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
    as_owner=(runuser -u "$(stat -c %U "$datadir")" --)
fi
cd /
"${as_owner[@]}" "$pg_ctl" start --pgdata="$datadir" \
    --log="$datadir/pg_ctl-start.log" --wait --timeout=300
pg_isready --timeout=5
