"""Incident drills, free of pytest: workloads, injected incidents, parsers, recovery figures.

Each drill module reproduces one incident on throwaway servers and runs the runbook's
snippets against it; ``dr`` measures the disaster-recovery drills into
``build/dr-report.json`` (``python -m handbook.drills.dr``).

May import: paths, snippet, servers, runners, schema.
"""
