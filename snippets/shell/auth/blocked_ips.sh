# Addresses ERPGo refuses logins from right now, and the seconds left on each block
# page: runbooks/authentication-failures.md
# mode: read-only
# needs: redis
# user: erpgo_monitor
set -euo pipefail
# --scan walks the keyspace in small steps (SCAN), never blocking the server like KEYS.
# The monitoring user reads key names and TTLs, never values: why an address was blocked
# is in the output of the script that blocked it.
redis-cli -e --no-auth-warning -u "${REDIS_URL:?set REDIS_URL}" \
    --scan --pattern 'erpgo:blocked_ip:*' |
    sort |
    while read -r key; do
        ttl=$(redis-cli -e --no-auth-warning -u "${REDIS_URL}" TTL "${key}")
        echo "${key#erpgo:blocked_ip:} ttl=${ttl}s"
    done
