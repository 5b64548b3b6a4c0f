"""Chaos tests: inject a fault, count the outcome, report the figures.

Each scenario records one row of figures with the ``figures`` fixture::

    def test_child_kill_storm(figures, ...):
        ...
        figures.record("child kill storm", load="2,000 tasks, 2 children",
                       faults="12 x kill -9 of a child", tally=t, recovery="replacement ≤ 1.1 s")

The rows are printed at the end of the run (the quick subset in ``.ci/run`` and the full
set, ``pytest -m chaos``, both report them), and ``--write-reliability`` makes them the
table of ``docs/reliability.md`` (between its ``reliability-table`` markers): the table
is always one run's figures, never a mix of runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ledger import Tally

from integration.conftest import workspace  # noqa: F401  (real workers, as in integration/)

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
BEGIN, END = "<!-- reliability-table:begin -->", "<!-- reliability-table:end -->"
HEADER = (
    "| scenario | load | faults injected | lost | duplicates | recovery |\n"
    "|---|---|---|---|---|---|"
)


@dataclass(frozen=True)
class Row:
    scenario: str
    load: str
    faults: str
    lost: str
    duplicates: str
    recovery: str

    def markdown(self) -> str:
        cells = (self.scenario, self.load, self.faults, self.lost, self.duplicates, self.recovery)
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


class Figures:
    """The rows recorded during this run, in order."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def record(
        self,
        scenario: str,
        *,
        load: str,
        faults: str,
        tally: Tally | None = None,
        lost: str | None = None,
        duplicates: str | None = None,
        recovery: str = "—",
    ) -> None:
        """Record a row; ``lost`` and ``duplicates`` default to the tally's counts."""
        if tally is not None:
            lost = lost or f"{len(tally.lost)} of {tally.sent}"
            duplicates = duplicates or str(tally.duplicates)
        self.rows.append(Row(scenario, load, faults, lost or "—", duplicates or "—", recovery))


_FIGURES = Figures()


@pytest.fixture
def figures() -> Iterator[Figures]:
    yield _FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES.rows:
        return
    terminalreporter.section("reliability figures")
    terminalreporter.write_line(HEADER)
    for row in _FIGURES.rows:
        terminalreporter.write_line(row.markdown())
    if terminalreporter.config.getoption("--write-reliability"):
        write_doc(_FIGURES.rows)
        terminalreporter.write_line(f"written to {DOC}")


def write_doc(rows: list[Row]) -> None:
    """Make this run's rows the doc's table."""
    text = DOC.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    if match is None:
        raise RuntimeError(f"{DOC} has no {BEGIN} … {END} markers")
    table = "\n".join([HEADER, *(row.markdown() for row in rows)]) + "\n"
    DOC.write_text(text[: match.start(1)] + table + text[match.end(1) :])
