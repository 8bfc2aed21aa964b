# Whether Redis answers, and whether it is refusing clients or commands
# page: runbooks/high-error-rate.md
# needs: redis
# user: erpgo_monitor
set -euo pipefail
# One CONFIG GET name per call: Redis 6.2 takes only one. rejected_connections
# rises when maxclients is reached; a master whose replica is down and with
# min-replicas-to-write set refuses writes (NOREPLICAS).
url=${REDIS_URL:?set REDIS_URL, e.g. redis://erpgo_monitor:PASSWORD@host:6379/0}
cli() { redis-cli -e --no-auth-warning -u "$url" "$@"; }
echo "ping: $(cli PING)"
cli CONFIG GET maxclients | paste -sd= -
cli INFO clients | tr -d '\r' | grep -E '^(connected_clients|blocked_clients):'
cli INFO stats | tr -d '\r' | grep -E '^(rejected_connections|total_error_replies):'
cli INFO replication | tr -d '\r' |
    grep -E '^(role|connected_slaves|min_slaves_good_slaves):'
