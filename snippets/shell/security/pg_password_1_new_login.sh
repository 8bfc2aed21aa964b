# Rotate the PostgreSQL password, step 1: give the standby login role a new password and publish it
# page: architecture/security.md
# needs: pg
# mode: writes
# changes: the standby login role's password, and the secret file, which names it from now on
# user: postgres
set -euo pipefail
# The secret ERPGo reads (ERPGO_DB_USER, ERPGO_DB_PASSWORD); here a file, written
# atomically.
secret_file="${ERPGO_DB_SECRET_FILE:-./erpgo-db.env}"
current="erpgo_app_blue"  # the first rotation starts from blue
if [ -f "$secret_file" ]; then
    current="$(sed -n 's/^ERPGO_DB_USER=//p' "$secret_file")"
fi
case "$current" in
    erpgo_app_blue) standby=erpgo_app_green ;;
    erpgo_app_green) standby=erpgo_app_blue ;;
    *) echo "$secret_file: ERPGO_DB_USER=$current is neither" \
            "erpgo_app_blue nor erpgo_app_green" >&2
       exit 1 ;;
esac
new_password="$(openssl rand -hex 32)"
# The password reaches psql through its environment (\getenv), never its command line,
# and is kept out of the server log and pg_stat_statements. The live role is not
# touched: its sessions and new logins go on working until the secret changes.
ERPGO_NEW_PASSWORD="$new_password" \
    psql -X -q -v ON_ERROR_STOP=1 -v role="$standby" <<'SQL'
\getenv new_password ERPGO_NEW_PASSWORD
BEGIN;
SET LOCAL log_statement = 'none';
SET LOCAL log_min_duration_statement = -1;
SET LOCAL pg_stat_statements.track_utility = off;
SELECT 'CREATE ROLE erpgo_app NOLOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'erpgo_app') \gexec
SELECT format('CREATE ROLE %I LOGIN IN ROLE erpgo_app', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN PASSWORD :'new_password';
COMMIT;
SQL
umask 077
printf 'ERPGO_DB_USER=%s\nERPGO_DB_PASSWORD=%s\n' "$standby" "$new_password" \
    > "$secret_file.new"
mv -f "$secret_file.new" "$secret_file"
echo "$standby has a new password; $secret_file now names it." \
    "Roll the pods, then run step 2."
