# The most frequent error messages in the API's logs over the last 15 minutes
# page: runbooks/high-error-rate.md
# lint-only: needs kubectl access to the production cluster
set -euo pipefail
# ERPGo logs one JSON object per line; level, msg and (for database errors) the
# SQLSTATE code: 40P01 is a deadlock, 40001 a serialization failure, 53300 too many
# connections, 57014 a statement timeout.
kubectl --namespace erpgo logs --selector app.kubernetes.io/name=erpgo-api \
    --since=15m --prefix=false \
    --max-log-requests 20 |
    grep -E '"level":"(error|fatal)"' |
    sed -E 's/.*"msg":"([^"]*)".*/\1/; s/[0-9]+/N/g' |
    sort | uniq -c | sort -rn | head -n 15
