"""Tasks: options are checked at decoration, arguments at delay(), nothing half-sent."""

import asyncio
import inspect
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import pytest

from taskmill import App, ConfigurationError, MessageTooLarge, states


@pytest.fixture
def app(tmp_path):
    app = App("tasks", broker=f"sqlite:///{tmp_path / 'tm.db'}")
    yield app
    app.close()


def test_calling_a_task_runs_it_inline(app):
    @app.task
    def add(x, y):
        return x + y

    assert add(2, 3) == 5


def test_default_name_is_module_and_qualname(app):
    @app.task
    def add(x, y):
        return x + y

    assert add.name == f"{__name__}.test_default_name_is_module_and_qualname.<locals>.add"
    assert app.get_task(add.name) is add


def test_decorator_with_options(app):
    @app.task(
        name="math.add",
        queue="fast",
        priority=5,
        retries=2,
        time_limit=10,
        soft_time_limit=timedelta(seconds=5),
    )
    def add(x, y):
        return x + y

    assert add.name == "math.add"
    assert add.options.queue == "fast"
    assert add.options.retry.retries == 2
    assert add.options.soft_time_limit == 5.0


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"retries": -1}, "retries must be >= 0"),
        ({"time_limit": 0}, "time_limit must be > 0"),
        ({"time_limit": -5}, "time_limit must not be negative"),
        ({"time_limit": 5, "soft_time_limit": 5}, "soft_time_limit"),
        ({"time_limit": "soon"}, "time_limit must be a number of seconds"),
        ({"autoretry_for": (42,)}, "autoretry_for must list exception types"),
        ({"bogus": 1}, "unknown option"),
    ],
)
def test_bad_options_fail_at_decoration(app, options, says):
    with pytest.raises(ConfigurationError, match=says):

        @app.task(**options)
        def f():
            pass


def test_unknown_app_setting_is_named():
    with pytest.raises(ConfigurationError, match=r"unknown App setting.*colour"):
        App("x", broker="sqlite:///x.db", colour="blue")


def test_broker_url_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKMILL_BROKER", f"sqlite:///{tmp_path / 'env.db'}")
    assert App("x").broker_url.endswith("env.db")
    monkeypatch.delenv("TASKMILL_BROKER")
    assert App("x").broker_url == "sqlite:///taskmill.db"
    assert App("x", broker="sqlite:///given.db").broker_url == "sqlite:///given.db"


def test_unsupported_broker_url_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="unsupported broker URL 'amqp://"):
        App("x", broker="amqp://user:secret@host/").broker  # noqa: B018


def test_password_never_shown_in_repr():
    app = App("x", broker="redis://user:hunter2@host:6379/0")
    assert "hunter2" not in repr(app)


def test_an_argument_json_cannot_carry_raises_type_error_naming_it(app):
    @app.task
    def store(path, data, *, mode="w"):
        pass

    with pytest.raises(TypeError, match=r"argument 'data'.*set"):
        store.delay("a.txt", {1, 2})
    with pytest.raises(TypeError, match=r"argument 'mode'.*object"):
        store.delay("a.txt", [], mode=object())
    with pytest.raises(TypeError, match=r"argument 'data'.*\[0\]\['x'\]"):
        store.delay("a.txt", [{"x": b"bytes"}])
    assert app.broker.stats() == {}  # nothing was sent


def test_an_oversized_message_is_refused_and_nothing_is_sent(tmp_path):
    app = App("x", broker=f"sqlite:///{tmp_path / 'tm.db'}", max_message_bytes=2048)

    @app.task
    def echo(s):
        return s

    with pytest.raises(MessageTooLarge, match="over the limit of 2,048"):
        echo.delay("x" * 5000)
    assert app.broker.stats() == {}
    app.close()


def test_delay_returns_a_pending_result_and_unknown_ids_are_unknown(app):
    @app.task
    def f():
        pass

    result = f.delay()
    assert result.status == states.PENDING
    assert app.AsyncResult("no-such-id").status == states.UNKNOWN


def test_countdown_and_eta_are_exclusive(app):
    @app.task
    def f():
        pass

    with pytest.raises(ConfigurationError, match="countdown or eta"):
        f.apply_async(countdown=1, eta=datetime.now())
    with pytest.raises(ConfigurationError, match="countdown must not be negative"):
        f.apply_async(countdown=-1)


def test_apply_async_options_reach_the_broker(app):
    @app.task
    def f():
        pass

    f.apply_async(queue="other", task_id="my-id", countdown=60, priority=3)
    stats = app.broker.stats()
    assert stats["other"].delayed == 1
    assert app.AsyncResult("my-id").status == states.PENDING


def test_tasks_of_a_script_run_as_main_are_named_after_the_script(tmp_path):
    script = tmp_path / "jobs.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from taskmill import App
            app = App("jobs", broker="sqlite:///{tmp_path / "x.db"}")
            @app.task
            def work():
                pass
            print(work.name)
            """
        )
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "jobs.work", out.stderr


def mypy_strict(tmp_path, source: str) -> subprocess.CompletedProcess[str]:
    """mypy --strict on ``source``, written to a file of its own."""
    snippet = tmp_path / "typed.py"
    snippet.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_delay_is_type_checked_against_the_function_signature(tmp_path):
    out = mypy_strict(
        tmp_path,
        """
        from taskmill import App
        app = App("t")
        @app.task
        def add(x: int, y: int) -> int:
            return x + y
        r = add.delay(1, 2)
        reveal_type(r)
        add.delay("one", 2)
        """,
    )
    assert re.search(r'Revealed type is "taskmill.result.Result\[(builtins\.)?int\]"', out.stdout)
    assert 'Argument 1 to "delay" of "Task" has incompatible type "str"' in out.stdout


def test_an_async_task_delays_to_a_result_of_what_its_coroutine_returns(tmp_path):
    out = mypy_strict(
        tmp_path,
        """
        from taskmill import App
        app = App("t")
        @app.task
        async def fetch(url: str) -> bytes:
            return url.encode()
        @app.task(retries=2, time_limit=5)
        async def fetch_again(url: str) -> bytes:
            return url.encode()
        reveal_type(fetch.delay("x"))
        reveal_type(fetch_again.delay("x"))
        reveal_type(fetch("x"))
        fetch.delay(1)
        """,
    )
    revealed = [
        t.replace("builtins.", "") for t in re.findall(r'Revealed type is "([^"]+)"', out.stdout)
    ]
    assert revealed == [
        "taskmill.result.Result[bytes]",
        "taskmill.result.Result[bytes]",
        "typing.Coroutine[Any, Any, bytes]",
    ], out.stdout
    assert 'Argument 1 to "delay" of "Task" has incompatible type "int"' in out.stdout


def test_calling_an_async_task_here_returns_its_coroutine(tmp_path):
    app = App("t", broker=f"sqlite:///{tmp_path / 'x.db'}")

    @app.task
    async def double(x: int) -> int:
        return 2 * x

    coroutine = double(21)

    assert inspect.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == 42
    assert double.is_async
    assert not app.task(lambda: None).is_async
