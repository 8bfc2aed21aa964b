"""Incident drills, free of pytest: workloads, injected incidents, parsers, recovery figures.

``common`` is what every drill uses: running a page's snippet through the runner of its
kind, waiting for a condition, requiring a tool, ``DrillError``, set-up SQL and client
connections (psycopg, redis-py). One module per runbook's drill holds its workload and
incident: ``auth``, ``cache``, ``connectivity``, ``deploy``, ``errors``, ``latency``,
``pool``, ``rotation``. The disaster-recovery drills are ``backup`` (backup and
point-in-time restores), ``promotion``, ``failover_monitoring`` (the alert clearing
once Prometheus follows the promoted primary) and ``sentinel``, each returning a typed result of
what it checked and measured, on servers made with ``local`` (the server account, crashes,
servers started from another's data) and rows counted by ``orders``; ``objectives`` holds
the RTO/RPO targets and ``build/dr-report.json``, and ``dr`` is
``python -m handbook.drills.dr``. ``alertpath`` runs the whole alert path on the real
programs (Prometheus, Alertmanager, the exporters, ``handbook respond``); ``pathreport``
keeps its figures in ``build/alert-path.json``, which the Sphinx build reads.

May import: paths, snippet, servers, runners, schema, prometheus.
"""
