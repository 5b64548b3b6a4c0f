"""Nobody runs code through a worker, and nobody reads a broker password off it.

- a default (JSON) worker never unpickles anything: a pickle that would create a marker
  file when loaded is dead-lettered with the reason, and the marker never appears;
- a signing worker refuses every altered message: random one-byte flips of signed pickle
  messages are all rejected, each with a clear reason, and none runs;
- a password in the broker URL never shows in worker logs, ``taskmill status`` (text or
  JSON), or error messages — whether the broker is down or up.
"""

from __future__ import annotations

import os
import pickle
import random
import sys
import traceback
import uuid
from urllib.parse import quote

import pytest

from redis_server import delete_prefix, free_port, redis_url_or_skip
from taskmill import App, ConfigurationError, MessageDecodeError, TaskmillError
from taskmill.brokers.base import Outgoing
from taskmill.message import Message, decode, encode, new_id
from taskmill.serializers import MAC_BYTES


class MakesMarker:
    """A pickle whose loading creates a directory: proof that it was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


class ExecsMarker:
    """A pickle whose loading runs code that creates a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({self.path!r}, 'w').close()",))


def pickled_bodies(payload: bytes) -> dict[str, bytes]:
    """A pickle payload as a worker could be sent it: the reason fragment for each form."""
    return {
        "not accepted": b"p" + payload,  # a bare pickle
        "no signing_key": b"s" + bytes(MAC_BYTES) + b"p" + payload,  # a forged signature tag
        "not valid JSON": b"j" + payload,  # behind a JSON tag
        "undecodable": payload,  # untagged
    }


@pytest.mark.parametrize(
    "copies", [pytest.param(1, id="quick"), pytest.param(250, id="full", marks=pytest.mark.chaos)]
)
@pytest.mark.timeout(300)
def test_a_default_worker_never_unpickles_a_message(workspace, figures, copies):
    workspace.write_tasks()
    tasks = workspace.import_tasks()
    worker = workspace.start_worker(concurrency=2)
    markers = workspace.path / "markers"
    markers.mkdir()
    sent: dict[str, str] = {}  # id -> the reason it must be dead-lettered with
    for n in range(copies):
        for gadget in (MakesMarker, ExecsMarker):
            payload = pickle.dumps(gadget(str(markers / f"{gadget.__name__}-{n}")))
            for reason, body in pickled_bodies(payload).items():
                message = Outgoing(id=new_id(), queue="default", body=body)
                tasks.app.broker.enqueue([message])
                sent[message.id] = reason
    broker = tasks.app.broker

    assert tasks.square.delay(3).get(timeout=30) == 9  # valid work goes on
    workspace.wait_until(
        lambda: len(broker.dead_letters(limit=len(sent) + 1)) >= len(sent), 30, "dead letters"
    )

    dead = {d.id: d.reason for d in broker.dead_letters(limit=len(sent) + 1)}
    assert set(dead) == set(sent)
    for id, reason in sent.items():
        assert reason in dead[id]
    assert list(markers.iterdir()) == []
    assert worker.process.poll() is None
    pickle.loads(payload)  # the payloads are real ones: loading one makes its marker
    assert len(list(markers.iterdir())) == 1
    figures.record(
        "pickle to a JSON worker",
        load=f"{len(sent):,} pickles that create a file when loaded (os.mkdir, exec)",
        faults="each bare, behind a forged signature tag, behind a JSON tag, untagged",
        lost="—",
        duplicates="—",
        recovery="all dead-lettered with the reason; none unpickled (no file)",
    )


KEY = "chaos-signing-key-0123456789"
REJECTIONS = ("bad signature", "unsigned payload refused")


def flipped(body: bytes, rng: random.Random) -> bytes:
    """``body`` with one byte at a random place changed to another value."""
    at = rng.randrange(len(body))
    return body[:at] + bytes([body[at] ^ rng.randrange(1, 256)]) + body[at + 1 :]


@pytest.mark.parametrize(
    "through_worker",
    [pytest.param(500, id="quick"), pytest.param(10_000, id="full", marks=pytest.mark.chaos)],
)
@pytest.mark.timeout(600)
def test_signed_messages_with_a_byte_flipped_are_all_rejected(workspace, figures, through_worker):
    workspace.write_tasks(settings=f'lease_s=2, serializer="pickle", signing_key="{KEY}"')
    tasks = workspace.import_tasks()
    app = tasks.app
    log = workspace.file("executions.log")
    rng = random.Random(through_worker)

    def message(x: int) -> tuple[str, bytes]:
        id = new_id()
        msg = Message(id=id, task=tasks.logged_square.name, args=(log, x))
        return id, encode(msg, app.serializer)

    # the decoder: 10,000 flips, none accepted, each refused with a reason
    for x in range(10_000):
        _, body = message(x)
        with pytest.raises(MessageDecodeError) as refused:
            decode(flipped(body, rng), app.serializer)
        assert any(r in str(refused.value) for r in REJECTIONS), refused.value

    # a worker: flipped messages among good ones
    worker = workspace.start_worker(concurrency=2)
    bad = {}
    for x in range(through_worker):
        id, body = message(x)
        bad[id] = Outgoing(id=id, queue="default", body=flipped(body, rng))
    app.broker.enqueue(list(bad.values()))
    good = tasks.square.delay(12)

    assert good.get(timeout=30) == 144
    workspace.wait_until(
        lambda: len(app.broker.dead_letters(limit=through_worker + 1)) >= through_worker,
        120,
        "every flipped message in the dead-letter store",
        0.2,
    )
    dead = {d.id: d.reason for d in app.broker.dead_letters(limit=through_worker + 1)}
    assert set(dead) == set(bad)
    assert all(any(r in reason for r in REJECTIONS) for reason in dead.values())
    assert not os.path.exists(log)  # not one of them ran
    assert worker.process.poll() is None
    figures.record(
        "signed message tampering",
        load="signed pickle messages (HMAC-SHA256)",
        faults=f"10,000 one-byte flips at the decoder, {through_worker:,} through a worker",
        lost="—",
        duplicates="—",
        recovery="every one rejected (bad signature / unsigned refused); none ran",
    )


SUFFIX = uuid.uuid4().hex[:8]
#: (the password, as written in a URL)
PLAIN = (f"hunter2-{SUFFIX}", f"hunter2-{SUFFIX}")
SPECIAL = (f"p@ss/w:rd?{SUFFIX}", quote(f"p@ss/w:rd?{SUFFIX}", safe=""))


def assert_no_password(secret: tuple[str, str], *texts: str) -> None:
    for text in texts:
        for form in secret:
            assert form not in text, text


def error_text(exc: BaseException) -> str:
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc))


def status_outputs(workspace, url: str) -> list[str]:
    env = {**workspace.env, "TASKMILL_BROKER": url}
    outputs = []
    for args in (["status"], ["status", "--json"], ["status", "-b", url]):
        done = workspace.run_cli(*args, env=env)
        outputs += [done.stdout, done.stderr]
    return outputs


def worker_command(target: str) -> list[str]:
    return [sys.executable, "-m", "taskmill", "worker", "-A", target, "-c", "1"]


@pytest.mark.parametrize(
    "secrets",
    [
        pytest.param([PLAIN], id="quick"),
        pytest.param([PLAIN, SPECIAL], id="full", marks=pytest.mark.chaos),
    ],
)
@pytest.mark.timeout(300)
def test_broker_passwords_never_show_in_logs_status_or_errors(
    workspace, figures, monkeypatch, secrets
):
    for n, secret in enumerate(secrets):
        check_password_hidden(workspace, monkeypatch, secret, f"tasks_{n}")
    figures.record(
        "broker password exposure",
        load="a worker, taskmill status (text, --json), client errors",
        faults="Redis URL with a password: server down, server up, malformed URL"
        + ("; passwords with URL-escaped characters" if len(secrets) > 1 else ""),
        lost="—",
        duplicates="—",
        recovery="password never shown (logs, status, errors, tracebacks)",
    )


def check_password_hidden(workspace, monkeypatch, secret: tuple[str, str], target: str) -> None:
    shared = redis_url_or_skip()
    prefix = f"chaos-security-{uuid.uuid4().hex[:8]}"
    up = shared.replace("redis://", f"redis://:{secret[1]}@") + f"?prefix={prefix}"
    down = f"redis://taskmill:{secret[1]}@127.0.0.1:{free_port()}/0?reconnect_s=0.3"
    workspace.write_tasks()

    # the broker is down: the worker keeps trying, and logs why
    worker = workspace.spawn(
        worker_command("tasks"), env={**workspace.env, "TASKMILL_BROKER": down}
    )
    worker.wait_for_log("unreachable", timeout=30)
    worker.stop()
    outputs = [worker.log(), *status_outputs(workspace, down)]
    assert "unreachable" in outputs[-1]  # status said what failed

    # the broker is up: a task runs, status lists the worker
    monkeypatch.setenv("TASKMILL_BROKER", up)
    try:
        workspace.write_tasks(name=target)
        tasks = workspace.import_tasks(target)
        worker = workspace.spawn(
            worker_command(target), env={**workspace.env, "TASKMILL_BROKER": up}
        )
        worker.wait_for_log("ready:")
        assert tasks.square.delay(5).get(timeout=15) == 25
        shown = status_outputs(workspace, up)
        assert f"prefix={prefix}" in shown[0]
        assert str(worker.pid) in shown[0] and str(worker.pid) in shown[2]
        outputs += [*shown, repr(tasks.app), repr(tasks.app.broker)]
        worker.stop()
        outputs.append(worker.log())
    finally:
        delete_prefix(shared, prefix)

    # errors raised in a program
    errors = []
    for url in (down, down.replace("reconnect_s=0.3", "reconnect_s=soon")):
        app = App("client", broker=url)
        with pytest.raises(TaskmillError) as caught:
            app.broker.stats()
        errors.append(error_text(caught.value))
        app.close()
    with pytest.raises(ConfigurationError) as caught:
        App("client", broker=up.replace("redis://", "redis+nope://")).broker  # noqa: B018
    errors.append(error_text(caught.value))
    assert_no_password(secret, *outputs, *errors)
