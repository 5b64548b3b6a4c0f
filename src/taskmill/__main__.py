"""``python -m taskmill``: the same as the ``taskmill`` command."""

from .cli import main

main()
