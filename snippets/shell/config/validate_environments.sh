# Check every environment file against the options catalogue
# page: reference/configuration.md
# lint-only: it runs from a checkout, not the scratch dir of the snippet harness; tests/test_config_catalogue.py runs it there
# verified-by: tests/test_config_catalogue.py
set -euo pipefail
python3 -m handbook.confcheck.config_catalogue \
    conf/erpgo/development.env conf/erpgo/staging.env conf/erpgo/production.env
