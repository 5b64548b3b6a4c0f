"""RQ's benchmark jobs: plain functions, enqueued by reference."""

from __future__ import annotations

from _common import burn_cpu


def noop() -> None:
    return None


def burn(cpu_ms: float) -> float:
    return burn_cpu(cpu_ms)
