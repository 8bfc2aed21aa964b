# After a failover: which postgres target Prometheus labels primary and replica, whether each is up, and whether PostgreSQLDown still fires
# page: architecture/disaster-recovery.md
# lint-only: needs the production Prometheus (PROMETHEUS_URL)
# verified-by: tests/drills/test_disaster_recovery.py, handbook/drills/failover_monitoring.py
set -euo pipefail
prometheus="${PROMETHEUS_URL:?set it, e.g. http://prometheus.monitoring.svc:9090}"
# One line per postgres target: role label, address, pg_up (1: its server answers).
curl --fail --silent --show-error --max-time 10 --get \
    --data-urlencode 'query=pg_up{job="postgres"}' "${prometheus}/api/v1/query" |
    jq --raw-output '.data.result | sort_by(.metric.role // "")[]
        | "\(.metric.role // "no role") \(.metric.instance) pg_up=\(.value[1])"'
# Then PostgreSQLDown, and ExporterSeriesAbsent for the postgres job, if active.
curl --fail --silent --show-error --max-time 10 "${prometheus}/api/v1/alerts" |
    jq --raw-output '[.data.alerts[]
        | select(.labels.alertname == "PostgreSQLDown"
            or (.labels.alertname == "ExporterSeriesAbsent"
                and .labels.job == "postgres"))
        | "\(.labels.alertname) \(.state) \(.labels.instance // "no target")"
          + " role=\(.labels.role // "none")"]
        | if length == 0
          then "no PostgreSQLDown or postgres ExporterSeriesAbsent alert"
          else .[] end'
