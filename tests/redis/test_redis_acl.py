"""Least privilege: the broker, a worker and ``taskmill status`` run as a Redis ACL user
that may touch only its own key prefix, and its password never shows.

The minimal ACL that works (Redis 7.0, redis-py 8), found by taking each command out in
turn and running the whole broker surface again::

    ACL SETUSER taskmill on >PASSWORD ~PREFIX:* resetchannels -@all
        +evalsha +script|load +script|exists      Lua scripts (LOAD after a restart or a
                                                  SCRIPT FLUSH; EXISTS for pipelines)
        +multi +exec                              atomic multi-queue enqueue, registry
        +time +ping                               broker clock; redis-py's health check
        +sadd +smembers                           the set of queues
        +zadd +zrange +zrevrange +zrangebyscore +zrem +zcard +zcount +zscore
        +hget +hmget +hset +hsetnx +hdel +hexists
        +set +mget +del +incr +pexpire
        +rpush +lpush +llen +blpop                wake-ups and result waiters

Every one is needed: without any one of them some broker call fails with NOPERM, except
``ping``, which redis-py sends only on a connection idle for 30 s. Commands run by the
Lua scripts are checked against the user's ACL too, and their keys against ``~PREFIX:*``,
so the scripts' dynamic keys (stats, status, revoke) stay inside the prefix. ``+@all
-@dangerous`` is a broader set that works as well.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis

import faults
from taskmill import BrokerError, WorkerLost
from taskmill.brokers import open_broker
from taskmill.brokers.base import DeadLetter, Outgoing, QueueStats, ResultRecord, StoredResult

USER = "taskmill"
MINIMAL = (
    "-@all +evalsha +script|load +script|exists +multi +exec +time +ping +sadd +smembers"
    " +zadd +zrange +zrevrange +zrangebyscore +zrem +zcard +zcount +zscore"
    " +hget +hmget +hset +hsetnx +hdel +hexists +set +mget +del +incr +pexpire"
    " +rpush +lpush +llen +blpop"
)
RULES = {"minimal": MINIMAL, "all-but-dangerous": "+@all -@dangerous"}


def lock_down(server, prefix: str, rules: str) -> str:
    """Create the least-privilege user (and an admin for the test), switch the default
    user off; returns the user's broker URL."""
    password = f"pw-{uuid.uuid4().hex}"
    admin_password = f"admin-{uuid.uuid4().hex}"
    default = server.client()
    try:
        default.execute_command("ACL", "SETUSER", "admin", "on", f">{admin_password}", "~*", "&*")
        default.execute_command("ACL", "SETUSER", "admin", "+@all")
        default.execute_command(
            "ACL", "SETUSER", USER, "reset", "on", f">{password}", f"~{prefix}:*",
            "resetchannels", *rules.split(),
        )  # fmt: skip
        default.execute_command("ACL", "SETUSER", "default", "off")
    finally:
        default.close()
    server.admin_user, server.admin_password = "admin", admin_password
    admin = server.client()
    try:
        admin.script_flush()  # the user must load the scripts itself
    finally:
        admin.close()
    return server.url_for(user=USER, password=password, prefix=prefix)


def _password(url: str) -> str:
    return url.split("@", 1)[0].rsplit(":", 1)[1]


@pytest.mark.parametrize("rules", list(RULES.values()), ids=list(RULES))
def test_the_whole_broker_surface_works_for_a_user_limited_to_its_key_prefix(
    start_redis, prefix, rules
):
    server = start_redis()
    url = lock_down(server, prefix, rules)
    broker = open_broker(url)
    try:
        broker.enqueue([Outgoing(f"m{i}", "q", b"body %d" % i) for i in range(1, 6)])
        broker.enqueue([Outgoing("n1", "q2", b"n1"), Outgoing("later", "q", b"l", delay=60)])
        deliveries = {d.id: d for d in broker.reserve(["q", "q2"], 10, 30, 1.0)}
        assert sorted(deliveries) == ["m1", "m2", "m3", "m4", "m5", "n1"]
        assert broker.extend(list(deliveries.values()), 30) == [True] * 6

        assert broker.ack([deliveries["m1"]], [ResultRecord("m1", "SUCCESS", b"1", 60)]) == [True]
        assert broker.release([deliveries["m2"]]) == [True]
        assert broker.requeue(deliveries["m3"])
        assert broker.retry(deliveries["m4"], 60)
        assert broker.dead_letter(deliveries["m5"], "bad input")
        (dead,) = broker.dead_letters()
        assert (dead.id, dead.queue, dead.body, dead.reason) == ("m5", "q", b"body 5", "bad input")
        assert isinstance(dead, DeadLetter)
        assert broker.stats() == {
            "q": QueueStats(ready=2, delayed=2, in_flight=0, dead=1),
            "q2": QueueStats(in_flight=1),
        }
        assert broker.fetch_results(["m1", "m2", "m4", "n1", "unknown"]) == {
            "m1": StoredResult("SUCCESS", b"1"),
            "m2": StoredResult("PENDING"),
            "m4": StoredResult("RETRY"),
            "n1": StoredResult("STARTED"),
        }

        broker.ack([deliveries["n1"]], [ResultRecord("n1", "SUCCESS", b"n", 60)])
        assert broker.wait_results(["n1"], 5) == {"n1": StoredResult("SUCCESS", b"n")}
        assert broker.wait_results(["unknown"], 0.3) == {}
        assert broker.store_results([ResultRecord("s1", "FAILURE", b"f", 60)]) == [True]
        broker.forget(["s1"])
        assert broker.fetch_results(["s1"]) == {}
        assert broker.revoke("later", ResultRecord("later", "REVOKED", b"r", 60))
        assert broker.fetch_results(["later"]) == {"later": StoredResult("REVOKED", b"r")}

        broker.register_worker("w1", b'{"id": "w1"}', 10)
        assert broker.workers() == [b'{"id": "w1"}']
        broker.unregister_worker("w1")
        assert broker.workers() == []
        assert abs(broker.now() - time.time()) < 5
    finally:
        broker.close()

    # the restriction is real: outside its prefix the user is refused, and so is anyone
    # who does not log in
    user = redis.Redis("127.0.0.1", server.port, username=USER, password=_password(url))
    anonymous = redis.Redis("127.0.0.1", server.port)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
            user.set("elsewhere:key", "1")
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
            user.flushall()
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
    finally:
        user.close()
        anonymous.close()
    outsider = open_broker(url.replace(f"prefix={prefix}", "prefix=elsewhere"))
    try:
        with pytest.raises(BrokerError, match="no permissions") as caught:
            outsider.enqueue([Outgoing("x", "q", b"x")])
        assert _password(url) not in str(caught.value)
        assert f"{USER}:***@" in str(caught.value)
    finally:
        outsider.close()


@pytest.mark.timeout(60)
def test_a_worker_and_taskmill_status_run_as_that_user_and_never_show_its_password(
    workspace, start_redis, prefix
):
    server = start_redis()
    url = lock_down(server, prefix, MINIMAL)
    password = _password(url)
    workspace.use_broker(url)
    workspace.write_redis_tasks()
    workspace.write(
        "tasks.py",
        (workspace.path / "tasks.py").read_text()
        + 'retry_once = app.task(name="retry_once", retries=1)(faults.retry_once)\n'
        + 'poison = app.task(name="poison")(faults.sigkill_self)\n',
    )
    tasks = workspace.import_tasks()
    worker = workspace.start_named_worker("acl", "--loglevel", "debug")
    log = workspace.file("executions.log")

    squares = [tasks.square.delay(x) for x in range(20)]
    retried = tasks.retry_once.delay(log, 0.2)
    poison = tasks.poison.delay(workspace.file("poison.log"))
    revoked = tasks.square.apply_async((7,), countdown=30)
    assert revoked.revoke()

    assert [r.get(timeout=15) for r in squares] == [x * x for x in range(20)]
    assert retried.get(timeout=15) == 2
    with pytest.raises(WorkerLost):
        poison.get(timeout=30)  # requeued by the supervisor twice, then dead-lettered
    assert len(faults.executions(workspace.file("poison.log"))) == 3
    assert revoked.status == "REVOKED"
    assert [d.id for d in tasks.app.broker.dead_letters()] == [poison.id]

    shown = workspace.run_cli("status", "-A", "tasks")
    assert shown.returncode == 0, shown.stderr
    assert f"redis://{USER}:***@127.0.0.1:{server.port}/0" in shown.stdout
    assert str(worker.pid) in shown.stdout
    as_json = workspace.run_cli("status", "-A", "tasks", "--json")
    assert [w["pid"] for w in json.loads(as_json.stdout)["workers"]] == [worker.pid]
    wrong = url.replace(password, "wrong-password")
    started = time.monotonic()
    refused = workspace.run_cli("status", "-b", wrong)
    assert refused.returncode != 0
    assert "invalid username-password pair" in refused.stderr
    assert time.monotonic() - started < 5  # a wrong password is not a lost connection
    assert "wrong-password" not in refused.stdout + refused.stderr

    worker.stop()
    for output in (shown.stdout, shown.stderr, as_json.stdout, refused.stderr, worker.log()):
        assert password not in output
    assert "ready:" in worker.log()
