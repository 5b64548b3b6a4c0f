"""Time limits inside a task: a coroutine cancelled at its soft or hard limit, and a soft
limit raised in a thread that is not the main one."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from taskmill import SoftTimeLimitExceeded, TimeLimitExceeded
from taskmill.worker.limits import soft_time_limit, within_limits


async def nap(seconds: float, value: str = "done") -> str:
    await asyncio.sleep(seconds)
    return value


async def own_timeout() -> None:
    raise TimeoutError("the task's own")


@pytest.mark.parametrize(
    ("awaitable", "soft", "hard", "expected"),
    [
        (lambda: nap(0.01), None, None, "done"),
        (lambda: nap(0.01), 5.0, 10.0, "done"),
        (lambda: nap(5), 0.05, None, SoftTimeLimitExceeded),
        (lambda: nap(5), None, 0.05, TimeLimitExceeded),
        (lambda: nap(5), 0.05, 0.1, SoftTimeLimitExceeded),
        (own_timeout, None, 5.0, TimeoutError),
    ],
)
def test_within_limits(awaitable, soft, hard, expected):
    run = within_limits(awaitable(), soft, hard, "stopped at the hard limit")
    if isinstance(expected, str):
        assert asyncio.run(run) == expected
    else:
        with pytest.raises(expected):
            asyncio.run(run)


def test_a_hard_limit_carries_the_message_it_was_given():
    with pytest.raises(TimeLimitExceeded, match=r"stopped at 0\.05s"):
        asyncio.run(within_limits(nap(5), None, 0.05, "stopped at 0.05s"))


async def shrug_off_cancellation() -> str:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        await asyncio.sleep(5)  # cleaning up for too long
    return "late"


def test_a_coroutine_that_swallows_its_soft_cancellation_still_stops_at_the_hard_limit():
    began = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        asyncio.run(within_limits(shrug_off_cancellation(), 0.05, 0.3, "hard"))
    assert time.monotonic() - began < 2.0


def in_thread(target):
    """Run ``target`` in a thread; what it returned or raised."""
    outcome = {}

    def run():
        try:
            outcome["value"] = target()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    return outcome


def test_a_soft_limit_interrupts_a_thread_running_python_code():
    def busy():
        with soft_time_limit(0.05):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.005)
        return "finished"

    outcome = in_thread(busy)

    assert isinstance(outcome.get("error"), SoftTimeLimitExceeded)


def test_a_thread_that_finishes_in_time_never_sees_its_soft_limit_later():
    def quick():
        with soft_time_limit(0.05):
            pass
        time.sleep(0.2)  # well past the limit, outside it
        return "finished"

    assert in_thread(quick) == {"value": "finished"}
