# Rolling update: new image on the Deployment, wait until every pod is ready, or stop
# page: procedures/deployment.md
# lint-only: needs a Kubernetes cluster running ERPGo, which the tests do not have
set -euo pipefail
release=${RELEASE:?set RELEASE to the version tag to deploy, e.g. 1.5.0}
kubectl --namespace erpgo set image deployment/erpgo-api \
  erpgo-api="registry.example.com/erpgo/erpgo-api:${release}"
kubectl --namespace erpgo annotate deployment/erpgo-api --overwrite \
  kubernetes.io/change-cause="deploy ${release}"
# maxUnavailable 0: old pods serve until new ones pass their readiness probe.
kubectl --namespace erpgo rollout status deployment/erpgo-api --timeout=10m
kubectl --namespace erpgo get pods --selector app.kubernetes.io/name=erpgo-api \
  --output custom-columns=POD:.metadata.name,IMAGE:.spec.containers[0].image,\
READY:.status.containerStatuses[0].ready
