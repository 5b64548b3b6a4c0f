"""The message codec: what a client encodes, a worker decodes; anything else is refused."""

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskmill import MessageDecodeError
from taskmill.message import Message, decode, encode

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(args=st.lists(json_values, max_size=5), kwargs=st.dictionaries(st.text(), json_values))
def test_round_trip(args, kwargs):
    msg = Message(id="abc", task="tasks.add", args=tuple(args), kwargs=kwargs, created_at=1.0)
    back = decode(encode(msg))
    assert back.id == "abc"
    assert back.task == "tasks.add"
    assert list(back.args) == args
    assert back.kwargs == kwargs


@given(st.binary())
def test_arbitrary_bytes_decode_or_raise_message_decode_error(data):
    with contextlib.suppress(MessageDecodeError):
        decode(data)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty"),
        (b"\x80\x04garbage", "not accepted"),
        (b"p" + b"\x80\x04\x95", "not accepted"),  # a pickle is never decoded
        (b"j{not json", "not valid JSON"),
        (b"j[1, 2]", "not a JSON object"),
        (b'j{"id": "x", "args": [], "kwargs": {}}', "'task'"),
        (b'j{"id": "x", "task": "t", "args": {}, "kwargs": {}}', "'args'"),
        (b'j{"id": "x", "task": "t", "args": [], "kwargs": {}, "expires": "soon"}', "expires"),
    ],
)
def test_bad_bodies_are_refused_with_the_reason(body, says):
    with pytest.raises(MessageDecodeError, match=says):
        decode(body)


def test_encoded_message_is_tagged_json():
    body = encode(Message(id="1", task="t", args=(1,), expires=5.0))
    assert body[:1] == b"j"
    assert json.loads(body[1:])["expires"] == 5.0
