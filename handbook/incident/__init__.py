"""Executable runbooks: a runbook's read-only investigation, run during an incident.

``runbooks`` reads each runbook page's investigation steps (its ``{snippet}`` includes
under "Investigation", in the page's order, with the title and "what to look for" of
each) and maps an alert to its runbook by the rules' ``runbook_url``; ``verdicts`` holds
the rules that name a cause from a step's result (pool above 90 %, a blocker found, a
hit rate under 70 %); ``diagnose`` runs the steps through ``handbook.runners`` against
the servers the engineer points it at and writes the findings as text, markdown or
JSON (``handbook diagnose``, ``python -m handbook diagnose``); ``respond`` is Alertmanager's
webhook receiver (``handbook respond``): it runs ``diagnose`` for each firing alert and
writes an incident note.

May import: paths, snippet, site, yamlfile, runners.
"""
