"""A work queue as controllers use it: deduplicated keys, delayed adds, per-key exponential backoff.

A key is never processed by two workers at once: while a key is being processed,
adding it again marks it dirty and it is queued once more when ``done`` is called.
"""

from __future__ import annotations

import asyncio
from collections import deque


class WorkQueue:
    def __init__(self, base_delay: float = 0.005, max_delay: float = 30.0) -> None:
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._cond = asyncio.Condition()
        self._timers: set[asyncio.TimerHandle] = set()
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
        asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._cond:
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        h: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(h)
            self.add(key)

        h = loop.call_later(delay, fire)
        self._timers.add(h)

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.max_delay, self.base_delay * (2 ** n)))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def retries(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str | None:
        async with self._cond:
            while not self._queue and not self.closed:
                await self._cond.wait()
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
        for h in self._timers:
            h.cancel()
        async with self._cond:
            self._cond.notify_all()
