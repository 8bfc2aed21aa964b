"""The helpers every drill shares (handbook/drills/common.py), each shown failing as it should.

A wait that never ends names the line that waited and the last error; a missing tool
says what to install; psql's aligned output reads back into rows; a page's snippet runs
through the runner of its kind, with the exit code as a field.
"""

from __future__ import annotations

import re

import pytest

from handbook.drills import common
from handbook.runners import Outcome
from handbook.servers.base import ServerUnavailable

ALIGNED = """\
 pid | state  | application
-----+--------+-------------
  42 | idle   | erpgo-api
  43 | active | erpgo-worker
(2 rows)

 total
-------
     2
(1 row)
"""


def test_a_wait_that_never_holds_names_the_waiting_line_and_the_last_error():
    calls = []

    def condition() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise common.DrillError("server still starting")
        return False

    with pytest.raises(common.DrillError) as failure:
        common.wait_for(condition, "the standby streaming", timeout=0.3)
    line = failure.traceback[0].lineno + 1  # the traceback counts from 0
    message = str(failure.value)
    assert message.startswith(f"tests/drills/test_common.py:{line}: the standby streaming "), (
        message
    )
    assert "did not happen within 0 s" in message
    assert len(calls) > 3, "the wait gave up before the bound"
    assert "DrillError: server still starting" not in message  # the last try did not raise


def test_a_wait_reports_the_error_it_kept_seeing():
    def refused() -> bool:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(common.DrillError, match="last try raised ConnectionRefusedError"):
        common.wait_for(refused, "the server to answer", timeout=0.1)


def test_a_wait_ends_at_once_on_an_error_that_is_not_a_not_yet():
    def broken() -> bool:
        raise KeyError("no such column")

    with pytest.raises(KeyError):
        common.wait_for(broken, "anything", timeout=30)


def test_a_wait_that_holds_returns():
    common.wait_for(lambda: True, "nothing", timeout=0)


def test_a_missing_tool_says_what_to_install():
    with pytest.raises(ServerUnavailable, match=re.escape("apt-get install erpgo-nothing")):
        common.require_tool("handbook-no-such-program", "erpgo-nothing")
    assert common.require_tool("bash", "bash").endswith("/bash")


def test_psql_tables_read_back_into_rows():
    first, second = common.tables(ALIGNED)
    assert first == [
        {"pid": "42", "state": "idle", "application": "erpgo-api"},
        {"pid": "43", "state": "active", "application": "erpgo-worker"},
    ]
    assert common.table(ALIGNED, -1) == second == [{"total": "2"}]
    with pytest.raises(common.DrillError, match="expected result table 2"):
        common.table(ALIGNED, 2)


def test_require_fails_with_the_runners_located_message():
    failed = Outcome(False, "ERROR here\n", "snippets/x.sql:3: ERROR: boom (PostgreSQL)", 3)
    with pytest.raises(common.DrillError) as failure:
        common.require(failed, "the restore")
    assert str(failure.value) == (
        "the restore failed: snippets/x.sql:3: ERROR: boom (PostgreSQL)\n--- output ---\nERROR here"
    )
    assert common.require(Outcome(True, "fine\n")) == "fine\n"
