"""The message envelope: what a client sends for one task call, and its codec.

A message is encoded once by the client and decoded once by the worker; the broker only
ever sees the bytes. Fields a worker does not know are ignored, so old workers read
messages of newer clients.
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


def encode(message: Message) -> bytes:
    """Encode a message; TypeError if an argument is something JSON cannot carry."""
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
    return serializers.dumps(envelope)


def decode(body: bytes) -> Message:
    """Decode a message; MessageDecodeError saying what is wrong with it."""
    envelope = serializers.loads(body)
    if not isinstance(envelope, dict):
        raise MessageDecodeError("message is not a JSON object")
    try:
        return Message(
            id=_field(envelope, "id", str),
            task=_field(envelope, "task", str),
            args=tuple(_field(envelope, "args", list)),
            kwargs=_field(envelope, "kwargs", dict),
            expires=_optional_number(envelope, "expires"),
            created_at=_optional_number(envelope, "created") or 0.0,
            parent_id=envelope.get("parent"),
            root_id=envelope.get("root"),
        )
    except TypeError as exc:
        raise MessageDecodeError(str(exc)) from exc


def _field(envelope: dict[str, Any], name: str, kind: type) -> Any:
    value = envelope.get(name)
    if not isinstance(value, kind):
        raise MessageDecodeError(f"message field {name!r} is missing or not a {kind.__name__}")
    return value


def _optional_number(envelope: dict[str, Any], name: str) -> float | None:
    value = envelope.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MessageDecodeError(f"message field {name!r} is not a number")
    return float(value)
