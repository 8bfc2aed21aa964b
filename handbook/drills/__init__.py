"""Helpers the incident drills share, free of pytest: workloads, injected incidents, parsers."""
