# IP blocking: one Redis key with a TTL per brute-force or credential-stuffing address of the last 15 minutes
# page: runbooks/authentication-failures.md
# mode: writes
# changes: Redis: each attacking address gets a block key that expires after an hour
# needs: pg,redis
# user: pg=erpgo_monitor, redis=erpgo_admin
set -euo pipefail
# ERPGo refuses logins from an address while erpgo:blocked_ip:<address> exists. The
# value says why; the key expires by itself after BLOCK_SECONDS (default: one hour).
# Addresses of a distributed attack are NOT blocked (each tried only a few times and the
# next attempt comes from a new one): protect the account instead. Running it again
# renews the TTL.
block_seconds="${BLOCK_SECONDS:-3600}"
psql -X -q -At -F ' ' -v ON_ERROR_STOP=1 -c "
    SELECT host(ip),
           CASE WHEN count(DISTINCT coalesce(user_id::text, lower(username))) >= 10
                THEN 'credential-stuffing'
                ELSE 'brute-force' END
      FROM login_attempts
     WHERE attempted_at >= now() - interval '15 minutes'
       AND NOT success
     GROUP BY ip
    HAVING count(*) >= 20
        OR count(DISTINCT coalesce(user_id::text, lower(username))) >= 10
     ORDER BY ip" |
    {
        blocked=0
        while read -r address attack; do
            reply=$(redis-cli --no-auth-warning -u "${REDIS_URL:?set REDIS_URL}" \
                SET "erpgo:blocked_ip:${address}" "${attack}" EX "${block_seconds}")
            if [ "${reply}" != "OK" ]; then
                echo "could not block ${address}: ${reply}" >&2
                exit 1
            fi
            echo "blocked ${address} (${attack}) for ${block_seconds} s"
            blocked=$((blocked + 1))
        done
        echo "${blocked} address(es) blocked"
    }
