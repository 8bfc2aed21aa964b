# Canary, step 3: promote: the stable track runs the new release, then the canary leaves traffic
# page: procedures/deployment.md
# lint-only: needs a Kubernetes cluster with ingress-nginx running ERPGo, which the tests do not have
set -euo pipefail
release=${RELEASE:?set RELEASE to the version tag the canary runs}
kubectl --namespace erpgo set image deployment/erpgo-api-stable \
  erpgo-api="registry.example.com/erpgo/erpgo-api:${release}"
kubectl --namespace erpgo rollout status deployment/erpgo-api-stable --timeout=10m
kubectl --namespace erpgo annotate ingress erpgo-api-canary --overwrite \
  nginx.ingress.kubernetes.io/canary-weight=0
kubectl --namespace erpgo scale deployment/erpgo-api-canary --replicas=0
