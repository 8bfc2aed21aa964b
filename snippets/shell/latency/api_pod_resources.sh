# CPU and memory of the API pods against their limits, and what the autoscaler is doing
# page: runbooks/high-latency.md
# lint-only: needs kubectl access to the production cluster
set -euo pipefail
kubectl --namespace erpgo top pods --selector app.kubernetes.io/name=erpgo-api
kubectl --namespace erpgo get hpa erpgo-api
kubectl --namespace erpgo describe hpa erpgo-api | tail -n 20
