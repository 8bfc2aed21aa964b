# Log in for real and name why it fails: server down, login refused, server full, no such database
# page: runbooks/database-connectivity.md
# needs: pg
# mode: writes
# changes: nothing: it logs in as the application would, and out again
# via: pgbouncer
# user: erpgo_app_blue
set -euo pipefail
# Uses PGHOST, PGPORT, PGUSER, PGDATABASE and the password from ~/.pgpass or
# PGPASSWORD, exactly as the application's settings would (through PgBouncer:
# PGHOST=postgres-pooler...). Exit codes: 0 connected, 2 server down or unreachable (or
# PgBouncer cannot log in to it), 3 login refused (credentials, pg_hba.conf, TLS),
# 4 server or pool full (max_connections, PgBouncer's queue), 5 starting up, shutting
# down or recovering, 6 no such database, 1 anything else.
# The patterns are the English server and PgBouncer messages (lc_messages 'C' or
# 'en_US').
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}"
if out=$(psql -X -At -v ON_ERROR_STOP=1 \
    -c "SELECT 'connected to ' || current_database() || ' as ' || current_user
               || ', PostgreSQL ' || current_setting('server_version')" 2>&1); then
    echo "$out"
    exit 0
fi
echo "$out"
case "$out" in
*"server login has been failing"* | *"pgbouncer cannot connect to server"*)
    echo "verdict: PgBouncer cannot reach PostgreSQL: the pooler is up;" \
        "(readiness check against it) and pgbouncer_auth in pg_hba.conf"
    exit 2 ;;
*"query_wait_timeout"* | *"no more connections allowed (max_client_conn)"*)
    echo "verdict: PgBouncer full: clients waited for a server connection in vain" \
        "pool exhaustion runbook), or PostgreSQL stopped answering the pooler"
    exit 4 ;;
*"too many clients already"* | *"remaining connection slots are reserved"*)
    # PostgreSQL 15 says "...reserved for non-replication superuser connections",
    # 16 and later "...reserved for roles with the SUPERUSER attribute".
    echo "verdict: server full: every connection slot is taken" \
        "connection pool exhaustion runbook)"
    exit 4 ;;
*"database system is starting up"* | *"database system is shutting down"* | \
    *"in recovery mode"* | *"not yet accepting connections"*)
    echo "verdict: server starting, stopping or recovering:" \
        "run the readiness check again"
    exit 5 ;;
*"database \""*"\" does not exist"*)
    echo "verdict: no such database: check PGDATABASE (ERPGO_DB_NAME)," \
        "it from a backup"
    exit 6 ;;
*"password authentication failed"* | *"no pg_hba.conf entry"* | \
    *"role \""*"\" does not exist"* | \
    *"is not permitted to log in"* | *"authentication failed"*)
    echo "verdict: login refused: the server is up;" \
        ", the password (secret rotation) and pg_hba.conf"
    exit 3 ;;
*"SSL"* | *"certificate"*)
    echo "verdict: login refused at the TLS handshake: check sslmode," \
        "(ERPGO_DB_SSLROOTCERT) and the server certificate"
    exit 3 ;;
*"Connection refused"* | *"No such file or directory"* | \
    *"could not translate host name"* | *"timeout expired"* | *"No route to host"* | \
    *"Network is unreachable"* | *"server closed the connection"*)
    echo "verdict: server down or unreachable: run the network check," \
        "at the server"
    exit 2 ;;
*)
    echo "verdict: unrecognised failure: read the message above"
    exit 1 ;;
esac
