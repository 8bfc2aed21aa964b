# What Prometheus does with a job's targets: each one scraped (and its health), or dropped by relabelling
# page: runbooks/exporter-series-absent.md
# lint-only: needs the production Prometheus (PROMETHEUS_URL)
# verified-by: tests/test_meta_monitoring.py
set -euo pipefail
# JOB is the job label of the alert (postgres or redis).
job="${JOB:?set JOB to the job label of the alert, e.g. postgres}"
: "${PROMETHEUS_URL:?set PROMETHEUS_URL, e.g. http://prometheus.monitoring.svc:9090}"
curl --fail --silent --show-error --max-time 10 \
    "$PROMETHEUS_URL/api/v1/targets?state=any" |
    jq --raw-output --arg job "${job}" '
        ([.data.activeTargets[] | select(.labels.job == $job)
          | "scraped \(.labels.instance) role=\(.labels.role // "-")"
            + " health=\(.health) \(.lastError)"]
         + [.data.droppedTargets[] | select(.discoveredLabels.job == $job)
          | "dropped \(.discoveredLabels.__address__)"])
        | if length == 0
          then "job \($job): no target at all (not in the scrape configuration)"
          else .[] end'
