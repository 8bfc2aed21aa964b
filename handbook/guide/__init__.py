"""What the onboarding guide and the implementation summary promise, as code.

Holds ``onboarding`` (the setup steps in page order), ``devservers`` (a new hire's
PostgreSQL and Redis), ``workflow`` (branch-name and commit-message rules),
``runbook_template`` (the sections every runbook has), ``notification`` (the incident
message a rollback starts with) and ``requirements`` (the seed's requirements and the
tests that prove them).

May import: paths, snippet, servers, schema.
"""
