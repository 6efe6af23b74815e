"""``python -m tinykube.cli`` is the ``tinykube`` command."""

from .main import main

main()
