"""The ``taskmill`` command: run workers, look at queues.

This is the only place that configures logging; the library itself never does.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from typing import Any

import click

from . import __version__
from .app import App
from .brokers import redact_url
from .demo import demo
from .errors import TaskmillError
from .worker.child import POOLS

__all__ = ["load_app", "main"]


class UsageFailure(click.ClickException):
    """One clear line on stderr, exit code 2."""

    exit_code = 2


def load_app(target: str) -> App:
    """The App named by ``module`` or ``module:attribute`` (``-A``), imported from the
    working directory; UsageFailure saying what is missing."""
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise UsageFailure(f"-A {target!r}: give a module, e.g. -A tasks or -A tasks:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageFailure(
                f"-A {target}: no module named {module_name!r} "
                f"(looked in {os.getcwd()} and on sys.path)"
            ) from None
        raise UsageFailure(f"-A {target}: importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise UsageFailure(
            f"-A {target}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    return _find_app(module, module_name, attr, target)


def _find_app(module: Any, module_name: str, attr: str, target: str) -> App:
    if attr:
        app = getattr(module, attr, None)
        if app is None:
            raise UsageFailure(f"-A {target}: module {module_name!r} has no attribute {attr!r}")
    else:
        app = getattr(module, "app", None)
        if not isinstance(app, App):
            apps = [v for v in vars(module).values() if isinstance(v, App)]
            if len(apps) != 1:
                found = "no App" if not apps else f"{len(apps)} Apps"
                raise UsageFailure(
                    f"-A {target}: module {module_name!r} has {found}; name one with -A "
                    f"{module_name}:ATTRIBUTE"
                )
            app = apps[0]
    if not isinstance(app, App):
        raise UsageFailure(f"-A {target}: {attr!r} is a {type(app).__name__}, not a taskmill App")
    return app


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="[%(asctime)s %(levelname)s %(processName)s] %(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="taskmill")
def cli() -> None:
    """taskmill: run Python tasks across processes and machines.

    \b
    Define tasks in a module (tasks.py):
        from taskmill import App
        app = App("tasks")            # embedded SQLite broker, no server
        @app.task
        def add(x, y): return x + y
    then start workers with:  taskmill worker -A tasks
    and send work with:       add.delay(2, 3).get(timeout=10)
    """


LEVELS = click.Choice(["debug", "info", "warning", "error", "critical"], case_sensitive=False)


@cli.command()
@click.option(
    "-A",
    "--app",
    "target",
    required=True,
    metavar="MODULE[:ATTR]",
    help="The module holding your App (and its tasks), e.g. -A tasks.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Child processes running tasks [default: the number of CPUs].",
)
@click.option(
    "-Q",
    "--queues",
    default=None,
    metavar="Q1,Q2",
    help="Comma-separated queues to consume [default: the app's default queue].",
)
@click.option("-l", "--loglevel", type=LEVELS, default="info", show_default=True, help="Log level.")
@click.option(
    "--max-tasks-per-child",
    type=click.IntRange(min=1),
    default=None,
    help="Replace a child after it ran this many tasks (contains leaks).",
)
@click.option(
    "--max-memory-per-child",
    type=click.IntRange(min=1),
    default=None,
    metavar="MiB",
    help="Replace a child whose resident memory goes over this many MiB: one running a task"
    " is killed and the task fails with MemoryLimitExceeded (or is retried, per its"
    " autoretry_for); one between tasks is recycled.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds running tasks get to finish after SIGTERM before a cold stop.",
)
@click.option(
    "--pool",
    type=click.Choice(POOLS),
    default="prefork",
    show_default=True,
    help="How each child runs sync (def) tasks. prefork: one at a time, for CPU work; a"
    " task past its hard time limit is killed with its process. threads: up to --threads"
    " at once, for blocking I/O; a thread past its hard time limit cannot be killed, so"
    " its failure is recorded at the limit and the child is replaced once its other"
    " tasks finish.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Sync tasks each child runs at once with --pool threads.",
)
@click.option(
    "--async-limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Async (async def) tasks each child runs at once on its event loop, in any pool;"
    " one past its hard time limit is cancelled and the child goes on.",
)
def worker(
    target: str,
    concurrency: int | None,
    queues: str | None,
    loglevel: str,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    grace: float,
    pool: str,
    threads: int,
    async_limit: int,
) -> None:
    """Start a worker: a supervisor and N child processes that run tasks.

    \b
    Each child runs
      - async def tasks concurrently on its own event loop, up to --async-limit;
      - def tasks one at a time (--pool prefork, the default: CPU work), or up to
        --threads at once in threads (--pool threads: blocking I/O).

    SIGTERM or Ctrl-C drains (running tasks finish, nothing is lost); a second one stops
    at once. Tasks whose worker dies are delivered again; after the app's
    max_deliveries they go to the dead-letter store.
    """
    from .worker.supervisor import Supervisor

    _setup_logging(loglevel)
    app = load_app(target)
    names = [q.strip() for q in (queues or app.settings.default_queue).split(",") if q.strip()]
    if not names:
        raise UsageFailure("-Q: give at least one queue name")
    try:
        supervisor = Supervisor(
            app,
            names,
            concurrency or os.cpu_count() or 1,
            max_tasks_per_child,
            grace,
            pool=pool,
            threads=threads,
            async_limit=async_limit,
            max_memory_per_child=max_memory_per_child,
        )
        code = supervisor.run()
    except TaskmillError as exc:
        raise UsageFailure(str(exc)) from None
    sys.exit(code)


@cli.command()
@click.option(
    "-A",
    "--app",
    "target",
    default=None,
    metavar="MODULE[:ATTR]",
    help="Read the broker URL from this App.",
)
@click.option(
    "-b",
    "--broker",
    default=None,
    metavar="URL",
    help="Broker URL [default: $TASKMILL_BROKER, else sqlite:///taskmill.db].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def status(target: str | None, broker: str | None, as_json: bool) -> None:
    """Show queue depths (ready, delayed, in flight, dead) and live workers."""
    app = load_app(target) if target else App("status", broker=broker)
    try:
        stats = app.broker.stats()
        workers = [json.loads(w) for w in app.broker.workers()]
    except TaskmillError as exc:
        raise UsageFailure(str(exc)) from None
    finally:
        app.close()
    if as_json:
        queues = {name: vars_of(s) for name, s in sorted(stats.items())}
        click.echo(
            json.dumps(
                {"broker": redact_url(app.broker_url), "queues": queues, "workers": workers},
                indent=2,
            )
        )
        return
    click.echo(f"broker: {redact_url(app.broker_url)}\n")
    _print_queues(stats)
    click.echo()
    _print_workers(workers)


def vars_of(stats: Any) -> dict[str, int]:
    return {k: getattr(stats, k) for k in ("ready", "delayed", "in_flight", "dead")}


def _print_queues(stats: dict[str, Any]) -> None:
    if not stats:
        click.echo("queues: none yet")
        return
    click.echo(f"{'QUEUE':<20} {'READY':>8} {'DELAYED':>8} {'IN FLIGHT':>10} {'DEAD':>8}")
    for name, s in sorted(stats.items()):
        click.echo(f"{name:<20} {s.ready:>8} {s.delayed:>8} {s.in_flight:>10} {s.dead:>8}")


def _print_workers(workers: list[dict[str, Any]]) -> None:
    if not workers:
        click.echo("workers: none alive")
        return
    click.echo(f"{'WORKER':<28} {'HOST':<16} {'PID':>7} {'CONC':>5} {'QUEUES':<16} HEARTBEAT")
    now = time.time()
    for w in sorted(workers, key=lambda w: str(w.get("id"))):
        age = now - float(w.get("heartbeat_at", now))
        click.echo(
            f"{w.get('id', '?')!s:<28} {w.get('host', '?')!s:<16} {w.get('pid', '?')!s:>7} "
            f"{w.get('concurrency', '?')!s:>5} {','.join(w.get('queues', [])):<16} "
            f"{age:.1f}s ago"
        )


cli.add_command(demo)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="taskmill")
