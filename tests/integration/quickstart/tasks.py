from taskmill import App

app = App("tasks")


@app.task(retries=3, time_limit=30)
def compute_square(x: int) -> int:
    return x ** 2
