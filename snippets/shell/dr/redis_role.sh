# Is this Redis a master or a replica, and how are its replicas doing
# page: architecture/disaster-recovery.md
# needs: redis
# user: erpgo_monitor
# run: paste
redis-cli -e --no-auth-warning -u "$REDIS_URL" ROLE | head -n 1
redis-cli -e --no-auth-warning -u "$REDIS_URL" INFO replication |
    grep -E '^(role|connected_slaves|slave[0-9]+|master_link_status):'
