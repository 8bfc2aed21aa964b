# Canary, step 2: change the share of requests the canary gets (0 takes it out of traffic)
# page: procedures/deployment.md
# lint-only: needs a Kubernetes cluster with ingress-nginx running ERPGo, which the tests do not have
set -euo pipefail
weight=${WEIGHT:?set WEIGHT to a percentage: 10, 25, 50, then promote}
kubectl --namespace erpgo annotate ingress erpgo-api-canary --overwrite \
  nginx.ingress.kubernetes.io/canary-weight="${weight}"
kubectl --namespace erpgo get ingress erpgo-api-canary \
  --output \
  jsonpath='{.metadata.annotations.nginx\.ingress\.kubernetes\.io/canary-weight}{"\n"}'
