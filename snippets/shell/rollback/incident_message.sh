# The message for the incident channel when a rollback starts (fields filled from the environment)
# page: procedures/rollback.md
# needs: pg
# user: erpgo_monitor
set -euo pipefail
schema=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT coalesce((SELECT version ||
  CASE WHEN dirty THEN ' (dirty)' ELSE '' END FROM schema_migrations LIMIT 1), 'none')")
cat <<MESSAGE
ERPGo emergency rollback: ${INCIDENT_ID:-<incident id>}
Severity: ${SEVERITY:-<SEV1 or SEV2>}
Status: ${STATUS:-rolling back}
Trigger: ${TRIGGER:-<alert name and its runbook link>}
Impact: ${IMPACT:-<who is affected and how>}
Decision: ${DECISION:-<roll back the app, the schema, or both>}
Release: ${RELEASE_FROM:-<running release>} -> ${RELEASE_TO:-<release to go back to>}
Schema version: $schema
Incident commander: ${COMMANDER:-<name>}
Started: ${STARTED:-$(date -u +%Y-%m-%dT%H:%MZ)}
Next update: ${NEXT_UPDATE:-in 15 minutes}
MESSAGE
