# Is PostgreSQL accepting connections? pg_isready's exit code: 0 yes, 1 rejecting, 2 no response, 3 no attempt
# page: runbooks/database-connectivity.md
# needs: pg
# mode: writes
# changes: nothing: it asks the server whether it accepts connections
# via: pgbouncer
# user: erpgo_app_blue
set -euo pipefail
# PGHOST (a host name, an address or a socket directory) and PGPORT name the server.
# It does not log in: a server that refuses your password still reports "accepting
# connections". The script exits with pg_isready's own code, waiting at most 5 s.
pg_isready --timeout=5
