"""Turning task arguments and results into bytes, and back.

JSON is the default and the only format a worker accepts unless the app opts into
another: a JSON body can be read by anyone, and decoding it can never run code.

Every encoded payload starts with a one-byte tag naming its format (``j`` for JSON), so a
worker recognises a format it does not accept before decoding a single byte of it.

Pickle (``p``) is accepted only by an app that chose it (``App(serializer="pickle")``,
which :class:`Serializer` stands for), because unpickling runs code. With a signing key
every payload is signed, ``s`` + HMAC-SHA256(key, inner payload) + the inner payload, and
a pickle is unpickled only after its signature checks out::

    s | 32-byte HMAC over everything after it | p | pickle bytes      (or j | JSON)

An app with a key refuses unsigned messages of any format, and never unpickles an
unsigned or altered payload: :class:`MessageDecodeError` says which, so the worker
dead-letters the message with that reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from typing import Any, Final

from .errors import ConfigurationError, MessageDecodeError

__all__ = [
    "FORMATS",
    "JSON_TAG",
    "PICKLE_TAG",
    "SIGNED_TAG",
    "Serializer",
    "describe_unencodable",
    "dumps",
    "loads",
]

JSON_TAG = b"j"
PICKLE_TAG = b"p"
SIGNED_TAG = b"s"
FORMATS: Final = ("json", "pickle")
MAC_BYTES: Final = hashlib.sha256().digest_size

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
    return _json_loads(data)


def _json_loads(data: bytes) -> Any:
    try:
        return _decoder.decode(data[1:].decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageDecodeError(f"payload is not valid JSON: {exc}") from exc
    except RecursionError:
        raise MessageDecodeError("payload is not valid JSON: nested too deeply") from None


class Serializer:
    """One app's way of turning payloads into bytes: JSON or pickle, signed with its key.

    ``dumps`` raises TypeError for an object the format cannot carry. ``loads`` raises
    MessageDecodeError for a payload this app must not or cannot decode; with
    ``signed_only`` (messages, when the app has a key) an unsigned payload is refused
    whatever its format, and a pickle is never unpickled unless its signature checks out
    (or the app has no key at all: an embedded broker only).
    """

    __slots__ = ("_mac", "format", "key")

    def __init__(self, format: str = "json", key: bytes | None = None) -> None:
        if format not in FORMATS:
            raise ConfigurationError(f"serializer must be one of {FORMATS}, not {format!r}")
        self.format = format
        self.key = key
        # keyed once; each signature copies it (half the cost of keying it every time)
        self._mac = None if key is None else hmac.new(key, digestmod=hashlib.sha256)

    def _sign(self, inner: bytes) -> bytes:
        assert self._mac is not None
        mac = self._mac.copy()
        mac.update(inner)
        return mac.digest()

    def __repr__(self) -> str:
        return f"<Serializer {self.format}{' signed' if self.key else ''}>"

    def dumps(self, obj: Any) -> bytes:
        """Encode ``obj`` in this app's format, signed when it has a key."""
        inner = dumps(obj) if self.format == "json" else _pickle_dumps(obj)
        if self._mac is None:
            return inner
        return SIGNED_TAG + self._sign(inner) + inner

    def loads(self, data: bytes, signed_only: bool = False) -> Any:
        """Decode a payload; MessageDecodeError saying why one is refused."""
        if data[:1] == SIGNED_TAG:
            return self._inner(self._verified(data), verified=True)
        if signed_only and self.key is not None:
            raise MessageDecodeError(
                "unsigned payload refused: this app signs its messages (signing_key is set)"
            )
        return self._inner(data, verified=False)

    def _verified(self, data: bytes) -> bytes:
        if self._mac is None:
            raise MessageDecodeError("signed payload, but this app has no signing_key to check it")
        mac, inner = data[1 : 1 + MAC_BYTES], data[1 + MAC_BYTES :]
        if not hmac.compare_digest(mac, self._sign(inner)):
            raise MessageDecodeError(
                "bad signature: the payload was altered, or signed with another key"
            )
        return inner

    def _inner(self, data: bytes, verified: bool) -> Any:
        tag = data[:1]
        if tag == PICKLE_TAG and self.format == "pickle":
            if not verified and self.key is not None:
                raise MessageDecodeError("unsigned pickle refused: this app has a signing_key")
            return _pickle_loads(data)
        if tag == PICKLE_TAG:
            raise MessageDecodeError(
                f"payload format {tag!r} is not accepted (this app accepts JSON only; "
                'pickle needs App(serializer="pickle"))'
            )
        return loads(data)


def _pickle_dumps(obj: Any) -> bytes:
    try:
        return PICKLE_TAG + pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        raise TypeError(f"cannot be pickled: {exc}") from exc


def _pickle_loads(data: bytes) -> Any:
    try:
        return pickle.loads(data[1:])
    except Exception as exc:  # unpickling imports and calls code: any error may come out
        raise MessageDecodeError(f"payload cannot be unpickled here: {exc!r}") from exc


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
