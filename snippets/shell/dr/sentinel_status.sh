# Ask a Sentinel which server is the Redis master now, and whether a failover could get a quorum
# page: architecture/disaster-recovery.md
# lint-only: it needs running Sentinels, which the shared test servers are not; tests/drills/test_disaster_recovery.py runs it against three on throwaway servers
# verified-by: tests/drills/test_disaster_recovery.py, handbook/drills/sentinel.py
set -euo pipefail
# SENTINEL_URL: one of the sentinels, e.g. redis://127.0.0.1:26379; MASTER_NAME: default
# erpgo.
master="${MASTER_NAME:-erpgo}"
sentinel() { redis-cli --no-auth-warning -u "$SENTINEL_URL" "$@"; }
echo "master: $(sentinel SENTINEL get-master-addr-by-name "$master" | paste -sd: -)"
sentinel SENTINEL ckquorum "$master"
sentinel SENTINEL replicas "$master" | paste -sd' ' - |
    grep -o 'name [^ ]* .*flags [^ ]*' || true
