"""ERPGo's reference schema and the databases snippets run in.

Holds ``migrations`` (golang-migrate files under ``snippets/migrations``, applied and
rolled back the way a reader would), ``seed`` (deterministic data at several scales),
``databases`` (which database and user a snippet gets, by its mode) and
``diagnostics`` (what a read-only diagnostic costs on a production-sized database).

May import: paths, snippet, servers.
"""
