"""Messages a worker cannot run go to the dead-letter store with the reason, their result
says so, and the worker goes on with the next message."""

from __future__ import annotations

import pickle
import re

import pytest

from taskmill import DeadLettered
from taskmill.brokers.base import Outgoing
from taskmill.message import Message, encode, new_id

#: (what it is, body, a fragment of the reason it is dead-lettered with)
BAD_BODIES = [
    ("garbage bytes", b"\x00\xff\xfe not a message at all", "is not accepted"),
    ("a pickle", b"p" + pickle.dumps({"task": "faults.square", "args": [2]}), "b'p'"),
    ("invalid JSON", b"j{not json", "not valid JSON"),
    ("a JSON list", b"j[1, 2, 3]", "not a JSON object"),
    ("missing fields", b'j{"v": 1, "id": "x", "args": []}', "'task' is missing"),
    ("an unknown task", None, "unknown task 'tasks.no_such_task'"),
    ("an oversized message", b'j{"pad": "' + b"x" * (1 << 20) + b'"}', "oversized message"),
]


def bad_message(body: bytes | None) -> Outgoing:
    id = new_id()
    if body is None:  # well formed, for a task the worker does not have
        body = encode(Message(id=id, task="tasks.no_such_task", args=(1,)))
    return Outgoing(id=id, queue="default", body=body)


def test_bad_messages_are_dead_lettered_with_their_reason_and_the_worker_goes_on(workspace):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=1)
    broker = tasks.app.broker
    sent = {what: bad_message(body) for what, body, _ in BAD_BODIES}

    broker.enqueue(list(sent.values()))
    after = tasks.square.delay(7)

    assert after.get(timeout=15) == 49
    dead = {d.id: d for d in broker.dead_letters()}
    for what, _, reason in BAD_BODIES:
        message = sent[what]
        assert message.id in dead, what
        assert reason in dead[message.id].reason, what
        result = tasks.app.AsyncResult(message.id)
        assert result.status == "FAILURE", what
        with pytest.raises(DeadLettered, match=re.escape(reason)):
            result.get(timeout=5)
    assert broker.stats()["default"].dead == len(BAD_BODIES)
    assert worker.process.poll() is None
    assert "Traceback" not in worker.log()


def test_a_deeply_nested_message_is_dead_lettered_not_a_crash_loop(workspace):
    # json raises RecursionError, not ValueError, on deep nesting: the worker must still
    # see a bad message in it, not die on it again and again
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    workspace.start_worker(concurrency=1)
    nested = bad_message(b"j" + b"[" * 100_000 + b"]" * 100_000)

    tasks.app.broker.enqueue([nested])

    with pytest.raises(DeadLettered):
        tasks.app.AsyncResult(nested.id).get(timeout=10)
    assert tasks.square.delay(7).get(timeout=10) == 49
