# The targets Prometheus cannot scrape right now: job, address, health and the scrape's error
# page: runbooks/target-down.md
# lint-only: needs the production Prometheus (PROMETHEUS_URL)
# verified-by: tests/test_meta_monitoring.py
set -euo pipefail
: "${PROMETHEUS_URL:?set PROMETHEUS_URL, e.g. http://prometheus.monitoring.svc:9090}"
curl --fail --silent --show-error --max-time 10 \
    "$PROMETHEUS_URL/api/v1/targets?state=active" |
    jq --raw-output '
        [.data.activeTargets[] | select(.health != "up")]
        | if length == 0 then "every target is up"
          else .[] | [.labels.job, .labels.instance, .health, .lastError] | @tsv end'
