# Replace the PostgreSQL server certificate in place, after checking that the new key matches it
# page: architecture/security.md
# lint-only: it writes the server's certificate files, which the harness's shared servers do not have; tests/test_secret_rotation.py runs it on a TLS server
# verified-by: tests/test_secret_rotation.py
set -euo pipefail
tls_dir="${PG_TLS_DIR:?set it to the directory of ssl_cert_file and ssl_key_file}"
new_cert="${NEW_CERT:?set NEW_CERT to the new certificate file (PEM)}"
new_key="${NEW_KEY:?set NEW_KEY to its private key file (PEM)}"
# A key that does not match makes the reload fail: check before touching the live files.
cert_key=$(openssl x509 -noout -pubkey -in "$new_cert")
if [ "$cert_key" != "$(openssl pkey -pubout -in "$new_key")" ]; then
    echo "$new_key is not the key of $new_cert: nothing changed" >&2
    exit 1
fi
openssl x509 -noout -checkend 86400 -in "$new_cert" >/dev/null \
    || { echo "$new_cert expires within a day: nothing changed" >&2; exit 1; }
owner="$(stat -c %u "$tls_dir/server.key")"
group="$(stat -c %g "$tls_dir/server.key")"
# Same paths as before (postgresql.conf does not change); each file replaced by a
# rename.
install -m 0600 -o "$owner" -g "$group" "$new_key" "$tls_dir/server.key.new"
install -m 0644 -o "$owner" -g "$group" "$new_cert" "$tls_dir/server.crt.new"
mv -f "$tls_dir/server.key.new" "$tls_dir/server.key"
mv -f "$tls_dir/server.crt.new" "$tls_dir/server.crt"
serial=$(openssl x509 -noout -serial -in "$tls_dir/server.crt")
echo "installed $serial; now reload the configuration"
