# Does Alertmanager hold the Watchdog, and when did it last hear of it from Prometheus?
# page: runbooks/watchdog.md
# lint-only: needs the production Alertmanager (ALERTMANAGER_URL)
# verified-by: tests/test_meta_monitoring.py
set -euo pipefail
: "${ALERTMANAGER_URL:?set ALERTMANAGER_URL, e.g. http://alertmanager.monitoring:9093}"
amtool --alertmanager.url="$ALERTMANAGER_URL" \
    --output=extended alert query alertname=Watchdog
