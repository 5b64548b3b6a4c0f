"""Turning task arguments and results into bytes, and back.

JSON is the default and the only format a worker accepts unless the app opts into
another: a JSON body can be read by anyone, and decoding it can never run code.

Every encoded payload starts with a one-byte tag naming its format (``j`` for JSON), so a
worker recognises a format it does not accept before decoding a single byte of it.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import MessageDecodeError

__all__ = ["JSON_TAG", "describe_unencodable", "dumps", "loads"]

JSON_TAG = b"j"

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=True)
_decoder = json.JSONDecoder()


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as tagged JSON; TypeError (or ValueError) if JSON cannot carry it."""
    return JSON_TAG + _encoder.encode(obj).encode()


def loads(data: bytes) -> Any:
    """Decode what :func:`dumps` made; MessageDecodeError for anything else."""
    if not data:
        raise MessageDecodeError("empty payload")
    tag = data[:1]
    if tag != JSON_TAG:
        raise MessageDecodeError(
            f"payload format {tag!r} is not accepted (this worker accepts JSON only)"
        )
    try:
        return _decoder.decode(data[1:].decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageDecodeError(f"payload is not valid JSON: {exc}") from exc


def describe_unencodable(value: Any) -> str | None:
    """Why JSON cannot carry ``value`` (None if it can): names the offending part."""
    try:
        _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        return _find_unencodable(value, "") or str(exc)
    return None


def _find_unencodable(value: Any, path: str) -> str | None:
    if value is None or isinstance(value, (str, int, float, bool)):
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _find_unencodable(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return f"{path or 'value'} has a key of type {type(key).__name__}"
            found = _find_unencodable(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    where = f" at {path}" if path else ""
    return f"a {type(value).__name__}{where} is not JSON-serializable"
