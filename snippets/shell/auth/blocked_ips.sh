# Addresses ERPGo refuses logins from right now: each erpgo:blocked_ip key, its reason and seconds left
# page: runbooks/authentication-failures.md
# mode: read-only
# needs: redis
set -euo pipefail
# --scan walks the keyspace in small steps (SCAN), never blocking the server like KEYS.
redis-cli --no-auth-warning -u "${REDIS_URL:?set REDIS_URL}" --scan --pattern 'erpgo:blocked_ip:*' |
    sort |
    while read -r key; do
        reason=$(redis-cli --no-auth-warning -u "${REDIS_URL}" GET "${key}")
        ttl=$(redis-cli --no-auth-warning -u "${REDIS_URL}" TTL "${key}")
        echo "${key#erpgo:blocked_ip:} ${reason} ttl=${ttl}s"
    done
