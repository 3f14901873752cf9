"""The differential suite prints its agreement counts at the end of the run."""

from __future__ import annotations

import pytest

from ._harness import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = list(TALLY.lines())
    if lines:
        terminalreporter.section("oracle agreement")
        for line in lines:
            terminalreporter.write_line(line)
