"""``python -m prune`` is the same as the ``venv-prune`` command."""

from ._launch import main

main()
