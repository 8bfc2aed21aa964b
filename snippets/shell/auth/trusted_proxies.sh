# Before blocking: the proxy and load balancer ranges ERPGo takes the client address from (never block these)
# page: runbooks/authentication-failures.md
# lint-only: needs the Kubernetes cluster running ERPGo, which the tests do not have
set -euo pipefail
# ERPGo records the address from X-Forwarded-For only when the request comes through one
# of these CIDRs (ERPGO_RATE_LIMIT_TRUSTED_PROXIES). Empty behind a load balancer: every
# login appears to come from the load balancer, and blocking that address locks everyone
# out.
kubectl --namespace erpgo get configmap erpgo-config \
    --output jsonpath='{.data.ERPGO_RATE_LIMIT_TRUSTED_PROXIES}{"\n"}'
