"""Results: what a client holds after sending a task, and how outcomes travel as bytes.

A result body is tagged JSON: ``{"value": ...}`` for SUCCESS, or ``{"error": {...}}``
for FAILURE and REVOKED, with the exception's dotted type name, its arguments, its
message and the remote traceback. ``get()`` re-raises the task's own exception type when
it can be rebuilt here (its module already imported, its arguments accepted), with the
remote traceback as ``__cause__``; otherwise it raises :class:`TaskFailed`.
"""

from __future__ import annotations

import sys
import traceback as tb_module
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import errors, serializers, states
from .brokers.base import ResultRecord, StoredResult
from .errors import RemoteTraceback, ResultTimeout, TaskFailed

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "Result",
    "encode_error",
    "encode_value",
    "error_record",
    "exception_record",
    "rebuild_error",
    "value_record",
]

R = TypeVar("R")


def encode_value(value: Any) -> bytes:
    """The body of a SUCCESS result; TypeError if JSON cannot carry the value."""
    return serializers.dumps({"value": value})


def encode_error(exc: BaseException | None, type_name: str, message: str, tb: str) -> bytes:
    """The body of a FAILURE or REVOKED result."""
    args: list[Any] = []
    if exc is not None and serializers.describe_unencodable(list(exc.args)) is None:
        args = list(exc.args)
    return serializers.dumps(
        {"error": {"type": type_name, "args": args, "message": message, "traceback": tb}}
    )


def exception_record(id: str, exc: BaseException, ttl: float) -> ResultRecord:
    """A FAILURE result for an exception raised by a task, with its traceback."""
    kind = type(exc)
    type_name = f"{kind.__module__}.{kind.__qualname__}"
    tb = "".join(tb_module.format_exception(exc))
    return ResultRecord(id, states.FAILURE, encode_error(exc, type_name, str(exc), tb), ttl)


def error_record(
    id: str, kind: type[errors.TaskFailed], message: str, ttl: float, state: str = states.FAILURE
) -> ResultRecord:
    """A FAILURE (or REVOKED) result decided by taskmill itself: time limit, worker lost."""
    type_name = f"{kind.__module__}.{kind.__qualname__}"
    return ResultRecord(id, state, encode_error(None, type_name, message, ""), ttl)


def value_record(id: str, value: Any, ttl: float) -> ResultRecord:
    """A SUCCESS result."""
    return ResultRecord(id, states.SUCCESS, encode_value(value), ttl)


def rebuild_error(payload: dict[str, Any]) -> BaseException:
    """The exception a FAILURE body describes, as close to the original as possible."""
    type_name = str(payload.get("type", ""))
    message = str(payload.get("message", ""))
    remote_tb = str(payload.get("traceback", ""))
    exc = _rebuild_known_type(type_name, payload.get("args") or [], message, remote_tb)
    if exc is None:
        exc = TaskFailed(f"{type_name}: {message}", type_name, remote_tb)
    if remote_tb:
        exc.__cause__ = RemoteTraceback(remote_tb)
    return exc


def _rebuild_known_type(
    type_name: str, args: list[Any], message: str, remote_tb: str
) -> BaseException | None:
    """Rebuild only types whose module is imported here already: a result never imports."""
    module_name, _, qualname = type_name.rpartition(".")
    module = sys.modules.get(module_name)
    kind: Any = module
    for part in qualname.split("."):
        kind = getattr(kind, part, None)
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        return None
    if issubclass(kind, TaskFailed):
        return kind(message, type_name, remote_tb)
    try:
        return kind(*args)
    except Exception:
        return None


class Result(Generic[R]):
    """The handle of one task call: its state, and its value once it has one."""

    def __init__(self, app: App, id: str) -> None:
        self.app = app
        self.id = id
        self._final: StoredResult | None = None

    def __repr__(self) -> str:
        return f"<Result {self.id} {self.status}>"

    def _lookup(self) -> StoredResult | None:
        if self._final is not None:
            return self._final
        found = self.app.broker.fetch_results([self.id]).get(self.id)
        if found is not None and found.state in states.FINAL_STATES:
            self._final = found
        return found

    @property
    def status(self) -> str:
        """PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED; UNKNOWN for an id the broker
        does not know (never sent, forgotten, or its result expired)."""
        found = self._lookup()
        return states.UNKNOWN if found is None else found.state

    state = status

    def ready(self) -> bool:
        """True once the task has a final result."""
        return self.status in states.FINAL_STATES

    def successful(self) -> bool:
        return self.status == states.SUCCESS

    def failed(self) -> bool:
        return self.status == states.FAILURE

    @property
    def traceback(self) -> str | None:
        """The remote traceback of a failed task, else None."""
        found = self._lookup()
        if found is None or found.body is None or found.state == states.SUCCESS:
            return None
        error = serializers.loads(found.body).get("error", {})
        return str(error.get("traceback", "")) or None

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Wait for the result and return the task's value.

        A failed task's exception is raised (``propagate=False``: returned instead).
        ``timeout`` in seconds (None waits for ever); ResultTimeout, a TimeoutError,
        when it runs out.
        """
        if self._final is None:
            found = self.app.broker.wait_results([self.id], timeout).get(self.id)
            if found is None:
                raise ResultTimeout(f"task {self.id} did not finish within {timeout}s")
            self._final = found
        value: R = self._value(self._final, propagate)
        return value

    @staticmethod
    def _value(found: StoredResult, propagate: bool) -> Any:
        assert found.body is not None
        payload = serializers.loads(found.body)
        if found.state == states.SUCCESS:
            return payload["value"]
        exc = rebuild_error(payload.get("error", {}))
        if propagate:
            raise exc
        return exc

    def revoke(self) -> bool:
        """Stop the task if it has not started: it will not run, and its state is REVOKED.

        Returns False when it already has a final result. A task already running is not
        interrupted; its result is discarded in favour of REVOKED.
        """
        record = error_record(
            self.id, errors.TaskRevoked, "revoked", self.app.settings.result_ttl, states.REVOKED
        )
        return self.app.broker.revoke(self.id, record)

    def forget(self) -> None:
        """Delete the stored result."""
        self._final = None
        self.app.broker.forget([self.id])
