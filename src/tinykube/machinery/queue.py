"""A work queue as controllers use it: deduplicated keys, delayed adds, per-key exponential backoff.

A key is never processed by two workers at once: while a key is being processed,
adding it again marks it dirty and it is queued once more when ``done`` is called.

Delayed adds go to one heap of due times with a single event-loop timer armed for
its head (no timer per key, however many keys wait), and a key has at most one
pending due time, the earliest asked for — as upstream's delaying queue keeps it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque


class WorkQueue:
    def __init__(self, base_delay: float = 0.005, max_delay: float = 30.0) -> None:
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        # Idle workers, each parked on a future that add() resolves directly (no task or lock per add).
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.closed = False

    def add(self, key: str) -> None:
        if self.closed:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._wake_one()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds (or earlier, if it is already due earlier)."""
        if delay <= 0:
            self.add(key)
            return
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        cur = self._due.get(key)
        if cur is not None and cur <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = loop.call_at(when, self._fire)

    def pending(self, key: str) -> float | None:
        """Loop time at which ``key`` is due, if a delayed add is waiting."""
        return self._due.get(key)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _seq, key = heapq.heappop(heap)
            if self._due.get(key) == when:  # otherwise superseded by an earlier time already handled
                del self._due[key]
                self.add(key)
        if heap and not self.closed:
            self._timer_at = heap[0][0]
            self._timer = loop.call_at(self._timer_at, self._fire)

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.max_delay, self.base_delay * (2 ** n)))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def retries(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str | None:
        while not self._queue and not self.closed:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake_one()  # woken and cancelled at once: pass the wake-up on
                raise
        if self.closed:
            return None
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._queue)

    async def shutdown(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._due.clear()
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
