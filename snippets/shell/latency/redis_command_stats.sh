# Redis commands by average time per call, from INFO commandstats
# page: runbooks/high-latency.md
# needs: redis
# user: erpgo_monitor
set -euo pipefail
# Counters are cumulative since the server started or CONFIG RESETSTAT. A command
# with a high usec_per_call (KEYS, SMEMBERS or SORT on a big key, a long Lua script)
# blocks every other client while it runs.
: "${REDIS_URL:?set REDIS_URL, e.g. redis://erpgo_monitor:PASSWORD@host:6379/0}"
redis-cli -e --no-auth-warning -u "$REDIS_URL" \
    INFO commandstats |
    tr -d '\r' |
    awk -F'[:,=]' '
        /^cmdstat_/ {
            for (i = 2; i < NF; i += 2) { v[$i] = $(i + 1) }
            printf "%12.1f usec/call %10d calls  %s\n",
                v["usec_per_call"], v["calls"], substr($1, 9)
        }' |
    sort -g -r |
    head -n 10
