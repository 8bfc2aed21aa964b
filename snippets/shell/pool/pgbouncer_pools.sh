# PgBouncer's pools and the clients waiting in them: cl_waiting above 0 means the pool is exhausted
# page: runbooks/connection-pool-exhaustion.md
# needs: pg
# via: pgbouncer
# user: erpgo_monitor
set -euo pipefail
# PGHOST and PGPORT: one PgBouncer pod of postgres-pooler; its admin console is the
# database "pgbouncer", where erpgo_monitor may run SHOW commands and nothing else.
# cl_active: clients with a server connection; cl_waiting: clients queued for one;
# sv_active/sv_idle: server connections in use/free; maxwait: the oldest wait, in
# seconds.
psql -X -d pgbouncer -c 'SHOW POOLS'
# Each waiting client: who, from where, for how long (wait, in seconds).
psql -X -A -F '|' -d pgbouncer -c 'SHOW CLIENTS' |
    awk -F'|' '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        NF > 1 && $col["state"] == "waiting" {
            n++
            printf "waiting: %s@%s from %s:%s for %ss (%s)\n",
                $col["user"], $col["database"],
                $col["addr"], $col["port"], $col["wait"], $col["application_name"]
        }
        END { printf "%d client(s) waiting for a server connection\n", n }'
