"""``python -m prune`` is the same as the ``venv-prune`` command."""

from .cli import main

main()
