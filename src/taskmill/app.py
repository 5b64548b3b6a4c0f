"""The App: a registry of tasks bound to one broker URL, and the settings they share.

Nothing here is global: every task, result and worker hangs off an explicit App. The
broker connection is opened on first use and reopened in a forked child process, so an
App made at import time is safe to use on both sides of a fork.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from .brokers import open_broker, redact_url
from .brokers.base import Broker
from .calls import CALL_TASK, PickledCall
from .errors import ConfigurationError, NotRegistered
from .result import Result
from .retries import RetryPolicy
from .serializers import FORMATS, Serializer
from .task import AsyncTask, Task, TaskOptions, seconds, task_name

__all__ = ["DEFAULT_BROKER_URL", "App", "Settings"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_BROKER_URL = "sqlite:///taskmill.db"
BROKER_ENV = "TASKMILL_BROKER"


@dataclass(frozen=True, slots=True)
class Settings:
    """App-wide settings. Durations are seconds.

    ``lease_s``: how long a worker holds a message before others may take it over; it is
    renewed every third of that while the task runs. ``max_deliveries``: deliveries
    whose worker died before a message is dead-lettered.

    ``serializer``: ``"json"`` (the default) or ``"pickle"`` — an explicit choice, since
    unpickling runs code; it lets tasks take and return any picklable object, and it is
    what an :class:`~taskmill.Executor` needs. ``signing_key`` (str or bytes, at least 16
    bytes): every message and result is signed with HMAC-SHA256, and a worker refuses
    (dead-letters) an unsigned or altered message. Pickle over a network broker (Redis)
    requires a key; on the embedded SQLite broker it is optional.
    """

    default_queue: str = "default"
    result_ttl: float = 86_400.0
    max_deliveries: int = 3
    lease_s: float = 30.0
    max_message_bytes: int = 1 << 20
    serializer: str = "json"
    signing_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.serializer not in FORMATS:
            raise ConfigurationError(
                f"serializer must be one of {', '.join(FORMATS)}, got {self.serializer!r}"
            )
        if isinstance(self.signing_key, str):
            object.__setattr__(self, "signing_key", self.signing_key.encode())
        if self.signing_key is not None and (
            not isinstance(self.signing_key, bytes) or len(self.signing_key) < 16
        ):
            raise ConfigurationError("signing_key must be a str or bytes of at least 16 bytes")
        if not self.default_queue:
            raise ConfigurationError("default_queue must not be empty")
        if self.max_deliveries < 1:
            raise ConfigurationError(f"max_deliveries must be >= 1, got {self.max_deliveries}")
        if self.lease_s < 1:
            raise ConfigurationError(f"lease_s must be at least 1 second, got {self.lease_s}")
        if self.max_message_bytes < 1024:
            raise ConfigurationError(
                f"max_message_bytes must be at least 1024, got {self.max_message_bytes}"
            )

    @classmethod
    def from_kwargs(cls, settings: dict[str, Any]) -> Settings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown App setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        for name in ("result_ttl", "lease_s"):
            if isinstance(settings.get(name), timedelta):
                settings[name] = seconds(settings[name], name)
        return cls(**settings)


class TaskDecorator(Protocol):
    """What ``@app.task(option=...)`` returns: an ``async def`` function becomes an
    AsyncTask, any other a Task."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class App:
    """Tasks bound to one broker URL.

    ``broker``: a URL; if omitted, the ``TASKMILL_BROKER`` environment variable, else
    ``sqlite:///taskmill.db`` in the working directory (no server needed). Results are
    kept in the same broker. Other keyword arguments are :class:`Settings`.
    """

    def __init__(self, name: str, broker: str | None = None, **settings: Any) -> None:
        self.name = name
        self.broker_url = broker or os.environ.get(BROKER_ENV) or DEFAULT_BROKER_URL
        self.settings = Settings.from_kwargs(dict(settings))
        if (
            self.settings.serializer == "pickle"
            and self.settings.signing_key is None
            and not self.broker_url.startswith("sqlite:")
        ):
            raise ConfigurationError(
                f"serializer='pickle' over the network broker {redact_url(self.broker_url)} "
                "needs a signing_key: anyone who can write to the broker could otherwise run "
                "code in your workers and clients"
            )
        self.serializer = Serializer(self.settings.serializer, self.settings.signing_key)
        self.tasks: dict[str, Task[Any, Any]] = {}
        if self.settings.serializer == "pickle":
            # Executor calls: any worker of a pickle app can run them.
            options = TaskOptions(name=CALL_TASK, queue=self.settings.default_queue)
            self.tasks[CALL_TASK] = Task(self, PickledCall(), options)
        self._broker: Broker | None = None
        self._broker_pid = 0
        self._inherited: list[Broker] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<App {self.name} broker={redact_url(self.broker_url)}>"

    @property
    def broker(self) -> Broker:
        """The broker, opened on first use (and again in a forked child)."""
        broker = self._broker
        if broker is not None and self._broker_pid == os.getpid():
            return broker
        with self._lock:
            if self._broker is None or self._broker_pid != os.getpid():
                if self._broker is not None:
                    # Inherited across fork: never close it here, as closing a SQLite
                    # connection in the child can checkpoint and delete the parent's WAL.
                    self._inherited.append(self._broker)
                self._broker = open_broker(self.broker_url)
                self._broker_pid = os.getpid()
            return self._broker

    def close(self) -> None:
        """Close this process's broker connections."""
        with self._lock:
            if self._broker is not None and self._broker_pid == os.getpid():
                self._broker.close()
            self._broker = None

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int = 0,
        retries: int = 0,
        retry_backoff: float = 1.0,
        retry_backoff_max: float = 600.0,
        retry_jitter: bool = True,
        autoretry_for: tuple[type[BaseException], ...] = (),
        time_limit: float | timedelta | None = None,
        soft_time_limit: float | timedelta | None = None,
        result_ttl: float | timedelta | None = None,
    ) -> TaskDecorator: ...

    def task(self, *fn: Callable[P, R], **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(retries=3, ...)``.

        Options: ``name`` (default ``module.qualname``), ``queue``, ``priority`` (higher
        runs first), ``retries`` with exponential backoff (``retry_backoff`` seconds
        doubling up to ``retry_backoff_max``, ``retry_jitter``) for the exceptions in
        ``autoretry_for`` or when the task raises ``Retry``; ``time_limit`` (hard: the
        worker process is killed), ``soft_time_limit`` (SoftTimeLimitExceeded is raised
        in the task), ``result_ttl``. An ``async def`` function becomes an AsyncTask, which
        workers run on their event loop.
        """

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            kind = AsyncTask if inspect.iscoroutinefunction(function) else Task
            task: Task[Any, Any] = kind(self, function, self._options(function, options))
            self.tasks[task.name] = task
            return task

        if len(fn) > 1 or (fn and options):
            raise TypeError("use @app.task or @app.task(option=...), not both")
        return register(fn[0]) if fn else register

    def _options(self, fn: Callable[..., Any], options: dict[str, Any]) -> TaskOptions:
        opts = dict(options)
        name = opts.pop("name", None) or task_name(fn)
        policy = RetryPolicy(
            retries=int(opts.pop("retries", 0)),
            backoff=seconds(opts.pop("retry_backoff", 1.0), "retry_backoff") or 0.0,
            backoff_max=seconds(opts.pop("retry_backoff_max", 600.0), "retry_backoff_max") or 0.0,
            jitter=bool(opts.pop("retry_jitter", True)),
            autoretry_for=tuple(opts.pop("autoretry_for", ())),
        )
        built = TaskOptions(
            name=name,
            queue=opts.pop("queue", None) or self.settings.default_queue,
            priority=opts.pop("priority", 0),
            retry=policy,
            time_limit=seconds(opts.pop("time_limit", None), "time_limit"),
            soft_time_limit=seconds(opts.pop("soft_time_limit", None), "soft_time_limit"),
            result_ttl=seconds(opts.pop("result_ttl", None), "result_ttl"),
        )
        if opts:
            raise ConfigurationError(f"task {name}: unknown option(s) {', '.join(sorted(opts))}")
        return built

    def get_task(self, name: str) -> Task[Any, Any]:
        """The registered task of that name; NotRegistered if there is none."""
        try:
            return self.tasks[name]
        except KeyError:
            raise NotRegistered(f"no task named {name!r} is registered with {self!r}") from None

    def AsyncResult(self, task_id: str) -> Result[Any]:
        """The Result handle of a task id."""
        return Result(self, task_id)

    def result_ttl(self, task: Task[Any, Any] | None) -> float:
        """How long a task's result is kept."""
        if task is not None and task.options.result_ttl is not None:
            return task.options.result_ttl
        return self.settings.result_ttl
