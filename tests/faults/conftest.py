"""The fault suite's length and its table.

`make test` runs the quick set (a small stream, a few agent kills, one broker kill with the API
down, one API kill: a few minutes); `KITLEDGER_FAULTS=full` (`make faults`) runs every fault,
several times, and the table is printed at the end of the session either way.
"""

from __future__ import annotations

import pytest

from tests.faults.table import ROWS, format_problems, format_table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    terminalreporter.write_sep("=", "fault table")
    terminalreporter.write_line(format_table(ROWS))
    problems = format_problems(ROWS)
    if problems:
        terminalreporter.write_sep("-", "what the end checks found")
        terminalreporter.write_line(problems)
