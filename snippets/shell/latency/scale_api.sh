# Give the API more replicas by raising the autoscaler's floor (and ceiling)
# page: runbooks/high-latency.md
# lint-only: needs kubectl access to the production cluster
set -euo pipefail
# Scaling the Deployment directly would be undone by the HorizontalPodAutoscaler:
# raise its minReplicas instead, and put it back once the incident is over.
MIN_REPLICAS=${MIN_REPLICAS:?set MIN_REPLICAS, e.g. 6}
MAX_REPLICAS=${MAX_REPLICAS:?set MAX_REPLICAS, at least MIN_REPLICAS}
kubectl --namespace erpgo patch hpa erpgo-api --type merge \
    --patch "{\"spec\": {\"minReplicas\": ${MIN_REPLICAS},
               \"maxReplicas\": ${MAX_REPLICAS}}}"
kubectl --namespace erpgo rollout status deployment/erpgo-api --timeout=5m
