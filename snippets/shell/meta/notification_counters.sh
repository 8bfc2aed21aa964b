# Alertmanager's own counts of the notifications it sent and failed to send, per integration
# page: runbooks/alertmanager-notifications-failing.md
# lint-only: needs the production Alertmanager (ALERTMANAGER_URL)
# verified-by: tests/test_meta_monitoring.py
set -euo pipefail
: "${ALERTMANAGER_URL:?set ALERTMANAGER_URL, e.g. http://alertmanager.monitoring:9093}"
curl --fail --silent --show-error --max-time 10 \
    "$ALERTMANAGER_URL/metrics" |
    grep -E '^alertmanager_notifications_(failed_)?total\{' |
    sort
