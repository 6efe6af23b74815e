"""The scheduling queue: an active heap, an unschedulable set, and backoff — upstream's PriorityQueue in small.

* **active**: pods ready for an attempt, highest ``spec.priority`` first, then in
  arrival order (upstream's PrioritySort).
* **unschedulable**: pods whose last attempt found no node. A cluster event that
  may help (node added or changed, a pod freeing resources) moves them back to
  active once their backoff since that attempt has passed — 1 s doubling per
  attempt up to 10 s, upstream's ``podInitialBackoffSeconds``/``podMaxBackoffSeconds``.
  Without any event they are still retried after ``flush_interval`` (upstream
  flushes after 5 minutes; tinykube uses a shorter period).
* **backoff**: pods whose bind failed wait out their backoff, then go active.

Keys are ``namespace/name``; the queue knows nothing about pods beyond their
priority. Timers are loop ``call_at`` handles, one per waiting pod.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class SchedulingQueue:
    def __init__(self, initial_backoff: float = 1.0, max_backoff: float = 10.0, flush_interval: float = 10.0) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.flush_interval = flush_interval
        self._heap: list[tuple[int, int, str]] = []
        self._active: dict[str, int] = {}  # key -> sequence number of its live heap entry
        self._seq = itertools.count()
        self._priority: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._unschedulable: dict[str, float] = {}  # key -> loop time of the failed attempt
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wake = asyncio.Event()
        self.closed = False

    def __len__(self) -> int:
        return len(self._active)

    @property
    def unschedulable(self) -> set[str]:
        return set(self._unschedulable)

    def is_unschedulable(self, key: str) -> bool:
        return key in self._unschedulable

    @property
    def has_unschedulable(self) -> bool:
        return bool(self._unschedulable)

    def attempts(self, key: str) -> int:
        return self._attempts.get(key, 0)

    def backoff(self, key: str) -> float:
        n = self._attempts.get(key, 0)
        if n <= 0:
            return 0.0
        return min(self.max_backoff, self.initial_backoff * (2 ** (n - 1)))

    # -- state changes ---------------------------------------------------------------------------------------
    def _cancel_timer(self, key: str) -> None:
        h = self._timers.pop(key, None)
        if h is not None:
            h.cancel()

    def _arm(self, key: str, when: float) -> None:
        cur = self._timers.get(key)
        if cur is not None:
            if cur.when() <= when:
                return
            cur.cancel()
        self._timers[key] = asyncio.get_running_loop().call_at(when, self.activate, key)

    def activate(self, key: str) -> None:
        """Make a pod ready for an attempt now (new pod, changed pod, or its wait is over)."""
        if self.closed:
            return
        self._cancel_timer(key)
        self._unschedulable.pop(key, None)
        if key in self._active:
            return
        seq = next(self._seq)
        self._active[key] = seq
        heapq.heappush(self._heap, (-self._priority.get(key, 0), seq, key))
        self._wake.set()

    def add(self, key: str, priority: int = 0) -> None:
        """A pending pod appeared or changed: it goes active right away (upstream moves updated pods too)."""
        self._priority[key] = priority
        self.activate(key)

    def pop(self) -> str | None:
        while self._heap:
            _, seq, key = heapq.heappop(self._heap)
            if self._active.get(key) == seq:
                del self._active[key]
                return key
        return None

    async def wait(self) -> None:
        """Until something is active (returns at once if it already is)."""
        while not self._active and not self.closed:
            self._wake.clear()
            await self._wake.wait()

    def failed(self, key: str) -> None:
        """The attempt found no node: the pod waits in the unschedulable set."""
        if self.closed:
            return
        self._attempts[key] = self._attempts.get(key, 0) + 1
        self._active.pop(key, None)
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._unschedulable[key] = now
        self._cancel_timer(key)
        self._arm(key, now + max(self.flush_interval, self.backoff(key)))

    def retry_after_backoff(self, key: str) -> None:
        """An error (a failed bind): retry once the pod's backoff has passed."""
        if self.closed:
            return
        self._attempts[key] = self._attempts.get(key, 0) + 1
        self._active.pop(key, None)
        self._unschedulable.pop(key, None)
        self._cancel_timer(key)
        self._arm(key, asyncio.get_running_loop().time() + self.backoff(key))

    def move_all(self) -> None:
        """A cluster event that may make unschedulable pods fit: each goes active once its backoff is over."""
        if not self._unschedulable or self.closed:
            return
        now = asyncio.get_running_loop().time()
        for key, failed_at in list(self._unschedulable.items()):
            ready = failed_at + self.backoff(key)
            if ready <= now:
                self.activate(key)
            else:
                self._arm(key, ready)

    def done(self, key: str) -> None:
        """The pod was bound: forget its attempts."""
        self._attempts.pop(key, None)

    def remove(self, key: str) -> None:
        """The pod is gone or no longer ours."""
        self._active.pop(key, None)
        self._unschedulable.pop(key, None)
        self._attempts.pop(key, None)
        self._priority.pop(key, None)
        self._cancel_timer(key)

    def close(self) -> None:
        self.closed = True
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()
        self._wake.set()
