"""The storage backend interface: a revisioned key-value log (kine is the model).

A backend stores bytes under string keys. Every write is one *revision*, a
cluster-wide counter that becomes the object's ``resourceVersion``. The backend
keeps, per revision, what happened (put or delete), the value written and the
revision of the key's previous value, so that a watch can replay history and
filtered watchers can tell "stopped matching" from "changed".

Backends are synchronous on purpose: the embedded SQLite driver commits a batch
in tens of microseconds, so calling it on the event loop is cheaper than a
thread hop. The store hands the backend every write of one event-loop tick as
one batch (group commit); compare-and-swap happens in the store's memory, so
nothing the backend does can interleave with it. A networked driver (etcd)
would implement the same calls behind its own thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

PUT_CREATE = 0
PUT_UPDATE = 1
DELETE = 2


@dataclass(slots=True)
class LogEntry:
    rev: int
    key: str
    op: int  # PUT_CREATE, PUT_UPDATE or DELETE
    value: bytes  # for DELETE: the object's last state, stamped with the deletion revision
    prev_value: bytes | None  # the key's previous value if still in the log


class Backend(Protocol):
    def load(self) -> Iterator[tuple[str, int, bytes]]:
        """Every live key with its revision and value (used once, to fill the cache)."""
        ...

    def current_revision(self) -> int: ...

    def compacted_revision(self) -> int: ...

    def commit(self, rows: list[tuple[int, str, int, bytes, int]]) -> None:
        """Write a batch of revisions ``(rev, key, op, value, prev_rev)``, oldest first, atomically and durably;
        raise on failure (nothing of the batch is then written)."""
        ...

    def since(self, rev: int, prefix: str) -> Iterator[LogEntry]:
        """Log entries with revision > rev whose key starts with prefix, oldest first."""
        ...

    def compact(self, rev: int) -> int:
        """Forget history up to rev (live values stay); return how many entries were dropped."""
        ...

    def size_bytes(self) -> int: ...

    def close(self) -> None: ...
