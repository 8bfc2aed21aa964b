# Blue-green, step 2: point the erpgo-api Service at the green slot (all traffic at once)
# page: procedures/deployment.md
# lint-only: needs a Kubernetes cluster running ERPGo, which the tests do not have
set -euo pipefail
slot=${SLOT:-green}
kubectl --namespace erpgo patch service erpgo-api --type merge \
  --patch "{\"spec\":{\"selector\":{\"slot\":\"${slot}\"}}}"
# The endpoints must now be the pods of that slot, and there must be some.
kubectl --namespace erpgo get endpointslices \
  --selector kubernetes.io/service-name=erpgo-api --output wide
kubectl --namespace erpgo get pods \
    --selector "app.kubernetes.io/name=erpgo-api,slot=${slot}"
