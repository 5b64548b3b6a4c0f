"""What an example's ``run`` returns: how long it took, the speed-up, what it found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Report"]


@dataclass
class Report:
    """One workload's outcome.

    ``seconds``: wall time of the work on the workers (not counting their start).
    ``one_process_seconds``: the same work in this one process, where comparing makes
    sense (None otherwise). ``lines``: what the example found, to print. ``details``:
    the same as data, for a program (a test) to look at.
    """

    name: str
    seconds: float
    one_process_seconds: float | None = None
    lines: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """How many times faster the workers were than one process."""
        if self.one_process_seconds is None or self.seconds <= 0:
            return None
        return self.one_process_seconds / self.seconds

    def text(self) -> str:
        """The report as a few lines of plain text."""
        timing = f"{self.name}: {self.seconds:.2f}s on the workers"
        if self.one_process_seconds is not None and self.speedup is not None:
            timing += (
                f", {self.one_process_seconds:.2f}s in one process: {self.speedup:.2f}x speed-up"
            )
        return "\n".join([timing, *(f"  {line}" for line in self.lines)])
