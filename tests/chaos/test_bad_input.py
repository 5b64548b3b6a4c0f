"""Bad messages mixed among good ones: every bad one reaches the dead-letter store with its
reason within a second, every good one completes, and the worker never dies. The decoder
itself, fed any bytes at all, returns a Message or raises MessageDecodeError — nothing
else."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger import tally
from runs import unfinished

from taskmill import MessageDecodeError
from taskmill.brokers.base import Outgoing
from taskmill.message import Message, decode, encode, new_id
from taskmill.serializers import Serializer

MAX_BYTES = 4096

#: each kind of bad message, and a fragment of the reason it must be dead-lettered with
REASONS = {
    "garbage": "undecodable message",
    "truncated": "undecodable message",
    "unknown task": "unknown task",
    "oversized": "oversized message",
    "wrong field types": "undecodable message",
    "body of another id": "does not match",
}


#: per field, values of a type it must not have
WRONG_TYPES = {
    "id": [None, 12, [1], {"a": 1}, True],
    "task": [None, 12, [1], {"a": 1}, True],
    "args": [None, 12, "text", {"a": 1}, True],
    "kwargs": [None, 12, "text", [1], True],
    "expires": ["text", [1], {"a": 1}, True],
    "retries": ["text", -1, 1.5, True],
    "parent": [12, [1], {"a": 1}],
    "lead": [12, "text", {"a": 1}],
}


def bad_body(kind: str, id: str, task: str, rng: random.Random) -> bytes:
    """A bad message body of ``kind`` for the delivery ``id`` of ``task``."""
    good = encode(Message(id=id, task=task, args=(rng.randrange(100),)))
    if kind == "garbage":
        return rng.randbytes(rng.randrange(0, 200))
    if kind == "truncated":
        return good[: rng.randrange(0, len(good) - 1)]
    if kind == "unknown task":
        return encode(Message(id=id, task=f"no.such.task{rng.randrange(1000)}", args=(1,)))
    if kind == "oversized":
        return encode(Message(id=id, task=task, args=("x" * (MAX_BYTES + 10),)))
    if kind == "wrong field types":
        field = rng.choice(list(WRONG_TYPES))
        envelope = json.loads(good[1:])
        envelope[field] = rng.choice(WRONG_TYPES[field])
        return b"j" + json.dumps(envelope).encode()
    assert kind == "body of another id"
    return encode(Message(id=new_id(), task=task, args=(3,)))


BAD_INPUT_RUNS = {"quick": (2_000, 500), "full": (10_000, 2_000)}
BAD_PER_SECOND = 1_000


@pytest.mark.parametrize(
    "run", [pytest.param("quick"), pytest.param("full", marks=pytest.mark.chaos)]
)
@pytest.mark.timeout(600)
def test_bad_messages_are_dead_lettered_within_a_second_and_the_worker_never_dies(
    workspace, figures, run
):
    bad_count, good_count = BAD_INPUT_RUNS[run]
    workspace.write_tasks(settings=f"lease_s=2, max_message_bytes={MAX_BYTES}")
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)
    pids = {worker.pid, *worker.children()}
    broker = tasks.app.broker
    rng = random.Random(bad_count)
    kinds = list(REASONS)
    bad: dict[str, str] = {}
    enqueued_at: dict[str, float] = {}
    expected: dict[str, Any] = {}

    began = time.monotonic()
    for start in range(0, bad_count, 100):
        # paced: a stream of BAD_PER_SECOND, so a delay measures handling, not a backlog
        time.sleep(max(0.0, began + start / BAD_PER_SECOND - time.monotonic()))
        batch = []
        for _ in range(100):
            id = new_id()
            bad[id] = kinds[len(bad) % len(kinds)]
            batch.append(
                Outgoing(id=id, queue="default", body=bad_body(bad[id], id, tasks.square.name, rng))
            )
        # good ones mixed in between, as a client sends them
        for x in range(start * good_count // bad_count, (start + 100) * good_count // bad_count):
            expected[tasks.square.delay(x).id] = x * x
        now = time.time()
        broker.enqueue(batch)
        enqueued_at.update(dict.fromkeys((m.id for m in batch), now))

    def all_dead() -> bool:
        return len(broker.dead_letters(limit=bad_count + 10)) >= bad_count

    workspace.wait_until(all_dead, 60, "every bad message in the dead-letter store", 0.2)
    workspace.wait_until(lambda: not unfinished(tasks.app, expected), 60, "the good tasks")

    dead = {d.id: d for d in broker.dead_letters(limit=bad_count + 10)}
    assert set(dead) == set(bad)
    delays = [dead[id].dead_at - enqueued_at[id] for id in bad]
    for id, kind in bad.items():
        assert REASONS[kind] in dead[id].reason, (kind, dead[id].reason)
    t = tally(tasks.app, expected)
    figures.record(
        "bad input",
        load=f"{good_count:,} valid tasks, 2 children",
        faults=f"{bad_count:,} bad messages, {BAD_PER_SECOND:,}/s (garbage, truncated, "
        "unknown task, oversized, "
        "wrong field types, another id's body)",
        tally=t,
        duplicates="—",
        recovery=f"dead-lettered with the reason ≤ {max(delays):.2f} s after enqueue (max); "
        "worker and children never restarted",
    )
    t.check()
    assert max(delays) <= 1.0
    assert {worker.pid, *worker.children()} == pids
    assert "Traceback" not in worker.log()


# -- the decoder, fuzzed ----------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELDS = ["v", "id", "task", "args", "kwargs", "created", "expires", "parent", "root", "chunk"]
FIELDS += ["singles", "lead", "retries", "time_limit"]
VALID = {"v": 1, "id": "an-id", "task": "square", "args": [2], "kwargs": {}, "created": 1.0}
#: a valid envelope with some fields replaced, added or removed
ENVELOPES = st.builds(
    lambda changed, removed: (
        b"j"
        + json.dumps({k: v for k, v in {**VALID, **changed}.items() if k not in removed}).encode()
    ),
    st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=3),
    st.sets(st.sampled_from(FIELDS), max_size=2),
)
SIGNED = Serializer("json", b"k" * 32)


def assert_decodes_or_refuses(body: bytes, serializer: Serializer | None) -> None:
    try:
        message = decode(body, serializer)
    except MessageDecodeError as exc:
        assert str(exc)
        return
    assert isinstance(message.id, str)
    assert isinstance(message.task, str)
    assert isinstance(message.args, tuple)
    assert isinstance(message.kwargs, dict)
    assert isinstance(message.leading, tuple)
    assert message.parent_id is None or isinstance(message.parent_id, str)
    assert message.root_id is None or isinstance(message.root_id, str)


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fuzz(body: bytes) -> None:
    assert_decodes_or_refuses(body, None)
    assert_decodes_or_refuses(body, Serializer("json"))
    assert_decodes_or_refuses(body, SIGNED)
    signed = SIGNED.dumps(json.loads(body[1:])) if body[:1] == b"j" and _is_json(body) else b""
    assert_decodes_or_refuses(signed, SIGNED)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body[1:])
    except ValueError:
        return False
    return True


BODIES = st.binary(max_size=300) | ENVELOPES | st.binary(max_size=40).map(lambda b: b"j" + b)


@pytest.mark.parametrize(
    "examples",
    [pytest.param(400, id="quick"), pytest.param(5_000, id="full", marks=pytest.mark.chaos)],
)
@pytest.mark.timeout(600)
def test_the_decoder_turns_any_bytes_into_a_message_or_a_decode_error(figures, examples):
    outcomes = {"decoded": 0, "refused": 0}

    @settings(FUZZ, max_examples=examples)
    @given(BODIES)
    def decode_anything(body: bytes) -> None:
        fuzz(body)
        try:
            decode(body)
            outcomes["decoded"] += 1
        except MessageDecodeError:
            outcomes["refused"] += 1

    decode_anything()
    figures.record(
        "decoder fuzz (Hypothesis)",
        load=f"{sum(outcomes.values()):,} generated bodies: random bytes, a JSON tag and "
        "random bytes, valid envelopes with fields set to random JSON or removed",
        faults="each body decoded plainly, by a JSON app and by a signing app (and signed)",
        lost="—",
        duplicates="—",
        recovery=f"{outcomes['decoded']:,} decoded to a well-typed Message, "
        f"{outcomes['refused']:,} refused with MessageDecodeError, nothing else",
    )
