# Rotate the PostgreSQL password, step 2: once no session uses the old login role, retire it
# page: architecture/security.md
# needs: pg
# mode: writes
# changes: the old login role: it can no longer log in
# user: postgres
set -euo pipefail
secret_file="${ERPGO_DB_SECRET_FILE:-./erpgo-db.env}"
current="erpgo_app_blue"
if [ -f "$secret_file" ]; then
    current="$(sed -n 's/^ERPGO_DB_USER=//p' "$secret_file")"
fi
case "$current" in
    erpgo_app_blue) old=erpgo_app_green ;;
    erpgo_app_green) old=erpgo_app_blue ;;
    *) echo "$secret_file: ERPGO_DB_USER=$current is neither" \
            "erpgo_app_blue nor erpgo_app_green" >&2
       exit 1 ;;
esac
sessions="$(psql -X -A -t -q -v ON_ERROR_STOP=1 -v role="$old" <<'SQL'
SELECT count(*) FROM pg_stat_activity WHERE usename = :'role';
SQL
)"
if [ "$sessions" -ne 0 ]; then
    echo "$old still has $sessions session(s):" \
        "wait for every pod to use $current, then retry" >&2
    exit 1
fi
# NOLOGIN and no password: the old password stops working; step 1 of the next rotation
# gives this role a fresh one.
psql -X -q -v ON_ERROR_STOP=1 -v role="$old" <<'SQL'
SELECT format('ALTER ROLE %I WITH NOLOGIN PASSWORD NULL', :'role')
 WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SQL
echo "$old retired; ERPGo logs in as $current."
