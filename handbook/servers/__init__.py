"""Real PostgreSQL and Redis servers for the tests, behind one interface.

``ServerPool`` (``pool.py``) lists what can be started (``candidates``/``labels``),
starts shared servers lazily (``get``) or dedicated ones for drills (``start_private``)
and stops everything at exit. Providers: ``postgres.py`` and ``redis.py`` (local
binaries), ``docker.py`` (testcontainers), ``external.py`` (HANDBOOK_PG_DSN,
HANDBOOK_REDIS_URL).

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
