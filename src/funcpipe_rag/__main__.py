"""``python -m funcpipe_rag``: the ``funcpipe`` command."""

from .cli.app import main

main()
