"""One scheduler for all timed work of the simulated nodes: a heap of due times, one timer, a ready queue.

Thousands of pods each waiting for their next transition, and a thousand nodes
each renewing a Lease every ten seconds, must not mean thousands of sleeping
tasks. Every piece of work is a string key (``p:<ns>/<name>``, ``l:<node>`` ...);
:meth:`Schedule.add_at` records the earliest time a key is due in a heap, and a
single event-loop timer (re-armed for the heap's head) moves due keys to a
ready queue that a fixed number of workers drain, which bounds how many writes
are in flight.

As a controller work queue does, a key is never processed by two workers at
once: a key added while it is being processed is queued again when ``done`` is
called, and a key already queued is not queued twice. A key has at most one
pending due time, the earliest asked for: whoever processes it computes the
next one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class Schedule:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._seq = itertools.count()
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.closed = False

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    def add(self, key: str) -> None:
        """Process ``key`` as soon as a worker is free."""
        if self.closed:
            return
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
        else:
            self.add_at(key, self.now() + delay)

    def add_at(self, key: str, when: float) -> None:
        """Process ``key`` at loop time ``when`` (or earlier, if it is already due earlier)."""
        if self.closed:
            return
        if when <= self.now():
            self.add(key)
            return
        cur = self._due.get(key)
        if cur is not None and cur <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        self._arm(when)

    def pending(self, key: str) -> float | None:
        return self._due.get(key)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self.now()
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _seq, key = heapq.heappop(heap)
            if self._due.get(key) == when:  # otherwise superseded by an earlier time already handled
                del self._due[key]
                self.add(key)
        if heap and not self.closed:
            self._arm(heap[0][0])

    async def get(self) -> str:
        key = await self._ready.get()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._due.clear()

    def __len__(self) -> int:
        return self._ready.qsize()
