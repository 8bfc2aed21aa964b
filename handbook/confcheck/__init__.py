"""The checks of ``conf/``: each configuration file loaded into the program it configures.

Holds ``pgconf`` (postgresql.conf and pg_hba.conf booted on real PostgreSQL),
``redisconf`` (redis.conf, users.acl, sentinel.conf booted on real Redis),
``config_catalogue`` (ERPGo's options catalogue and the per-environment files),
``kubernetes`` (manifests validated against the API server's schemas) and ``names``
(the roles, users, channels, labels, settings, routes and panels conf/ defines, and
the names the pages cite, which must be among them).

May import: paths, yamlfile, servers, schema.
"""
