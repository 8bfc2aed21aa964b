# Can this host reach the database? Name resolution, then a TCP connect (or the Unix socket file)
# page: runbooks/database-connectivity.md
# needs: pg
# mode: writes
# changes: nothing: a name lookup and one TCP connection
# via: pgbouncer
# user: erpgo_app_blue
set -euo pipefail
# Run it where the failing client runs (an API pod, the exporter's host). Exit codes:
# 0 reachable, 2 nothing listens or a firewall drops it, 3 the name does not resolve.
host="${PGHOST:-/var/run/postgresql}"
port="${PGPORT:-5432}"
case "$host" in
/*)
    socket="$host/.s.PGSQL.$port"
    if [ -S "$socket" ]; then
        echo "socket: $socket exists"
    else
        echo "socket: $socket missing: the server is down or listens elsewhere"
        exit 2
    fi ;;
*)
    if ! addresses=$(getent ahosts "$host" | awk '{ print $1 }' | sort -u |
        paste -sd ' '); then
        echo "dns: $host does not resolve:" \
            "check the name (ERPGO_DB_HOST) and the resolver"
        exit 3
    fi
    echo "dns: $host -> $addresses"
    # shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
    if timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' probe "$host" "$port" \
        2>/dev/null; then
        echo "tcp: $host:$port accepts connections"
    else
        echo "tcp: $host:$port refused or timed out: the server is down," \
            "or a firewall or security group drops it"
        exit 2
    fi ;;
esac
