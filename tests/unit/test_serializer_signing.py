"""Serializer: JSON or pickle, signed with the app's key; what each app refuses, and why."""

from __future__ import annotations

import pickle

import pytest

from taskmill import ConfigurationError, MessageDecodeError
from taskmill.serializers import Serializer

KEY = b"0123456789abcdef"


@pytest.mark.parametrize(
    ("fmt", "key", "value"),
    [
        ("json", None, {"a": [1, 2.5, "x", None]}),
        ("json", KEY, {"a": [1, 2.5, "x", None]}),
        ("pickle", None, {"a": {1, 2}, "b": (3, b"bytes")}),
        ("pickle", KEY, {"a": {1, 2}, "b": (3, b"bytes")}),
    ],
)
def test_round_trip(fmt, key, value):
    s = Serializer(fmt, key)
    data = s.dumps(value)
    assert data[:1] == (b"s" if key else {"json": b"j", "pickle": b"p"}[fmt])
    assert s.loads(data) == value
    assert s.loads(data, signed_only=True) == value or key is None


@pytest.mark.parametrize(
    ("reader", "data", "says"),
    [
        # a JSON app never unpickles, signed or not
        (Serializer("json"), b"p" + pickle.dumps(1), "not accepted"),
        (Serializer("json", KEY), Serializer("pickle", KEY).dumps(1), "not accepted"),
        # a keyed app refuses unsigned pickles, and unsigned messages of any format
        (Serializer("pickle", KEY), b"p" + pickle.dumps(1), "unsigned pickle refused"),
        # altered, or signed with another key
        (
            Serializer("pickle", KEY),
            Serializer("pickle", KEY).dumps(12345)[:-3] + b"\x00\x00.",
            "bad signature",
        ),
        (Serializer("pickle", KEY), Serializer("pickle", b"x" * 16).dumps(1), "bad signature"),
        (Serializer("pickle"), Serializer("pickle", KEY).dumps(1), "no signing_key"),
        (Serializer("pickle", KEY), b"s" + b"short", "bad signature"),
        (Serializer("json"), b"j" + b"[" * 100_000, "nested too deeply"),
    ],
)
def test_refusals_say_why(reader, data, says):
    with pytest.raises(MessageDecodeError, match=says):
        reader.loads(data)


def test_a_keyed_app_refuses_unsigned_messages_of_any_format():
    with pytest.raises(MessageDecodeError, match="unsigned payload refused"):
        Serializer("json", KEY).loads(b'j{"id": 1}', signed_only=True)
    assert Serializer("json", KEY).loads(b'j{"id": 1}') == {"id": 1}  # a result: harmless


def test_unpicklable_values_raise_type_error():
    with pytest.raises(TypeError, match="pickle"):
        Serializer("pickle").dumps(lambda: 1)


def test_an_unknown_format_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        Serializer("yaml")
