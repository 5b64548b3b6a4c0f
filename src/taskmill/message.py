"""The message envelope: what a client sends for one task call, and its codec.

A message is encoded once by the client and decoded once by the worker; the broker only
ever sees the bytes. Fields a worker does not know are ignored, so old workers read
messages of newer clients.

A *chunk* message (``chunk=True``, sent by ``Task.map`` and ``Executor.map``) carries many
calls of one task: ``args`` is a list of argument lists (with ``singles``, of single
arguments), and the task runs once per item, with the chunk's ``leading`` arguments (if
any) before the item's own.
``retries`` and ``time_limit`` override the task's own options for this message (the
Executor's per-executor settings travel this way).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import serializers
from .errors import MessageDecodeError

__all__ = ["VERSION", "Message", "decode", "encode", "new_id"]

VERSION = 1


def new_id() -> str:
    """A new task id: a random UUID4 string, as Celery uses."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Message:
    """One task call. ``expires`` is an absolute Unix time after which it must not run."""

    id: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    expires: float | None = None
    created_at: float = 0.0
    parent_id: str | None = None
    root_id: str | None = None
    chunk: bool = False
    singles: bool = False
    leading: tuple[Any, ...] = ()
    retries: int | None = None
    time_limit: float | None = None


def encode(message: Message, serializer: serializers.Serializer | None = None) -> bytes:
    """Encode a message (JSON unless the app's ``serializer`` says otherwise); TypeError if
    an argument is something the format cannot carry."""
    envelope: dict[str, Any] = {
        "v": VERSION,
        "id": message.id,
        "task": message.task,
        "args": message.args,
        "kwargs": message.kwargs,
        "created": message.created_at or time.time(),
    }
    if message.expires is not None:
        envelope["expires"] = message.expires
    if message.parent_id is not None:
        envelope["parent"] = message.parent_id
        envelope["root"] = message.root_id
    if message.chunk:
        envelope["chunk"] = True
    if message.singles:
        envelope["singles"] = True
    if message.leading:
        envelope["lead"] = message.leading
    if message.retries is not None:
        envelope["retries"] = message.retries
    if message.time_limit is not None:
        envelope["time_limit"] = message.time_limit
    if serializer is None:
        return serializers.dumps(envelope)
    return serializer.dumps(envelope)


def decode(body: bytes, serializer: serializers.Serializer | None = None) -> Message:
    """Decode a message; MessageDecodeError saying what is wrong with it (an app with a
    signing key refuses unsigned messages)."""
    if serializer is None:
        envelope = serializers.loads(body)
    else:
        envelope = serializer.loads(body, signed_only=True)
    if not isinstance(envelope, dict):
        raise MessageDecodeError("message is not a JSON object")
    try:
        return Message(
            id=_field(envelope, "id", str),
            task=_field(envelope, "task", str),
            args=tuple(_field(envelope, "args", (list, tuple))),
            kwargs=_field(envelope, "kwargs", dict),
            expires=_optional_number(envelope, "expires"),
            created_at=_optional_number(envelope, "created") or 0.0,
            parent_id=_optional(envelope, "parent", str),
            root_id=_optional(envelope, "root", str),
            chunk=bool(envelope.get("chunk")),
            singles=bool(envelope.get("singles")),
            leading=tuple(_optional(envelope, "lead", (list, tuple)) or ()),
            retries=_optional_count(envelope, "retries"),
            time_limit=_optional_number(envelope, "time_limit"),
        )
    except TypeError as exc:
        raise MessageDecodeError(str(exc)) from exc


def _field(envelope: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = envelope.get(name)
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else kind[0].__name__
        raise MessageDecodeError(f"message field {name!r} is missing or not a {expected}")
    return value


def _optional(envelope: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """An optional field: absent or null is None, anything but a ``kind`` is refused."""
    value = envelope.get(name)
    if value is None or isinstance(value, kind):
        return value
    expected = kind.__name__ if isinstance(kind, type) else kind[0].__name__
    raise MessageDecodeError(f"message field {name!r} is not a {expected}")


def _optional_count(envelope: dict[str, Any], name: str) -> int | None:
    value = envelope.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MessageDecodeError(f"message field {name!r} is not a count")
    return value


def _optional_number(envelope: dict[str, Any], name: str) -> float | None:
    value = envelope.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MessageDecodeError(f"message field {name!r} is not a number")
    return float(value)
