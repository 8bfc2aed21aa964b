# Run a runbook's diagnostic query from its file, as the on-call engineer will
# page: onboarding/setup.md
# lint-only: it is one step of the setup sequence, run in order in a new hire's clean HOME
# verified-by: tests/test_onboarding.py
set -euo pipefail
eval "$(python -m handbook.guide.devservers env)"
psql -X -v ON_ERROR_STOP=1 -f snippets/sql/pool/connections_by_state.sql
