# tasks.py
from taskmill import App

app = App("tasks")  # no broker given: the embedded SQLite default


@app.task
def compute_square(x):
    return x**2
