"""The authentication-failures drill's attacks, and what the runbook's outputs must show.

Three attacks are written into the ``login_attempts`` of a drill's own database copy, all
in the last ten minutes, from documentation address ranges the seed never uses (the
seed's traffic comes from 198.18.0.0/15):

* brute force: one address, one account, many passwords;
* credential stuffing: a few addresses, each trying a list of leaked logins, two of
  which work (those accounts are compromised);
* distributed: many addresses, two tries each, all on one account.

``refused_logins`` answers "would ERPGo refuse this login right now?" from the same
state the runbook changes: the account's ``locked_until`` and the ``erpgo:blocked_ip``
keys in Redis (read with redis-py, as ERPGo reads them).
"""

from __future__ import annotations

from dataclasses import dataclass

from handbook.drills.common import psql, redis_client
from handbook.servers.base import Server

BRUTE_FORCE_IP = "203.0.113.7"
BRUTE_FORCE_ACCOUNT = "user000042"
BRUTE_FORCE_TRIES = 240
STUFFING_IPS = ("198.51.100.23", "198.51.100.24", "198.51.100.25")
STUFFING_KNOWN_USERS = range(100, 160)  # user ids whose email is in the leaked list
STUFFING_COMPROMISED = ("user000150", "user000151")  # their leaked password still works
STUFFING_UNKNOWN = 90  # leaked logins that match no ERPGo account
DISTRIBUTED_ACCOUNT = "user000007"
DISTRIBUTED_IPS = tuple(f"192.0.2.{n}" for n in range(1, 81))
DISTRIBUTED_TRIES_PER_IP = 2
BLOCK_KEY = "erpgo:blocked_ip:{}"

# Attempts are spread over the last 10 minutes, newest a few seconds ago, ids after the
# seed's. One statement per attack, deterministic (no random()).
INJECT_SQL = f"""
\\set ON_ERROR_STOP 1
BEGIN;
INSERT INTO login_attempts (user_id, username, ip, user_agent, success, reason, attempted_at)
SELECT u.id, u.username, '{BRUTE_FORCE_IP}', 'python-requests/2.31', false, 'bad_password',
       now() - interval '10 minutes' + n * interval '2 seconds'
  FROM users AS u, generate_series(1, {BRUTE_FORCE_TRIES}) AS n
 WHERE u.username = '{BRUTE_FORCE_ACCOUNT}';

-- Credential stuffing: every leaked login once, round-robin over the addresses.
INSERT INTO login_attempts (user_id, username, ip, user_agent, success, reason, attempted_at)
SELECT l.user_id, l.login,
       ('{{{",".join(STUFFING_IPS)}}}'::inet[])[1 + l.n % {len(STUFFING_IPS)}],
       'Mozilla/5.0 (X11; Linux x86_64)',
       l.works,
       CASE WHEN l.works THEN NULL
            WHEN l.user_id IS NULL THEN 'unknown_user' ELSE 'bad_password' END,
       now() - interval '9 minutes' + l.n * interval '3 seconds'
  FROM (SELECT row_number() OVER (ORDER BY login) AS n, user_id, login, works
          FROM (SELECT u.id AS user_id, u.email AS login,
                       u.username IN ({", ".join(f"'{a}'" for a in STUFFING_COMPROMISED)}) AS works
                  FROM users AS u
                 WHERE u.id BETWEEN {STUFFING_KNOWN_USERS.start}
                                AND {STUFFING_KNOWN_USERS.stop - 1}
                UNION ALL
                SELECT NULL, format('leaked%s@mail.example', lpad(k::text, 3, '0')), false
                  FROM generate_series(1, {STUFFING_UNKNOWN}) AS k) AS leaked) AS l;

-- Distributed: each address tries the same account a few times, minutes apart.
INSERT INTO login_attempts (user_id, username, ip, user_agent, success, reason, attempted_at)
SELECT u.id, u.email, '192.0.2.0'::inet + a, 'Mozilla/5.0 (Windows NT 10.0)', false,
       'bad_password', now() - interval '10 minutes' + (a * 5 + t * 60) * interval '1 second'
  FROM users AS u, generate_series(1, {len(DISTRIBUTED_IPS)}) AS a,
       generate_series(1, {DISTRIBUTED_TRIES_PER_IP}) AS t
 WHERE u.username = '{DISTRIBUTED_ACCOUNT}';
COMMIT;
"""


def bring_to_now(env: dict[str, str]) -> None:
    """Move the seeded logins and sessions forward so that the newest attempt is now.

    The template is seeded once per test session; a drill that runs much later would
    otherwise find no traffic in the last 15 minutes, the window the runbook reads.
    """
    psql(
        env,
        """BEGIN;
        CREATE TEMP TABLE shift ON COMMIT DROP AS
            SELECT now() - max(attempted_at) AS by FROM login_attempts;
        UPDATE login_attempts SET attempted_at = attempted_at + (SELECT by FROM shift);
        UPDATE sessions SET created_at = created_at + (SELECT by FROM shift),
                            expires_at = expires_at + (SELECT by FROM shift);
        UPDATE users SET locked_until = locked_until + (SELECT by FROM shift)
         WHERE locked_until IS NOT NULL;
        COMMIT;""",
    )


def inject_attacks(env: dict[str, str]) -> None:
    """Write the three attacks into the database ``env`` names (a drill's own copy)."""
    psql(env, INJECT_SQL)


@dataclass(frozen=True)
class Login:
    username: str
    ip: str


def recent_logins(env: dict[str, str], minutes: int = 15) -> list[Login]:
    """Successful logins of the last ``minutes`` from the seed's normal traffic (198.18/15)."""
    out = psql(
        env,
        f"""SELECT DISTINCT u.username, host(la.ip)
              FROM login_attempts AS la JOIN users AS u ON u.id = la.user_id
             WHERE la.attempted_at >= now() - interval '{minutes} minutes'
               AND la.success AND la.ip << '198.18.0.0/15'
             ORDER BY 1, 2""",
    )
    return [Login(*line.split("|")) for line in out.splitlines()]


def locked_accounts(env: dict[str, str]) -> set[str]:
    """Usernames whose ``locked_until`` is in the future."""
    out = psql(env, "SELECT username FROM users WHERE locked_until > now() ORDER BY 1")
    return set(out.split())


def blocked_addresses(redis_server: Server) -> dict[str, str]:
    """Every ``erpgo:blocked_ip:<address>`` key in Redis, as ``{address: reason}``."""
    with redis_client(redis_server) as client:
        keys = sorted(client.scan_iter(match=BLOCK_KEY.format("*"), count=1000))
        reasons = client.mget(keys) if keys else []
    return {
        key.removeprefix(BLOCK_KEY.format("")): why for key, why in zip(keys, reasons, strict=True)
    }


def block_ttl(redis_server: Server, address: str) -> int:
    """Seconds until the block of ``address`` expires (-1: never, -2: no block)."""
    with redis_client(redis_server) as client:
        return client.ttl(BLOCK_KEY.format(address))


def refused_logins(
    pg_env: dict[str, str], redis_server: Server, logins: list[Login]
) -> dict[Login, str]:
    """The logins ERPGo would refuse now, with why: a locked account or a blocked address."""
    locked = locked_accounts(pg_env)
    blocked = blocked_addresses(redis_server)
    refused = {}
    for login in logins:
        if login.username in locked:
            refused[login] = "account locked"
        elif login.ip in blocked:
            refused[login] = f"address blocked ({blocked[login.ip]})"
    return refused
