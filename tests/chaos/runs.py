"""What the process-level chaos scenarios share: tasks whose every execution is logged,
sending many of them, waiting until each has a final result, and timing a recovery.

``nap_square(log, x, seconds)`` logs ``x``, sleeps, and returns ``x * x``: a task slow
enough for faults to land while it runs, whose result and executions are both known, so
:func:`ledger.tally` can account for every id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from taskmill import App, states

#: appended to the workspace's standard tasks module
NAP_TASK = """
import time as _time

@app.task(name="nap_square")
def nap_square(log, x, seconds):
    faults.record(log, x)
    _time.sleep(seconds)
    return x * x
"""


class Sent:
    """Ids sent, each with the value its task must return and the tag it logs."""

    def __init__(self) -> None:
        self.expected: dict[str, Any] = {}
        self.tags: dict[str, str] = {}

    def add(self, id: str, value: Any, tag: object) -> None:
        self.expected[id] = value
        self.tags[id] = str(tag)


def send_naps(task: Any, log: str, xs: Iterable[int], seconds: float) -> Sent:
    """``task.delay(log, x, seconds)`` for each x; what each must come back as."""
    sent = Sent()
    for x in xs:
        sent.add(task.delay(log, x, seconds).id, x * x, x)
    return sent


def unfinished(app: App, ids: Iterable[str]) -> list[str]:
    """The ids without a final result yet."""
    ids = list(ids)
    found = {}
    for start in range(0, len(ids), 500):
        found.update(app.broker.fetch_results(ids[start : start + 500]))
    return [i for i in ids if i not in found or found[i].state not in states.FINAL_STATES]


def wait_all_final(
    app: App, ids: Iterable[str], timeout: float, between: Callable[[], None] | None = None
) -> float:
    """Wait until every id has a final result (``between`` runs between looks: the fault
    injector); returns the seconds it took. Returns early, not failing, at ``timeout``:
    the tally then reports what is lost."""
    started = time.monotonic()
    left = list(ids)
    while left and time.monotonic() - started < timeout:
        if between is not None:
            between()
        else:
            time.sleep(0.1)
        left = unfinished(app, left)
    return time.monotonic() - started


def time_until(condition: Callable[[], Any], timeout: float, interval: float = 0.005) -> float:
    """Seconds until ``condition()`` is true (polled), or ``inf`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(interval)
    return float("inf")
