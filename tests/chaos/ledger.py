"""Jepsen-style accounting of a run under faults: every task id sent is accounted for.

A chaos test sends tasks whose expected value it knows, injects its faults, waits, then
asks the broker for every id's result and reads the execution log (:mod:`faults`)::

    sent ids ──▶ broker.fetch_results ──▶ completed (SUCCESS with the expected value)
                                       ├▶ wrong     (a final result, but not that one)
                                       └▶ lost      (no final result at all)
    execution log ──▶ executions per id ──▶ duplicates = executions beyond the first

The broker keeps one result per id (the first final one wins), so "exactly one recorded
result" is the broker's promise; what a fault can still do is lose a task, record a wrong
result, or run a task more than once. :class:`Tally` counts each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faults import executions
from taskmill import App, states


@dataclass
class Tally:
    """The outcome of one run: what was sent and what became of it."""

    sent: int
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    executions: int = 0
    duplicates: int = 0

    def check(self, max_duplicates: int | None = 0) -> None:
        """Fail the test unless nothing was lost or wrong and duplicates are bounded."""
        assert not self.lost, f"{len(self.lost)} of {self.sent} tasks lost: {self.lost[:10]}"
        assert not self.wrong, f"{len(self.wrong)} wrong results: {self.wrong[:10]}"
        assert self.completed == self.sent
        if max_duplicates is not None:
            assert self.duplicates <= max_duplicates, (
                f"{self.duplicates} duplicate executions, at most {max_duplicates} allowed"
            )


def tally(
    app: App,
    expected: Mapping[str, Any],
    log: str | Path | None = None,
    tags: Mapping[str, str] | None = None,
) -> Tally:
    """Account for every id in ``expected`` (id → the value its task must return).

    ``log`` is the execution log the tasks wrote; ``tags`` maps each id to the tag its task
    logged (default: the id itself), so executions can be counted per id.
    """
    found = {}
    ids = list(expected)
    for start in range(0, len(ids), 500):
        found.update(app.broker.fetch_results(ids[start : start + 500]))
    result = Tally(sent=len(expected))
    for id, value in expected.items():
        stored = found.get(id)
        if stored is None or stored.state not in states.FINAL_STATES:
            result.lost.append(id)
        elif stored.state != states.SUCCESS or app.AsyncResult(id).get(timeout=0) != value:
            result.wrong.append(id)
        else:
            result.completed += 1
    if log is not None:
        wanted = {tags[id] if tags else id for id in expected}
        counts = Counter(e.tag for e in executions(log) if e.tag in wanted)
        result.executions = sum(counts.values())
        result.duplicates = sum(n - 1 for n in counts.values() if n > 1)
    return result
