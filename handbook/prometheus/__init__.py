"""The Prometheus side: alert rules, PromQL, metric names and the real tools that judge them.

Holds ``alerts`` (the rules file as objects, and the alerts the handbook promises),
``ruletests`` (their promtool unit tests and what those must cover), ``promql``
(reading an expression with promql-parser: metric names, matchers, threshold),
``promtool`` and ``alertmanager`` (the real checkers, messages pointed at
``file:line``), ``tools`` (finding promtool, amtool and friends), ``metrics`` (ERPGo's
metric catalogue, the exporters' names, and the check that alerts use only those),
``exporters`` (the real postgres/redis exporters on the test servers) and
``monitoring`` (prometheus.yml, Grafana and Jaeger files).

May import: paths, yamlfile, snippet, site, servers.
"""
