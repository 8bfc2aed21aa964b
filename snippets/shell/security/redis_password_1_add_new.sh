# Rotate the Redis password, step 1: add a second password to the ACL user; both work from now on
# page: architecture/security.md
# needs: redis
# mode: writes
# changes: the Redis ACL user: a second password, and the secret file holds the new one
# user: erpgo_admin
set -euo pipefail
secret_file="${ERPGO_REDIS_SECRET_FILE:-./erpgo-redis.env}"
user="${ERPGO_REDIS_USERNAME:-erpgo_app}"
old_password=""
if [ -f "$secret_file" ]; then
    old_password="$(sed -n 's/^ERPGO_REDIS_PASSWORD=//p' "$secret_file")"
fi
new_password="$(openssl rand -hex 32)"
# printf is a shell builtin: the password goes to redis-cli on stdin, not on a command
# line. ">password" adds a password and keeps the ones the user already has.
reply="$(printf 'ACL SETUSER %s >%s\n' "$user" "$new_password" \
    | redis-cli --no-auth-warning -u "$REDIS_URL")"
if [ "$reply" != "OK" ]; then
    echo "ACL SETUSER $user: $reply" >&2
    exit 1
fi
umask 077
{
    printf 'ERPGO_REDIS_USERNAME=%s\nERPGO_REDIS_PASSWORD=%s\n' "$user" "$new_password"
    if [ -n "$old_password" ]; then
        printf 'ERPGO_REDIS_PREVIOUS_PASSWORD=%s\n' "$old_password"
    fi
} > "$secret_file.new"
mv -f "$secret_file.new" "$secret_file"
echo "$user accepts the old and the new password; $secret_file has the new one." \
    "Roll the pods, then run step 2."
