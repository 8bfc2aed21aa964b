# Measure the test coverage of the module you changed; below 90 % the run fails
# page: onboarding/testing.md
# lint-only: it runs from a checkout, not the scratch dir of the snippet harness; tests/test_onboarding.py runs it there
# verified-by: tests/test_onboarding.py
set -euo pipefail
python -m pytest -q -p no:cacheprovider \
  --cov=handbook.guide.workflow --cov-report=term-missing --cov-fail-under=90 \
  tests/test_workflow.py
