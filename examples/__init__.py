"""taskmill's examples, importable as ``taskmill.examples.NAME`` once taskmill is installed.

Each example is a folder with a ``tasks.py`` (the tasks, as you would write them) and a
``run.py`` (starts workers, sends the work, checks and times the results). Run one with
``python -m taskmill.examples.NAME.run --help``; ``taskmill demo`` runs them all. See
``examples/README.md``.
"""
