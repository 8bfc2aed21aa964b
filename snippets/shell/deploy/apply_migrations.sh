# Apply the release's migrations with golang-migrate, then show the version it recorded
# page: procedures/deployment.md
# lint-only: the golang-migrate CLI is not installed here; the tests apply the same files with handbook.schema.migrations, which records schema_migrations the same way
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgres://erpgo_migrate@db:5432/erpgo}"
migrations=${MIGRATIONS_DIR:-migrations}
migrate -path "$migrations" -database "$DATABASE_URL" up
migrate -path "$migrations" -database "$DATABASE_URL" version
