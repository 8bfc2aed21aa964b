# Redis cache hit rate since the last statistics reset, from INFO stats
# page: runbooks/low-cache-hit-rate.md
# mode: read-only
# needs: redis
# user: erpgo_monitor
set -euo pipefail
# REDIS_URL names the server and user (redis://user@host:port); the password comes
# from REDISCLI_AUTH so that it never appears in the process list.
redis-cli -e -u "${REDIS_URL:?set REDIS_URL to the Redis server, e.g. redis://monitor@host:6379}" \
    --no-auth-warning INFO stats |
    tr -d '\r' |
    awk -F: '
        $1 == "keyspace_hits"   { hits = $2 }
        $1 == "keyspace_misses" { misses = $2 }
        $1 == "evicted_keys"    { evicted = $2 }
        END {
            total = hits + misses
            if (total == 0) { print "no lookups yet: hit rate undefined"; exit 0 }
            printf "hits=%d misses=%d evicted_keys=%d hit_rate=%.1f%%\n", hits, misses, evicted, 100 * hits / total
        }'
