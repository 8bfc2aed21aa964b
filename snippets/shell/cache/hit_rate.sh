# Redis cache hit rate since the last statistics reset, from INFO stats
# page: runbooks/low-cache-hit-rate.md
# mode: read-only
# needs: redis
# user: erpgo_monitor
set -euo pipefail
# REDIS_URL names the server, the user and its password
# (redis://erpgo_monitor:PASSWORD@host:6379/0): redis-cli reads a URL without the
# password as if the user name were the password.
: "${REDIS_URL:?set REDIS_URL, e.g. redis://erpgo_monitor:PASSWORD@host:6379/0}"
redis-cli -e --no-auth-warning -u "$REDIS_URL" \
    INFO stats |
    tr -d '\r' |
    awk -F: '
        $1 == "keyspace_hits"   { hits = $2 }
        $1 == "keyspace_misses" { misses = $2 }
        $1 == "evicted_keys"    { evicted = $2 }
        END {
            total = hits + misses
            if (total == 0) { print "no lookups yet: hit rate undefined"; exit 0 }
            printf "hits=%d misses=%d evicted_keys=%d hit_rate=%.1f%%\n",
                hits, misses, evicted, 100 * hits / total
        }'
