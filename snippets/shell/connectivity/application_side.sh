# What the API sees: its pods, their readiness, and their recent database errors
# page: runbooks/database-connectivity.md
# lint-only: needs kubectl access to the production cluster
set -euo pipefail
namespace="${NAMESPACE:-erpgo}"
kubectl -n "$namespace" get pods -l app.kubernetes.io/name=erpgo-api -o wide
kubectl -n "$namespace" logs -l app.kubernetes.io/name=erpgo-api \
    --since=10m --tail=200 --prefix |
    grep -Ei 'database|postgres|connect|pq:|sql:' | tail -n 40
# The readiness probe checks PostgreSQL and Redis: ask one pod directly.
kubectl -n "$namespace" exec deploy/erpgo-api -- \
    wget -qO- http://127.0.0.1:8080/health/ready
