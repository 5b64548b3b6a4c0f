"""Pickle travels only signed: a worker of a pickle app with a signing key dead-letters an
unsigned, altered or foreign-signed message without unpickling a byte of it."""

from __future__ import annotations

import pickle

import executor_calls as calls
import pytest

from taskmill import App, ConfigurationError, DeadLettered, Executor
from taskmill.brokers.base import Outgoing
from taskmill.calls import CALL_TASK
from taskmill.message import Message, encode, new_id
from taskmill.serializers import Serializer


def _envelope(id: str, marker: str) -> dict:
    return {"v": 1, "id": id, "task": CALL_TASK, "args": [None, calls.Touch(marker)], "kwargs": {}}


def _signed(app: App, id: str, marker: str) -> bytes:
    return encode(
        Message(id=id, task=CALL_TASK, args=(None, calls.square, calls.Touch(marker))),
        app.serializer,
    )


def test_unsigned_altered_and_foreign_messages_are_dead_lettered_never_unpickled(
    redis_app, tmp_path
):
    redis_app.start_worker(1)
    app = redis_app.app
    bad = {}
    id = new_id()
    bad["unsigned pickle"] = (id, b"p" + pickle.dumps(_envelope(id, str(tmp_path / "u"))))
    id = new_id()
    body = _signed(app, id, str(tmp_path / "AAAA"))
    bad["altered"] = (id, body.replace(b"AAAA", b"BBBB"))
    id = new_id()
    foreign = Serializer("pickle", b"another key, 16+ bytes")
    bad["foreign key"] = (
        id,
        encode(
            Message(id=id, task=CALL_TASK, args=(None, calls.Touch(str(tmp_path / "f")))), foreign
        ),
    )
    id = new_id()
    bad["unsigned json"] = (id, encode(Message(id=id, task="anything", args=(1,))))
    app.broker.enqueue([Outgoing(id=id, queue="default", body=body) for id, body in bad.values()])

    reasons = {
        "unsigned pickle": "unsigned payload refused",
        "altered": "bad signature",
        "foreign key": "bad signature",
        "unsigned json": "unsigned payload refused",
    }
    for what, (id, _) in bad.items():
        with pytest.raises(DeadLettered, match=reasons[what]):
            app.AsyncResult(id).get(timeout=20)
    assert sorted(p.name for p in tmp_path.iterdir() if len(p.name) <= 4) == []
    dead = {d.id for d in app.broker.dead_letters()}
    assert {id for id, _ in bad.values()} <= dead
    with Executor(app=app) as ex:  # the worker goes on
        assert ex.submit(calls.square, 4).result(timeout=20) == 16


def test_pickle_over_a_network_broker_needs_a_signing_key():
    with pytest.raises(ConfigurationError, match="signing_key"):
        App("x", broker="redis://127.0.0.1:6379/15", serializer="pickle")
    App("x", broker="redis://127.0.0.1:6379/15", serializer="pickle", signing_key="k" * 16)


def test_an_executor_needs_a_pickle_app(tmp_path):
    app = App("json", broker=f"sqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(ConfigurationError, match="serializer='pickle'"):
        Executor(app=app)
