"""How busy the machine is with work that is not this run's.

The benchmark shares two cores with whatever else runs there (a test suite, a build).
``ForeignLoad`` counts the CPU seconds the whole machine spent busy, minus those of this
run's own process tree (children are counted once their parent has waited for them, which
every level of the run does) and minus the Redis server the systems talk to. What is left,
per second of wall time, is load from outside that skews the figures.
"""

from __future__ import annotations

import time

import psutil

__all__ = ["ForeignLoad"]


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def _own_seconds() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system + t.children_user + t.children_system


class ForeignLoad:
    """Snapshots of CPU seconds not spent by this run or its Redis server."""

    def __init__(self) -> None:
        self._redis = [p for p in psutil.process_iter(["name"])
                       if p.info["name"] == "redis-server"]

    def _redis_seconds(self) -> float:
        total = 0.0
        for p in self._redis:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def snapshot(self) -> tuple[float, float]:
        """(monotonic time, foreign CPU seconds so far)."""
        return time.monotonic(), _busy_seconds() - _own_seconds() - self._redis_seconds()

    @staticmethod
    def cores(before: tuple[float, float], after: tuple[float, float]) -> float:
        """Average foreign load between two snapshots, in cores."""
        wall = after[0] - before[0]
        return max(0.0, (after[1] - before[1]) / wall) if wall > 0 else 0.0

    def wait_quiet(self, threshold: float, window: float, max_wait: float) -> float:
        """Wait until the foreign load over ``window`` seconds is under ``threshold``
        cores, at most ``max_wait`` seconds; returns the last load seen."""
        deadline = time.monotonic() + max_wait
        while True:
            before = self.snapshot()
            time.sleep(window)
            load = self.cores(before, self.snapshot())
            if load < threshold or time.monotonic() >= deadline:
                return load
