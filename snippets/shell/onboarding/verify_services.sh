# Load the environment into this terminal and check both servers answer, with the data loaded
# page: onboarding/setup.md
# lint-only: it is one step of the setup sequence, run in order in a new hire's clean HOME
# verified-by: tests/test_onboarding.py
set -euo pipefail
eval "$(python -m handbook.guide.devservers env)"
psql -XAtc 'SELECT 1'
psql -XAtc 'SELECT count(*) > 0 AS seeded FROM users'
redis-cli --no-auth-warning -u "$REDIS_URL" PING
