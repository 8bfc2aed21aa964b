# Blue-green, step 1: start the new release in the idle green slot and test it on the preview Service
# page: procedures/deployment.md
# lint-only: needs a Kubernetes cluster running ERPGo, which the tests do not have
set -euo pipefail
release=${RELEASE:?set RELEASE to the version tag to deploy, e.g. 1.5.0}
kubectl apply --filename conf/kubernetes/blue-green/service.yaml
kubectl apply --filename conf/kubernetes/blue-green/deployment-green.yaml
kubectl --namespace erpgo set image deployment/erpgo-api-green \
  erpgo-api="registry.example.com/erpgo/erpgo-api:${release}"
kubectl --namespace erpgo rollout status deployment/erpgo-api-green --timeout=10m
# Smoke test through the preview Service, which always selects the green slot.
kubectl --namespace erpgo run smoke-"$(date +%s)" --rm --stdin --restart=Never \
  --image=curlimages/curl:8.11.1 -- \
  curl --fail --silent --show-error --max-time 5 http://erpgo-api-preview/health/ready
