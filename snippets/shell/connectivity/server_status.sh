# What the database host says: cluster state, the service's status, the last log lines
# page: runbooks/database-connectivity.md
# lint-only: needs systemd and a Debian PostgreSQL cluster on the database host
set -euo pipefail
# CLUSTER is "<major>/<name>", e.g. 15/main (pg_lsclusters lists them).
cluster="${CLUSTER:-15/main}"
unit="postgresql@${cluster/\//-}"
pg_lsclusters
systemctl status "$unit" --no-pager || true
journalctl -u "$unit" --since "-30 min" --no-pager | tail -n 50
# FATAL and PANIC lines name the cause: "No space left on device", "could not bind",
# "invalid value for parameter", a corrupted file.
grep -E 'FATAL|PANIC|LOG: +database system' \
    "/var/log/postgresql/postgresql-${cluster/\//-}.log" | tail -n 30
