"""Results: what a client holds after sending a task, and how outcomes travel as bytes.

A result body is tagged JSON: ``{"value": ...}`` for SUCCESS, or ``{"error": {...}}``
for FAILURE and REVOKED, with the exception's dotted type name, its arguments, its
message and the remote traceback. ``get()`` re-raises the task's own exception type when
it can be rebuilt here (its module already imported, its arguments accepted), with the
remote traceback as ``__cause__``; otherwise it raises :class:`TaskFailed`. An app with
``serializer="pickle"`` carries the exception object itself where it pickles, so ``get()``
raises the very exception the task raised.

A *chunk* message (many calls of one task, from ``Task.map`` or ``Executor.map``) has one
SUCCESS result for the whole chunk: ``{"values": [...], "errors": [[index, error], ...]}``,
each item's outcome in order (``None`` in ``values`` where the item failed).
"""

from __future__ import annotations

import itertools
import sys
import threading
import traceback as tb_module
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import errors, serializers, states
from .brokers.base import ResultRecord, StoredResult
from .errors import RemoteTraceback, ResultTimeout, TaskFailed
from .progress import Progress, progress_id, read_progress

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "Outstanding",
    "Result",
    "chunk_outcomes",
    "chunk_record",
    "encode_error",
    "encode_value",
    "error_payload",
    "error_record",
    "exception_record",
    "rebuild_error",
    "value_record",
]

R = TypeVar("R")


def _dumps(obj: Any, serializer: serializers.Serializer | None) -> bytes:
    return serializers.dumps(obj) if serializer is None else serializer.dumps(obj)


def encode_value(value: Any, serializer: serializers.Serializer | None = None) -> bytes:
    """The body of a SUCCESS result; TypeError if the format cannot carry the value."""
    return _dumps({"value": value}, serializer)


def error_payload(
    exc: BaseException | None,
    type_name: str,
    message: str,
    tb: str,
    serializer: serializers.Serializer | None = None,
) -> dict[str, Any]:
    """What a failure says: type, args, message, traceback (and, with pickle, the object)."""
    args: list[Any] = []
    if exc is not None and serializers.describe_unencodable(list(exc.args)) is None:
        args = list(exc.args)
    payload: dict[str, Any] = {"type": type_name, "args": args, "message": message, "traceback": tb}
    if exc is not None and serializer is not None and serializer.format == "pickle":
        try:
            serializer.dumps(exc)
        except (TypeError, ValueError):
            pass  # an exception that does not pickle is rebuilt from its type name
        else:
            payload["exc"] = exc
    return payload


def encode_error(
    exc: BaseException | None,
    type_name: str,
    message: str,
    tb: str,
    serializer: serializers.Serializer | None = None,
) -> bytes:
    """The body of a FAILURE or REVOKED result."""
    return _dumps({"error": error_payload(exc, type_name, message, tb, serializer)}, serializer)


def _describe(exc: BaseException) -> tuple[str, str]:
    kind = type(exc)
    return f"{kind.__module__}.{kind.__qualname__}", "".join(tb_module.format_exception(exc))


def exception_record(
    id: str, exc: BaseException, ttl: float, serializer: serializers.Serializer | None = None
) -> ResultRecord:
    """A FAILURE result for an exception raised by a task, with its traceback."""
    type_name, tb = _describe(exc)
    body = encode_error(exc, type_name, str(exc), tb, serializer)
    return ResultRecord(id, states.FAILURE, body, ttl)


def error_record(
    id: str,
    kind: type[errors.TaskFailed],
    message: str,
    ttl: float,
    state: str = states.FAILURE,
    serializer: serializers.Serializer | None = None,
) -> ResultRecord:
    """A FAILURE (or REVOKED) result decided by taskmill itself: time limit, worker lost."""
    type_name = f"{kind.__module__}.{kind.__qualname__}"
    return ResultRecord(id, state, encode_error(None, type_name, message, "", serializer), ttl)


def value_record(
    id: str, value: Any, ttl: float, serializer: serializers.Serializer | None = None
) -> ResultRecord:
    """A SUCCESS result."""
    return ResultRecord(id, states.SUCCESS, encode_value(value, serializer), ttl)


def chunk_record(
    id: str,
    values: Sequence[Any],
    failures: Sequence[tuple[int, BaseException]],
    ttl: float,
    serializer: serializers.Serializer | None = None,
) -> ResultRecord:
    """The SUCCESS result of a chunk message: every item's value, or its exception.

    A value the format cannot carry fails its own item only, with a TypeError.
    """
    values = list(values)
    failures = list(failures)
    try:
        body = _chunk_body(values, failures, serializer)
    except (TypeError, ValueError):
        for index, value in enumerate(values):
            try:
                _dumps(value, serializer)
            except (TypeError, ValueError) as exc:
                values[index] = None
                failures.append((index, TypeError(f"the value cannot be sent back: {exc}")))
        failures.sort(key=lambda f: f[0])
        body = _chunk_body(values, failures, serializer)
    return ResultRecord(id, states.SUCCESS, body, ttl)


def _chunk_body(
    values: list[Any],
    failures: Sequence[tuple[int, BaseException]],
    serializer: serializers.Serializer | None,
) -> bytes:
    errors_out = []
    for index, exc in failures:
        type_name, tb = _describe(exc)
        errors_out.append([index, error_payload(exc, type_name, str(exc), tb, serializer)])
    return _dumps({"values": values, "errors": errors_out}, serializer)


def chunk_outcomes(
    found: StoredResult, serializer: serializers.Serializer | None = None, items: int = 0
) -> tuple[list[Any], dict[int, BaseException]]:
    """A chunk's values in order and its failed items' exceptions, by index.

    A chunk that failed as a whole (worker lost, time limit, revoked) fails each of its
    ``items`` with that exception.
    """
    assert found.body is not None
    payload = serializer.loads(found.body) if serializer else serializers.loads(found.body)
    if "values" in payload:
        failed = {int(i): rebuild_error(error) for i, error in payload.get("errors", ())}
        return list(payload["values"]), failed
    if "value" in payload:  # a plain result where a chunk was expected: never sent by us
        raise TypeError("not a chunk result")
    exc = rebuild_error(payload.get("error", {}))
    return [None] * items, dict.fromkeys(range(items), exc)


def rebuild_error(payload: dict[str, Any]) -> BaseException:
    """The exception a FAILURE body describes, as close to the original as possible."""
    type_name = str(payload.get("type", ""))
    message = str(payload.get("message", ""))
    remote_tb = str(payload.get("traceback", ""))
    exc = payload.get("exc")
    if not isinstance(exc, BaseException):
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


class Outstanding:
    """The results a client holds and has not yet seen final, so one look serves many.

    A program that sends many tasks and then calls ``get()`` on each result would pay a
    round trip per result. Instead, ``get()`` asks about its own id and up to ``WINDOW``
    other outstanding ones in the same look (when there are any), and the results found
    final are kept by their handles: the next ``get()`` calls return at once. Handles
    are held weakly; a result dropped unread costs nothing.

    How many others a look asks about adapts to what looks find, so that a client that
    waits on slow tasks one by one does not ask about the same unfinished ones again and
    again: a look that finds ``k`` others final sets the next look's window to ``2k + 1``
    (at most ``WINDOW``); one that finds none sets it to 0, and the next ``get()`` simply
    waits for its own result, after which looks start again with one other.
    """

    WINDOW = 255

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: weakref.WeakValueDictionary[str, Result[Any]] = (
            weakref.WeakValueDictionary()
        )
        self._window = self.WINDOW

    def add(self, result: Result[Any]) -> None:
        with self._lock:
            self._handles[result.id] = result

    def settle(self, ids: Sequence[str]) -> None:
        with self._lock:
            for id in ids:
                self._handles.pop(id, None)

    def others(self, id: str) -> list[Result[Any]]:
        """Up to the window's count of outstanding handles besides ``id``'s, oldest first."""
        with self._lock:
            if not self._window:
                return []
            picked = itertools.islice(
                (r for i, r in self._handles.items() if i != id), self._window
            )
            return list(picked)

    def looked(self, found_others: int) -> None:
        """A look found ``found_others`` of the others it asked about final."""
        with self._lock:
            self._window = min(self.WINDOW, 2 * found_others + 1) if found_others else 0

    def waited(self) -> None:
        """A ``get()`` waited for its own result: look at one other next time."""
        with self._lock:
            self._window = max(self._window, 1)


class Result(Generic[R]):
    """The handle of one task call: its state, and its value once it has one."""

    def __init__(self, app: App, id: str) -> None:
        self.app = app
        self.id = id
        self._final: StoredResult | None = None
        app.outstanding.add(self)

    def __repr__(self) -> str:
        return f"<Result {self.id} {self.status}>"

    def _lookup(self) -> StoredResult | None:
        if self._final is not None:
            return self._final
        found = self.app.broker.fetch_results([self.id]).get(self.id)
        if found is not None and found.state in states.FINAL_STATES:
            self._final = found
            self.app.outstanding.settle([self.id])
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
        error = self.app.serializer.loads(found.body).get("error", {})
        return str(error.get("traceback", "")) or None

    @property
    def progress(self) -> Progress | None:
        """What the task last reported with ``update_progress(done, total)``, or None."""
        return read_progress(self.app.broker, self.id, self.app.serializer)

    def get(self, timeout: float | None = None, propagate: bool = True) -> R:
        """Wait for the result and return the task's value.

        A failed task's exception is raised (``propagate=False``: returned instead).
        ``timeout`` in seconds (None waits for ever); ResultTimeout, a TimeoutError,
        when it runs out.
        """
        if self._final is None:
            self._look_with_others()
        if self._final is None:
            found = self.app.broker.wait_results([self.id], timeout).get(self.id)
            self.app.outstanding.waited()
            if found is None:
                raise ResultTimeout(f"task {self.id} did not finish within {timeout}s")
            self._final = found
            self.app.outstanding.settle([self.id])
        value: R = self._value(self._final, propagate)
        return value

    def _look_with_others(self) -> None:
        """One look at this result and the other outstanding ones (see Outstanding)."""
        others = self.app.outstanding.others(self.id)
        if not others:
            return
        handles = [self, *others]
        found = self.app.broker.fetch_results([h.id for h in handles], final_only=True)
        for handle in handles:
            if handle.id in found:
                handle._final = found[handle.id]
        self.app.outstanding.settle(list(found))
        self.app.outstanding.looked(len(found) - (self.id in found))

    def _value(self, found: StoredResult, propagate: bool) -> Any:
        assert found.body is not None
        payload = self.app.serializer.loads(found.body)
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
        self.app.broker.forget([self.id, progress_id(self.id)])
