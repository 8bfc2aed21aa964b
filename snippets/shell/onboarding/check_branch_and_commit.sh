# Check a branch name and a commit message against the team's rules before you push
# page: onboarding/workflow.md
# lint-only: it runs from a checkout, not the scratch dir of the snippet harness; tests/test_workflow.py runs it there
# verified-by: tests/test_workflow.py
set -euo pipefail
python -m handbook.guide.workflow branch feat/123-pool-metrics
message=$(mktemp)
cat > "$message" <<'MSG'
fix(pool): close transactions left idle by the report job

The nightly report opened a transaction per page and never ended it,
so every run held one pool connection until the job exited.

Refs: #123
MSG
python -m handbook.guide.workflow commit "$message"
rm -f "$message"
