"""Garbage collector: cascading deletion by ownerReferences (background, foreground, orphan).

:mod:`.graph` holds the uid graph of owners and dependents built from informer
events; :mod:`.collector` runs the attempt-to-delete and attempt-to-orphan queues
against the API server.
"""

from .collector import GarbageCollector, monitored_resources
from .graph import Graph, Identity, Node

__all__ = ["GarbageCollector", "Graph", "Identity", "Node", "monitored_resources"]
