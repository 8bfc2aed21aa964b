# The certificate PostgreSQL presents to a new connection: serial, subject and expiry
# page: architecture/security.md
# lint-only: the harness's shared servers run without TLS; tests/test_secret_rotation.py runs it on a TLS server
# verified-by: tests/test_secret_rotation.py
set -euo pipefail
openssl s_client -starttls postgres -connect "${PGHOST}:${PGPORT:-5432}" \
    </dev/null 2>/dev/null \
    | openssl x509 -noout -serial -subject -enddate
