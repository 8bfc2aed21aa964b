# Does Alertmanager hold the Watchdog, and when did it last hear of it from Prometheus?
# page: runbooks/watchdog.md
# lint-only: needs the production Alertmanager (ALERTMANAGER_URL)
# verified-by: tests/test_meta_monitoring.py
set -euo pipefail
amtool --alertmanager.url="${ALERTMANAGER_URL:?set ALERTMANAGER_URL, e.g. http://alertmanager.monitoring.svc:9093}" \
    --output=extended alert query alertname=Watchdog
