"""The task of benchmarks/where_time_goes.py."""

from taskmill import App

app = App("where")


@app.task
def noop() -> None:
    return None
