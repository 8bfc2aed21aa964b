# Canary, step 1: one pod of the new release behind the canary Ingress at 10 % of requests
# page: procedures/deployment.md
# lint-only: needs a Kubernetes cluster with ingress-nginx running ERPGo, which the tests do not have
set -euo pipefail
release=${RELEASE:?set RELEASE to the version tag to deploy, e.g. 1.5.0}
kubectl apply --filename conf/kubernetes/canary/deployment-canary.yaml \
  --filename conf/kubernetes/canary/service.yaml
kubectl --namespace erpgo set image deployment/erpgo-api-canary \
  erpgo-api="registry.example.com/erpgo/erpgo-api:${release}"
kubectl --namespace erpgo rollout status deployment/erpgo-api-canary --timeout=10m
kubectl apply --filename conf/kubernetes/canary/ingress.yaml
