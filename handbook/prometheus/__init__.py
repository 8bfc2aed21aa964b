"""The Prometheus side: alert rules, PromQL, metric names and the real tools that judge them.

Holds ``alerts`` (the rules file and its unit tests as objects), ``promql`` (reading an
expression: metric names, matchers, threshold), ``promtool`` and ``alertmanager`` (the
real checkers, messages pointed at ``file:line``), ``tools`` (finding promtool, amtool
and friends), ``metrics`` (ERPGo's metric catalogue and the exporters' names),
``exporters`` (the real postgres/redis exporters on the test servers) and
``monitoring`` (prometheus.yml, Grafana and Jaeger files).

May import: paths, yamlfile, snippet, servers.
"""
