# What changed on the API recently: rollout history, pod restarts and warning events
# page: runbooks/high-error-rate.md
# lint-only: needs kubectl access to the production cluster
set -euo pipefail
kubectl --namespace erpgo rollout history deployment/erpgo-api | tail -n 5
kubectl --namespace erpgo get pods --selector app.kubernetes.io/name=erpgo-api \
    --output custom-columns=POD:.metadata.name,STARTED:.status.startTime,\
RESTARTS:.status.containerStatuses[0].restartCount,IMAGE:.spec.containers[0].image
kubectl --namespace erpgo get events --field-selector type=Warning \
    --sort-by=.lastTimestamp | tail -n 20
