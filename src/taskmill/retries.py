"""Retry policy: when a failed task runs again. Pure functions, no clocks, no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RetryPolicy", "backoff_delay"]


def backoff_delay(
    retries_done: int,
    base: float,
    cap: float,
    jitter: bool,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the next attempt, after ``retries_done`` retries.

    Exponential: ``base * 2**retries_done``, capped at ``cap``. With ``jitter`` the delay
    is drawn from its upper half ("equal jitter"), so retries of many tasks that failed
    together spread out yet none comes back sooner than half its backoff.
    """
    delay = min(cap, base * 2.0 ** min(retries_done, 64))
    if jitter:
        delay = delay / 2 + rand() * delay / 2
    return delay


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a task is retried: at most ``retries`` times, for the exceptions listed."""

    retries: int = 0
    backoff: float = 1.0
    backoff_max: float = 600.0
    jitter: bool = True
    autoretry_for: tuple[type[BaseException], ...] = ()

    def retry_delay(
        self,
        exc: BaseException,
        retries_done: int,
        requested: float | None = None,
        asked: bool = False,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds until the next attempt, or None when the task should fail now.

        ``asked`` is True when the task raised ``Retry`` itself; ``requested`` is the
        delay it asked for (None: use the backoff).
        """
        if retries_done >= self.retries:
            return None
        if not asked and not isinstance(exc, self.autoretry_for):
            return None
        if requested is not None:
            return max(0.0, requested)
        return backoff_delay(retries_done, self.backoff, self.backoff_max, self.jitter, rand)
