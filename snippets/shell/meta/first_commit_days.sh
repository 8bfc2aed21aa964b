# Onboarding: days from each new engineer's start date to their first commit
# page: procedures/metrics.md
# lint-only: needs a clone of the ERPGo repository and the team's list of start dates
# verified-by: tests/test_meta_monitoring.py
set -euo pipefail
# STARTS names a file of "e-mail start-date" lines, e.g. "ana@erpgo.com 2026-11-02".
# Run it inside the clone; `git fetch` first so that every branch's commits count.
while read -r email start; do
    first=$(git log --all --reverse --format=%as --author="<${email}>" | sed -n 1p)
    if [ -z "${first}" ]; then
        echo "${email}: no commit yet (started ${start})"
        continue
    fi
    days=$(( ($(date -u -d "${first}" +%s) - $(date -u -d "${start}" +%s)) / 86400 ))
    echo "${email}: first commit ${first}, ${days} days after starting on ${start}"
done < "${STARTS:?set STARTS to the file of new engineers and their start dates}"
