"""Real PostgreSQL and Redis servers for the tests, behind one interface.

``ServerPool`` (``pool.py``) lists what can be started (``candidates``/``labels``),
starts shared servers lazily (``get``) or dedicated ones for drills (``start_private``)
and stops everything at exit. Providers: ``postgres.py`` and ``redis.py`` (local
binaries), ``docker.py`` (testcontainers, on the engine of ``dockerengine.py``, with the host
files of ``dockerfiles.py``), ``external.py`` (HANDBOOK_PG_DSN,
HANDBOOK_REDIS_URL). Every server is set up as production is: ``accounts.py`` (the roles
and ACL users of conf/postgresql/roles.sql and conf/redis/users.acl), ``production.py``
(conf/'s postgresql.conf and redis.conf with a listed set of overrides), ``pgbouncer.py``
(conf/pgbouncer in front of a server); ``replies.py`` reads a redis-cli snippet's replies
by their protocol type.

May import: only the foundation modules.
"""

from .base import Candidate, Server, ServerConfigError, ServerStartError, ServerUnavailable
from .pool import HOW_TO_GET_SERVERS, ServerPool, default_pool

__all__ = [
    "HOW_TO_GET_SERVERS",
    "Candidate",
    "Server",
    "ServerConfigError",
    "ServerPool",
    "ServerStartError",
    "ServerUnavailable",
    "default_pool",
]
