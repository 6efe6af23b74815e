"""The object store: a revisioned cache in front of a backend, with watch fan-out.

* Every live object is held in memory (a sorted map key -> :class:`Entry`), so
  GET and LIST never touch the disk. An entry keeps the object's serialized JSON
  (``raw``, already stamped with its ``resourceVersion``) and parses it lazily:
  a LIST without selectors splices the raw bytes into the response untouched.
* Writes are compare-and-swap on the revision, checked and applied in memory
  at once (so later writes of the same tick see them), and staged for a group
  commit: every write of one event-loop tick goes to the backend in one
  transaction at the end of the tick. Only then are watchers told and writers
  answered, so an acknowledged (or watched) write is on disk. A failed commit
  rolls memory back to the last committed state and fails the whole batch.
* Secrets (keys under ``/registry/secrets/``) are encrypted before they reach
  the backend; the cache holds plaintext only in memory.
* Watches register a bounded queue. A watch from a revision first replays the
  backend log after that revision (410 Gone if it was compacted away), then
  streams live events. A watcher that falls too far behind is closed, as
  kube-apiserver closes slow watchers; its client re-lists.

Everything runs on the event loop thread: a write's check and its apply to
memory have no ``await`` between them, which is what makes compare-and-swap
atomic. Reads may see a write of the current tick before its commit; if that
commit fails (disk full), the write is undone and its writer gets the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from sortedcontainers import SortedDict

from .backend import DELETE, PUT_CREATE, PUT_UPDATE, Backend
from .crypto import Encryptor

ENCRYPTED_PREFIXES = ("/registry/secrets/",)
# Kinds written in bulk and rarely read back in-process: their entries keep only the bytes once committed (the
# parsed form is rebuilt on demand), which is most of what 100,000 pods' worth of Events would hold in memory.
UNPARSED_PREFIXES = ("/registry/events/",)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
_OP_TYPE = {PUT_CREATE: ADDED, PUT_UPDATE: MODIFIED, DELETE: DELETED}


class StoreError(Exception):
    pass


class KeyExists(StoreError):
    pass


class KeyNotFound(StoreError):
    pass


class RevisionConflict(StoreError):
    pass


class Compacted(StoreError):
    """The requested revision is older than the compaction horizon."""


class Entry:
    """One stored object. ``obj`` is parsed on first use and must be treated as read-only."""

    __slots__ = ("_obj", "raw", "rev")

    def __init__(self, rev: int, raw: bytes, obj: dict[str, Any] | None = None) -> None:
        self.rev = rev
        self.raw = raw
        self._obj = obj

    @property
    def obj(self) -> dict[str, Any]:
        o = self._obj
        if o is None:
            o = self._obj = orjson.loads(self.raw)
        return o

    def forget_parsed(self) -> None:
        """Drop the parsed form (holders of it keep theirs); ``obj`` parses ``raw`` again when asked."""
        self._obj = None

    def copy(self) -> dict[str, Any]:
        """A private, mutable copy of the object."""
        result: dict[str, Any] = orjson.loads(self.raw)
        return result

    def copy_top(self, *fields: str) -> dict[str, Any]:
        """A copy whose top level, metadata and the named top-level maps are new; everything deeper is shared
        with the (read-only) entry. For writers that only set keys at those levels, without a full decode."""
        out = dict(self.obj)
        for f in ("metadata", *fields):
            v = out.get(f)
            if isinstance(v, dict):
                out[f] = dict(v)
        return out


class Event:
    __slots__ = ("entry", "key", "prev", "type")

    def __init__(self, type: str, key: str, entry: Entry, prev: Entry | None) -> None:
        self.type = type
        self.key = key
        self.entry = entry
        self.prev = prev

    @property
    def rev(self) -> int:
        return self.entry.rev


class Watch:
    """A live event stream. Iterate with :meth:`next`; ``None`` means the watch ended."""

    def __init__(self, store: Store, prefix: str, maxsize: int) -> None:
        self.store = store
        self.prefix = prefix
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.maxsize = maxsize
        self.closed = False
        self.last_rev = 0

    def _put(self, ev: Event) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.maxsize:
            self.close()
            return
        self.queue.put_nowait(ev)

    async def next(self, timeout: float | None = None) -> Event | None:
        if self.closed and self.queue.empty():
            return None
        if timeout is None:
            return await self.queue.get()
        return await asyncio.wait_for(self.queue.get(), timeout)  # TimeoutError when nothing came

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.store._unregister(self)
            self.queue.put_nowait(None)


class Store:
    def __init__(self, backend: Backend, encryptor: Encryptor | None = None, watch_queue: int = 100_000) -> None:
        self.backend = backend
        self.encryptor = encryptor
        self.watch_queue = watch_queue
        self._watchers: dict[str, set[Watch]] = {}
        self.rev = backend.current_revision()
        t = time.monotonic()
        # Build the map in one go (one sort) rather than key by key.
        self._data: SortedDict = SortedDict({key: Entry(rev, self._decode(key, value))
                                             for key, rev, value in backend.load()})
        # The loaded entries live as long as the process: keep them out of the cyclic GC's generations.
        gc.freeze()
        self.load_seconds = time.monotonic() - t
        self._listeners: list[Callable[[Event], None]] = []
        # Group commit: writes of one event-loop tick, staged for one transaction (see flush).
        self._rows: list[tuple[int, str, int, bytes, int]] = []
        self._pending: list[tuple[Event, asyncio.Future[None]]] = []
        self._flush_scheduled = False

    # -- encoding --------------------------------------------------------------------------------------------
    def _encode(self, key: str, raw: bytes) -> bytes:
        if self.encryptor is not None and key.startswith(ENCRYPTED_PREFIXES):
            return self.encryptor.encrypt(key, raw)
        return raw

    def _decode(self, key: str, value: bytes) -> bytes:
        if self.encryptor is not None and key.startswith(ENCRYPTED_PREFIXES):
            return self.encryptor.decrypt(key, value)
        return value

    # -- reads -----------------------------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        e: Entry | None = self._data.get(key)
        return e

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[tuple[str, Entry]]:
        """Live entries under prefix in key order, optionally starting after a key (pagination)."""
        lo = start_after if start_after is not None else prefix
        end = prefix + "\U0010ffff"
        inclusive = (start_after is None, False)
        for key in self._data.irange(lo, end, inclusive=inclusive):
            yield key, self._data[key]

    def count_after(self, prefix: str, key: str) -> int:
        """How many live keys under prefix sort after key."""
        end = prefix + "\U0010ffff"
        return int(self._data.bisect_left(end) - self._data.bisect_right(key))

    def count(self, prefix: str) -> int:
        end = prefix + "\U0010ffff"
        lo = self._data.bisect_left(prefix)
        hi = self._data.bisect_left(end)
        return int(hi - lo)

    @property
    def compacted_revision(self) -> int:
        return self.backend.compacted_revision()

    # -- writes ----------------------------------------------------------------------------------------------
    def _write(self, key: str, obj: dict[str, Any], op: int, prev: Entry | None) -> tuple[Entry, asyncio.Future[None]]:
        """Apply a write to memory and stage it for the tick's group commit; the future resolves once it is on disk.

        Watchers hear of it only after the commit, and in revision order.
        """
        rev = self.rev + 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
        raw = orjson.dumps(obj)
        self._rows.append((rev, key, op, self._encode(key, raw), prev.rev if prev else 0))
        self.rev = rev
        entry = Entry(rev, raw, obj)
        if op == DELETE:
            del self._data[key]
        else:
            self._data[key] = entry
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((Event(_OP_TYPE[op], key, entry, prev), fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self.flush)
        return entry, fut

    def flush(self) -> None:
        """Commit the staged writes as one transaction, then notify watchers and acknowledge the writers.

        If the commit fails, memory is rolled back to the last committed state and every writer of the batch
        gets the error: nothing unacknowledged is visible afterwards, nothing acknowledged is lost.
        """
        self._flush_scheduled = False
        rows, pending = self._rows, self._pending
        if not rows:
            return
        self._rows, self._pending = [], []
        try:
            self.backend.commit(rows)
        except BaseException as e:
            for ev, _ in reversed(pending):
                if ev.prev is None:
                    self._data.pop(ev.key, None)
                else:
                    self._data[ev.key] = ev.prev
            self.rev = rows[0][0] - 1
            for _, fut in pending:
                if not fut.done():
                    fut.set_exception(e)
            return
        for ev, fut in pending:
            self._notify(ev)
            if not fut.done():
                fut.set_result(None)
            if ev.key.startswith(UNPARSED_PREFIXES):
                ev.entry.forget_parsed()

    async def _commit(self, key: str, obj: dict[str, Any], op: int, prev: Entry | None) -> Entry:
        entry, fut = self._write(key, obj, op, prev)
        await fut
        return entry

    async def create(self, key: str, obj: dict[str, Any]) -> Entry:
        """Store a new object (``obj`` becomes owned by the store). KeyExists if present."""
        if key in self._data:
            raise KeyExists(key)
        return await self._commit(key, obj, PUT_CREATE, None)

    async def update(self, key: str, obj: dict[str, Any], expected_rev: int | None = None) -> Entry:
        """Replace an object if its revision is still ``expected_rev`` (None: unconditionally)."""
        prev = self._data.get(key)
        if prev is None:
            raise KeyNotFound(key)
        if expected_rev is not None and prev.rev != expected_rev:
            raise RevisionConflict(key)
        return await self._commit(key, obj, PUT_UPDATE, prev)

    async def delete(self, key: str, expected_rev: int | None = None) -> Entry:
        """Remove an object; the returned entry is its last state stamped with the deletion revision."""
        prev = self._data.get(key)
        if prev is None:
            raise KeyNotFound(key)
        if expected_rev is not None and prev.rev != expected_rev:
            raise RevisionConflict(key)
        return await self._commit(key, prev.copy_top(), DELETE, prev)

    # -- watch -----------------------------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call fn synchronously for every committed event (in-process consumers such as metrics)."""
        self._listeners.append(fn)

    def _notify(self, ev: Event) -> None:
        key = ev.key
        for prefix, ws in list(self._watchers.items()):
            if key.startswith(prefix):
                for w in list(ws):
                    w._put(ev)
        for fn in self._listeners:
            fn(ev)

    def _unregister(self, w: Watch) -> None:
        ws = self._watchers.get(w.prefix)
        if ws is not None:
            ws.discard(w)
            if not ws:
                del self._watchers[w.prefix]

    def watch(self, prefix: str, from_rev: int) -> Watch:
        """Events for keys under prefix with revision > from_rev: replayed history, then live.

        Raises Compacted when from_rev is older than the compaction horizon.
        """
        if from_rev < self.backend.compacted_revision():
            raise Compacted(str(from_rev))
        # Staged writes must be in the log (for the replay) and announced before this watcher joins: after the
        # flush, every revision up to self.rev is either replayed or was notified before registration.
        self.flush()
        w = Watch(self, prefix, self.watch_queue)
        if from_rev < self.rev:
            for le in self.backend.since(from_rev, prefix):
                raw = self._decode(le.key, le.value)
                prev = Entry(0, self._decode(le.key, le.prev_value)) if le.prev_value is not None else None
                w._put(Event(_OP_TYPE[le.op], le.key, Entry(le.rev, raw), prev))
        self._watchers.setdefault(prefix, set()).add(w)
        return w

    def watcher_count(self) -> int:
        return sum(len(ws) for ws in self._watchers.values())

    # -- maintenance -----------------------------------------------------------------------------------------
    def compact(self, rev: int) -> int:
        self.flush()
        return self.backend.compact(min(rev, self.rev))

    def close(self) -> None:
        self.flush()
        for ws in list(self._watchers.values()):
            for w in list(ws):
                w.close()
        with contextlib.suppress(Exception):
            self.backend.close()
