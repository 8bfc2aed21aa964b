# Roll the application back: the previous ReplicaSet (rolling), the blue slot, or no canary
# page: procedures/rollback.md
# lint-only: needs a Kubernetes cluster running ERPGo, which the tests do not have
set -euo pipefail
case "${STRATEGY:?set STRATEGY to rolling, blue-green or canary}" in
  rolling)
    kubectl --namespace erpgo rollout history deployment/erpgo-api
    kubectl --namespace erpgo rollout undo deployment/erpgo-api
    kubectl --namespace erpgo rollout status deployment/erpgo-api --timeout=5m
    ;;
  blue-green)
    # Blue still runs the previous release: switching the selector back is instant.
    kubectl --namespace erpgo patch service erpgo-api --type merge \
      --patch '{"spec":{"selector":{"slot":"blue"}}}'
    ;;
  canary)
    kubectl --namespace erpgo annotate ingress erpgo-api-canary --overwrite \
      nginx.ingress.kubernetes.io/canary-weight=0
    kubectl --namespace erpgo scale deployment/erpgo-api-canary --replicas=0
    ;;
  *)
    echo "STRATEGY must be rolling, blue-green or canary" >&2
    exit 2
    ;;
esac
