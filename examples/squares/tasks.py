"""One function, ``square``, made a task. ``run.py`` sends it to workers three ways."""

from __future__ import annotations

from taskmill import App

app = App("squares")  # no broker given: $TASKMILL_BROKER, else taskmill.db here


def square(x: int) -> int:
    """``x`` squared. A plain function, so a ``taskmill.Executor`` can call it too."""
    return x * x


#: the same function as a task, registered as ``taskmill.examples.squares.tasks.square``
compute_square = app.task(square)
