# Post the incident message to the channel's incoming webhook (Slack-compatible JSON)
# page: procedures/rollback.md
# lint-only: posts to the team's real chat webhook, which the tests must not reach
set -euo pipefail
: "${INCIDENT_WEBHOOK_URL:?set it to the webhook of the incident channel}"
bash snippets/shell/rollback/incident_message.sh \
  | jq --raw-input --slurp '{text: .}' \
  | curl --fail --silent --show-error --max-time 10 \
      --header 'Content-Type: application/json' --data @- "$INCIDENT_WEBHOOK_URL"
