# Rotate the Redis password, step 2: once every client uses the new password, remove the old one
# page: architecture/security.md
# needs: redis
# mode: writes
# changes: the Redis ACL user: the old password stops working
# user: erpgo_admin
set -euo pipefail
secret_file="${ERPGO_REDIS_SECRET_FILE:-./erpgo-redis.env}"
user="${ERPGO_REDIS_USERNAME:-erpgo_app}"
old_password=""
if [ -f "$secret_file" ]; then
    old_password="$(sed -n 's/^ERPGO_REDIS_PREVIOUS_PASSWORD=//p' "$secret_file")"
fi
if [ -z "$old_password" ]; then
    echo "$secret_file holds no previous password: nothing to remove"
    exit 0
fi
# "<password" removes exactly that password; the new one stays.
reply="$(printf 'ACL SETUSER %s <%s\n' "$user" "$old_password" \
    | redis-cli --no-auth-warning -u "$REDIS_URL")"
if [ "$reply" != "OK" ]; then
    echo "ACL SETUSER $user: $reply" >&2
    exit 1
fi
umask 077
grep -v '^ERPGO_REDIS_PREVIOUS_PASSWORD=' "$secret_file" > "$secret_file.new"
mv -f "$secret_file.new" "$secret_file"
echo "$user accepts only the new password."
