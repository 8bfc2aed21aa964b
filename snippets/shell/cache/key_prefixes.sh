# Memory and TTLs by key prefix, from a sample of about 10,000 keys: what fills the cache, and whether it can be evicted
# page: runbooks/low-cache-hit-rate.md
# mode: read-only
# needs: redis
# user: erpgo_monitor
set -euo pipefail
# The prefix is the key up to its last ':'. Keys without a TTL (no_ttl) never expire,
# and a volatile-* policy never evicts them. SCAN walks the keyspace in steps without
# blocking it; MEMORY USAGE and TTL go through one pipelined redis-cli (keys must hold
# no spaces). -e: an error reply (NOPERM, WRONGPASS) fails the command instead of
# printing as output.
cli=(redis-cli -e --no-auth-warning -u "${REDIS_URL:?set REDIS_URL}")
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
cursor=0
: > "${work}/keys"
while :; do
    "${cli[@]}" SCAN "${cursor}" COUNT 1000 > "${work}/page"
    cursor=$(head -n 1 "${work}/page")
    # an empty page prints a blank line
    tail -n +2 "${work}/page" | awk 'NF' >> "${work}/keys"
    if [ "${cursor}" = 0 ] || [ "$(wc -l < "${work}/keys")" -ge 10000 ]; then
        break
    fi
done
awk '{ print "MEMORY USAGE " $0; print "TTL " $0 }' "${work}/keys" |
    "${cli[@]}" > "${work}/replies"
if grep -Eq '^(ERR|NOPERM|NOAUTH|WRONGPASS|LOADING)' "${work}/replies"; then
    grep -Em 1 '^(ERR|NOPERM|NOAUTH|WRONGPASS|LOADING)' "${work}/replies" >&2
    exit 1
fi
paste "${work}/keys" <(paste - - < "${work}/replies") |
    awk -F'\t' '
        {
            prefix = $1; sub(/[^:]*$/, "", prefix); if (prefix == "") prefix = "(none)"
            keys[prefix]++; bytes[prefix] += $2
            if ($3 == -1) no_ttl[prefix]++
        }
        END {
            printf "%-24s %8s %12s %8s\n", "prefix", "keys", "bytes", "no_ttl"
            for (p in keys)
                printf "%-24s %8d %12d %8d\n", p, keys[p], bytes[p], no_ttl[p]
        }' |
    { read -r header; echo "${header}"; sort -k3,3nr; }
