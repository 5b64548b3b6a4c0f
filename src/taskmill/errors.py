"""Every error taskmill raises.

Errors derive from one root, so ``except TaskmillError`` catches everything taskmill
raises on purpose. The interrupts raised *inside* a running task derive from
``BaseException`` instead, so that user code's ``except Exception`` cannot swallow them::

    TaskmillError
    ├── ConfigurationError        bad broker URL, bad task option, bad -A target   (ValueError)
    ├── BrokerError               the broker failed (disk full, connection lost)
    │   └── DiskFull              the disk holding the broker's data is full
    ├── MessageError              a message that cannot be sent or run
    │   ├── MessageTooLarge       over the size limit                             (ValueError)
    │   ├── MessageDecodeError    not a taskmill message
    │   └── UnknownTask           names a task the worker does not have
    ├── NotRegistered             a task name the app does not know                (KeyError)
    ├── Retry                     raised by a task to ask for another attempt
    ├── ResultTimeout             get(timeout=) ran out                            (TimeoutError)
    ├── BrokenExecutor            an Executor's workers cannot run its calls   (BrokenExecutor)
    ├── RemoteTraceback           a task's traceback, attached as ``__cause__``
    └── TaskFailed                the task failed and its exception cannot be rebuilt
        ├── TimeLimitExceeded     killed at its hard time limit
        ├── MemoryLimitExceeded   killed: its worker child went over --max-memory-per-child
        ├── WorkerLost            its worker died on every delivery: dead-lettered
        ├── DeadLettered          moved to the dead-letter store for another reason
        └── TaskRevoked           revoked before it ran, or expired

    BaseException
    └── SoftTimeLimitExceeded     raised inside a task at its soft time limit
"""

from __future__ import annotations

import concurrent.futures

__all__ = [
    "BrokenExecutor",
    "BrokerError",
    "ConfigurationError",
    "DeadLettered",
    "DiskFull",
    "MemoryLimitExceeded",
    "MessageDecodeError",
    "MessageError",
    "MessageTooLarge",
    "NotRegistered",
    "RemoteTraceback",
    "ResultTimeout",
    "Retry",
    "SoftTimeLimitExceeded",
    "TaskFailed",
    "TaskRevoked",
    "TaskmillError",
    "TimeLimitExceeded",
    "UnknownTask",
    "WorkerLost",
]


class TaskmillError(Exception):
    """The root of every error taskmill raises on purpose."""


class ConfigurationError(TaskmillError, ValueError):
    """A setting, option or target that cannot work, named in the message."""


class BrokerError(TaskmillError):
    """The broker could not do what was asked (disk full, connection lost, ...)."""


class DiskFull(BrokerError):
    """The disk holding the broker's data is full: nothing more can be written until space
    is freed; what was written before stays intact, and work resumes by itself."""


class MessageError(TaskmillError):
    """A message that cannot be sent or run."""


class MessageTooLarge(MessageError, ValueError):
    """A message whose encoded size is over the app's ``max_message_bytes``."""


class MessageDecodeError(MessageError):
    """Bytes that are not a taskmill message."""


class UnknownTask(MessageError):
    """A message naming a task the worker has not registered."""


class NotRegistered(TaskmillError, KeyError):
    """A task name the app does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Retry(TaskmillError):
    """Raise inside a task to run it again after ``delay`` seconds (None: the task's backoff).

    The retry counts against the task's ``retries``; once they are spent the task fails
    with the exception given as ``exc`` (or this one).
    """

    def __init__(self, delay: float | None = None, exc: BaseException | None = None) -> None:
        super().__init__(delay, exc)
        self.delay = delay
        self.exc = exc

    def __str__(self) -> str:
        when = "with backoff" if self.delay is None else f"in {self.delay:g}s"
        return f"retry requested {when}" + (f": {self.exc!r}" if self.exc else "")


class ResultTimeout(TaskmillError, TimeoutError):
    """``get(timeout=...)`` ran out before the task finished."""


class BrokenExecutor(TaskmillError, concurrent.futures.BrokenExecutor):
    """An Executor's workers cannot run its calls: its initializer failed in a worker, or
    its local workers could not be started. Also a ``concurrent.futures.BrokenExecutor``."""


class TaskFailed(TaskmillError):
    """A task failed, and its own exception type could not be rebuilt here.

    ``exc_type`` is the dotted name of the remote exception's type, ``remote_traceback``
    its formatted traceback.
    """

    def __init__(self, message: str, exc_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.exc_type = exc_type
        self.remote_traceback = remote_traceback


class TimeLimitExceeded(TaskFailed):
    """The task ran past its hard ``time_limit``; its worker process was killed."""


class MemoryLimitExceeded(TaskFailed):
    """The task's worker child went over ``--max-memory-per-child`` while running it; the
    child was killed."""


class WorkerLost(TaskFailed):
    """The task's worker process died on each of its deliveries; it was dead-lettered."""


class DeadLettered(TaskFailed):
    """The message was moved to the dead-letter store (the message says why)."""


class TaskRevoked(TaskFailed):
    """The task was revoked, or expired, before it ran."""


class SoftTimeLimitExceeded(BaseException):
    """Raised inside a task when it reaches its ``soft_time_limit``: clean up and return."""


class RemoteTraceback(TaskmillError):
    """Carries a remote traceback as the ``__cause__`` of a re-raised task exception."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'
