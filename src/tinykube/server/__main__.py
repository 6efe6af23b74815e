"""``python -m tinykube.server``: the control-plane process that ``tinykube up`` starts."""

from .cluster import main

main()
