"""Tasks: a function registered with an app, sent to workers with ``delay`` / ``apply_async``.

Options are validated when the function is decorated, so a bad option fails at import,
never in the worker. Arguments JSON cannot carry fail at ``delay()`` with a TypeError
naming the argument; the message is never half-sent. ``map`` / ``starmap`` send many calls
at once, in chunks (:mod:`.bulk`), and return a :class:`~taskmill.resultset.ResultSet`.

An ``async def`` function becomes an :class:`AsyncTask`: the same sending side (``delay``
gives ``Result[T]`` for a coroutine returning ``T``); workers run it on their event loop,
many at once, and calling it here returns the coroutine, as calling the function would.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

from . import bulk, serializers
from . import message as message_codec
from .brokers.base import Outgoing
from .errors import ConfigurationError, MessageTooLarge
from .result import Result
from .resultset import ResultSet
from .retries import RetryPolicy

if TYPE_CHECKING:
    from .app import App

__all__ = ["AsyncTask", "Task", "TaskOptions", "task_name"]

P = ParamSpec("P")
R = TypeVar("R")

Seconds = float | int | timedelta


def seconds(value: Seconds | None, what: str) -> float | None:
    """A duration as float seconds (timedelta accepted); ConfigurationError if negative."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{what} must be a number of seconds, not {value!r}")
    if value < 0:
        raise ConfigurationError(f"{what} must not be negative, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """A task's options, validated: durations in seconds, None where unset."""

    name: str
    queue: str
    priority: int = 0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    time_limit: float | None = None
    soft_time_limit: float | None = None
    result_ttl: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("a task name must not be empty")
        if not self.queue:
            raise ConfigurationError(f"task {self.name}: queue must not be empty")
        check_priority(self.priority, self.name)
        if self.retry.retries < 0:
            raise ConfigurationError(f"task {self.name}: retries must be >= 0")
        for what in ("time_limit", "soft_time_limit"):
            value = getattr(self, what)
            if value is not None and value <= 0:
                raise ConfigurationError(f"task {self.name}: {what} must be > 0, got {value}")
        if (
            self.time_limit is not None
            and self.soft_time_limit is not None
            and self.soft_time_limit >= self.time_limit
        ):
            raise ConfigurationError(
                f"task {self.name}: soft_time_limit ({self.soft_time_limit}) must be below "
                f"time_limit ({self.time_limit})"
            )
        for kind in self.retry.autoretry_for:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ConfigurationError(
                    f"task {self.name}: autoretry_for must list exception types, got {kind!r}"
                )


def check_priority(priority: int, name: str) -> int:
    """The priority, if it is an int in -255..255 (higher runs first)."""
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 255:
        raise ConfigurationError(
            f"task {name}: priority must be an int in -255..255, got {priority!r}"
        )
    return priority


def task_name(fn: Callable[..., Any]) -> str:
    """``module.qualname``; for a script run as ``__main__``, the module it would be
    imported as (``python tasks.py`` names its tasks ``tasks.…``, as a worker does)."""
    module = fn.__module__
    if module == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        main_file = getattr(main, "__file__", None)
        if spec is not None and spec.name:
            module = spec.name.removesuffix(".__main__")
        elif main_file:
            module = Path(main_file).stem
    return f"{module}.{fn.__qualname__}"


class Task(Generic[P, R]):
    """A registered function. Call it to run it here; ``delay`` to run it on a worker."""

    #: whether workers run it on their event loop (an ``async def`` function)
    is_async = False

    def __init__(self, app: App, fn: Callable[P, Any], options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.name = options.name
        self._signature: inspect.Signature | None = None
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return cast(R, self.fn(*args, **kwargs))

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Result[R]:
        """Send the task to a worker with these arguments; returns its Result at once."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: Seconds | None = None,
        eta: datetime | float | None = None,
        expires: Seconds | datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        task_id: str | None = None,
    ) -> Result[R]:
        """Send the task with options.

        ``countdown`` (seconds) or ``eta`` (a datetime, or Unix time) delays it; a task
        not started before ``expires`` (seconds from now, or a datetime) is revoked
        instead of run. ``priority``: higher runs first. ``task_id``: your own id.
        """
        kwargs = dict(kwargs or {})
        now = time.time()
        msg = message_codec.Message(
            id=task_id or message_codec.new_id(),
            task=self.name,
            args=tuple(args),
            kwargs=kwargs,
            expires=_absolute(expires, now, "expires"),
            created_at=now,
        )
        body = self._encode(msg)
        delay = _delay(countdown, eta, now)
        self.app.broker.enqueue(
            [
                Outgoing(
                    id=msg.id,
                    queue=queue or self.options.queue,
                    body=body,
                    priority=self.options.priority
                    if priority is None
                    else check_priority(priority, self.name),
                    delay=delay,
                )
            ]
        )
        return Result(self.app, msg.id)

    def AsyncResult(self, task_id: str) -> Result[R]:
        """The Result handle of an earlier call, by id."""
        return Result(self.app, task_id)

    def map(
        self,
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
    ) -> ResultSet[R]:
        """Call the task once per item (``task(item)``) on workers; a ResultSet at once.

        Calls travel ``chunksize`` to a message (default: chosen from the number of
        items, about 64 messages of at most 1,000 items) and are enqueued many messages
        per broker round trip. A chunk runs on one worker, item after item; its hard time
        limit is the task's times its items. The iterable is read to its end first.
        """
        return self._send_map(iterable, chunksize, queue, priority, singles=True)

    def starmap(
        self,
        iterable: Iterable[Sequence[Any]],
        chunksize: int | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
    ) -> ResultSet[R]:
        """Like :meth:`map`, but each item is an argument tuple: ``task(*item)``."""
        return self._send_map(iterable, chunksize, queue, priority, singles=False)

    def _send_map(
        self,
        iterable: Iterable[Any],
        chunksize: int | None,
        queue: str | None,
        priority: int | None,
        singles: bool,
    ) -> ResultSet[R]:
        if priority is not None:
            check_priority(priority, self.name)
        chunks = bulk.send_chunks(self, iterable, chunksize, queue, priority, singles)
        return ResultSet(self.app, chunks, self.name)

    def explain_unencodable(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """Which argument of a call cannot be sent, and why."""
        msg = message_codec.Message(id="", task=self.name, args=args, kwargs=kwargs)
        return self._explain_unencodable(msg)

    def _encode(self, msg: message_codec.Message) -> bytes:
        try:
            body = message_codec.encode(msg, self.app.serializer)
        except (TypeError, ValueError) as exc:
            raise TypeError(self._explain_unencodable(msg)) from exc
        limit = self.app.settings.max_message_bytes
        if len(body) > limit:
            raise MessageTooLarge(
                f"task {self.name}: the message is {len(body):,} bytes, over the limit of "
                f"{limit:,} (App setting max_message_bytes); pass a reference to large data "
                "(a path, a key) instead"
            )
        return body

    def _explain_unencodable(self, msg: message_codec.Message) -> str:
        names = self._parameter_names(len(msg.args))
        candidates = [(names[i], value) for i, value in enumerate(msg.args)]
        candidates += list(msg.kwargs.items())
        for name, value in candidates:
            why = serializers.describe_unencodable(value)
            if why is not None:
                return f"task {self.name}: argument {name!r} cannot be sent as JSON: {why}"
        return f"task {self.name}: the arguments cannot be sent as JSON"

    def _parameter_names(self, count: int) -> list[str]:
        if self._signature is None:
            try:
                self._signature = inspect.signature(self.fn)
            except (TypeError, ValueError):
                self._signature = inspect.Signature()
        names = [
            p.name
            for p in self._signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        return [names[i] if i < len(names) else f"args[{i}]" for i in range(count)]


class AsyncTask(Task[P, R]):
    """A task whose function is ``async def``. ``delay`` gives ``Result[R]``, where the
    coroutine returns ``R``; workers await it on their event loop, many in flight per
    process. Calling it here returns the coroutine, as calling the function does."""

    is_async = True

    # The one place an async task differs for the type checker: calling it gives the
    # coroutine, not its value (a Task[P, R] called gives R).
    def __call__(  # type: ignore[override]
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        return cast(Coroutine[Any, Any, R], self.fn(*args, **kwargs))


def _absolute(value: Seconds | datetime | None, now: float, what: str) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    relative = seconds(value, what)
    return None if relative is None else now + relative


def _delay(countdown: Seconds | None, eta: datetime | float | None, now: float) -> float:
    """Seconds from now until the task is due: the broker adds them to its own clock."""
    if countdown is not None and eta is not None:
        raise ConfigurationError("give countdown or eta, not both")
    if isinstance(eta, datetime):
        return max(0.0, eta.timestamp() - now)
    if eta is not None:
        if isinstance(eta, bool) or not isinstance(eta, (int, float)):
            raise ConfigurationError(f"eta must be a datetime or a Unix time, not {eta!r}")
        return max(0.0, float(eta) - now)
    return seconds(countdown, "countdown") or 0.0
