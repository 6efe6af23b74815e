"""Controller expectations: how many creations/deletions a controller still waits to observe.

A ReplicaSet sync that creates 10 pods must not create 10 more on its next sync
just because the informer has not delivered the new pods yet. The controller
records what it expects; informer handlers lower the counts as pods appear or
go; a sync that finds unmet expectations only refreshes status. Expectations
older than ``ttl`` are treated as met (a lost watch event must not wedge a
controller forever), as upstream's 5-minute expectation TTL does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class _Exp:
    add: int = 0
    delete: int = 0
    deleting: set[str] = field(default_factory=set)  # keys of pods whose deletion we await
    at: float = field(default_factory=time.monotonic)


class Expectations:
    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._e: dict[str, _Exp] = {}

    def satisfied(self, key: str) -> bool:
        e = self._e.get(key)
        if e is None:
            return True
        if e.add <= 0 and e.delete <= 0:
            return True
        return time.monotonic() - e.at > self.ttl

    def expect_creations(self, key: str, n: int) -> None:
        self._e[key] = _Exp(add=n)

    def expect_deletions(self, key: str, pod_keys: list[str]) -> None:
        self._e[key] = _Exp(delete=len(pod_keys), deleting=set(pod_keys))

    def creation_observed(self, key: str) -> None:
        e = self._e.get(key)
        if e is not None:
            e.add -= 1

    def creation_failed(self, key: str) -> None:
        """A create that was expected but did not happen (the API call failed or was skipped)."""
        self.creation_observed(key)

    def deletion_observed(self, key: str, pod_key: str) -> None:
        e = self._e.get(key)
        if e is not None and pod_key in e.deleting:
            e.deleting.discard(pod_key)
            e.delete -= 1

    def forget(self, key: str) -> None:
        self._e.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        e = self._e.get(key)
        return (e.add, e.delete) if e else (0, 0)
