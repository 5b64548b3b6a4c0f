"""The built-in task ``taskmill.call``: a pickled callable, run for an :class:`Executor`.

Every app with ``serializer="pickle"`` registers it, so any worker of such an app can run
an Executor's calls. A call's message is ``args = (init, fn, *args)``, ``kwargs`` the
call's own; ``init`` is None or ``(executor_id, initializer, initargs)``.

A worker process runs an executor's initializer once, before the first call of that
executor it runs (so once per worker process, as ``ProcessPoolExecutor`` does, also in a
process that replaced a dead one). If the initializer raises, that call and every later
call of the same executor in that process fail with :class:`BrokenExecutor`, whose
``__cause__`` is the initializer's exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import BrokenExecutor

__all__ = ["CALL_TASK", "PickledCall"]

CALL_TASK = "taskmill.call"

Init = tuple[str, Callable[..., object], tuple[Any, ...]]


class PickledCall:
    """The function behind ``taskmill.call``; remembers which initializers ran here."""

    __name__ = __qualname__ = CALL_TASK

    def __init__(self) -> None:
        self._initialized: dict[str, BaseException | None] = {}

    def __call__(
        self, init: Init | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        if init is not None:
            self._initialize(*init)
        return fn(*args, **kwargs)

    def bind(self, init: Init | None, fn: Callable[..., Any]) -> Callable[..., Any]:
        """The callable itself, once its executor's initializer ran here: what a chunk
        of calls (``leading = (init, fn)``) runs item after item."""
        if init is not None:
            self._initialize(*init)
        return fn

    def _initialize(
        self, executor_id: str, initializer: Callable[..., object], initargs: tuple[Any, ...]
    ) -> None:
        if executor_id not in self._initialized:
            try:
                initializer(*initargs)
            except Exception as exc:
                self._initialized[executor_id] = exc
            else:
                self._initialized[executor_id] = None
        failure = self._initialized[executor_id]
        if failure is not None:
            raise BrokenExecutor(
                f"the executor's initializer {_name(initializer)} raised {failure!r} in this "
                "worker process"
            ) from failure


def _name(fn: Callable[..., object]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
