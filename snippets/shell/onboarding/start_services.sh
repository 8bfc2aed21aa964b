# Start your own PostgreSQL and Redis, with the reference erpgo database, in the background
# page: onboarding/setup.md
# lint-only: it is one step of the setup sequence, run in order in a new hire's clean HOME
# verified-by: tests/test_onboarding.py
set -euo pipefail
python -m handbook.guide.devservers start
