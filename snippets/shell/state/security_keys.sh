# Security state in the cache: the IP blocks Redis holds, and how many keys it has evicted so far
# page: runbooks/low-cache-hit-rate.md
# mode: read-only
# needs: redis
# user: erpgo_monitor
set -euo pipefail
url="${REDIS_URL:?set REDIS_URL, e.g. redis://erpgo_monitor:PASSWORD@host:6379/0}"
# --scan walks the keyspace in small steps (SCAN), never blocking the server like KEYS.
blocks=$(redis-cli -e -u "$url" --no-auth-warning \
    --scan --pattern 'erpgo:blocked_ip:*' | wc -l)
evicted=$(redis-cli -e -u "$url" --no-auth-warning INFO stats | tr -d '\r' |
    sed -n 's/^evicted_keys://p')
echo "ip blocks: ${blocks}"
echo "evicted keys since the last restart or statistics reset: ${evicted}"
