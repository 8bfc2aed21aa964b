# Stop the dev servers at the end of the day (start them again tomorrow; data is not kept)
# page: onboarding/setup.md
# lint-only: it is one step of the setup sequence, run in order in a new hire's clean HOME
# verified-by: tests/test_onboarding.py
set -euo pipefail
python -m handbook.guide.devservers stop
