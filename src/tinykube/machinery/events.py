"""Event recorder: components report what they did as core/v1 Events, as client-go's recorder does.

``event()`` never blocks or fails its caller: events go to a queue that one
background task writes. Before queueing, events pass client-go's correlator:

* aggregation: once one object has had 10 events of the same type and reason with
  different messages within 10 minutes, further ones become one event with the
  message ``(combined from similar events): <latest message>`` whose count grows;
* de-duplication: a repeat of an identical event updates the existing Event's
  ``count``/``lastTimestamp`` (and message, for aggregates) instead of creating one;
* spam filter: a token bucket per (source, object) — 25 events at once, then one
  per 5 minutes; events beyond it are dropped, as upstream drops them.

So a ReplicaSet creating 10,000 pods writes a couple of dozen events, not 10,000.
Events are named ``<object>.<hex timestamp>`` like upstream's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..api import errors
from ..api.meta import now_rfc3339
from ..api.resources import EVENTS
from ..client.base import Client, Obj

log = logging.getLogger("tinykube.machinery.events")
_DEDUP_SECONDS = 600.0
_MAX_PENDING = 10000
_CONCURRENCY = 64  # event writes in flight per recorder


AGGREGATE_MAX_EVENTS = 10
AGGREGATE_INTERVAL = 600.0
SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0
_CACHE_ENTRIES = 4096
AGGREGATE_PREFIX = "(combined from similar events): "


class Correlator:
    """client-go's EventCorrelator decisions (aggregate, then rate-limit), without I/O."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._agg: dict[tuple[str, ...], tuple[set[str], float]] = {}
        self._buckets: dict[tuple[str, ...], tuple[float, float]] = {}

    def correlate(self, source: tuple[str, str], ref: Obj, type_: str, reason: str,
                  message: str) -> tuple[str, tuple[str, ...]] | None:
        """(message to record, de-duplication key), or None when the spam filter drops the event."""
        now = self.clock()
        obj_key = (*source, ref.get("kind", ""), ref.get("namespace", ""), ref.get("name", ""), ref.get("uid", ""),
                   ref.get("apiVersion", ""))
        agg_key = (*obj_key, type_, reason)
        seen, last = self._agg.get(agg_key, (set(), now))
        if now - last > AGGREGATE_INTERVAL:
            seen = set()
        seen.add(message)
        if len(self._agg) >= _CACHE_ENTRIES and agg_key not in self._agg:
            self._agg.pop(next(iter(self._agg)))
        self._agg[agg_key] = (seen, now)
        dedup: tuple[str, ...] = agg_key
        if len(seen) >= AGGREGATE_MAX_EVENTS:
            message = AGGREGATE_PREFIX + message
        else:
            dedup = (*agg_key, message)
        tokens, at = self._buckets.get(obj_key, (float(SPAM_BURST), now))
        tokens = min(float(SPAM_BURST), tokens + (now - at) / SPAM_REFILL_SECONDS)
        if tokens < 1.0:
            self._buckets[obj_key] = (tokens, now)
            return None
        if len(self._buckets) >= _CACHE_ENTRIES and obj_key not in self._buckets:
            self._buckets.pop(next(iter(self._buckets)))
        self._buckets[obj_key] = (tokens - 1.0, now)
        return message, dedup


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self.correlator = Correlator()
        self._q: deque[tuple[Obj, str, str, str, tuple[str, ...]]] = deque()
        self._seen: dict[tuple[str, ...], tuple[str, float, int]] = {}
        self._task: asyncio.Task[None] | None = None

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        if len(self._q) >= _MAX_PENDING:
            return  # upstream drops events too when its broadcaster is full
        md = obj.get("metadata") or {}
        ref = {"kind": obj.get("kind", ""), "namespace": md.get("namespace", ""), "name": md.get("name", ""),
               "uid": md.get("uid", ""), "apiVersion": obj.get("apiVersion", ""),
               "resourceVersion": md.get("resourceVersion", "")}
        verdict = self.correlator.correlate((self.component, self.host), ref, type_, reason, message)
        if verdict is None:
            return
        message, dedup = verdict
        self._q.append((ref, type_, reason, message, dedup))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        while self._task is not None and not self._task.done() and self._q:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _drain(self) -> None:
        """Write queued events, up to ``_CONCURRENCY`` at once (a write waits for its group commit, so one at a
        time would be one per event-loop tick). Events with the same dedup key are never in flight together:
        the second must see the first's name to count it (the batch stops at such an event)."""
        q = self._q
        while q:
            batch: list[tuple[Obj, str, str, str, tuple[str, ...]]] = []
            keys: set[tuple[str, ...]] = set()
            while q and len(batch) < _CONCURRENCY and q[0][4] not in keys:
                item = q.popleft()
                keys.add(item[4])
                batch.append(item)
            await asyncio.gather(*(self._write_logged(*item) for item in batch))

    async def _write_logged(self, ref: Obj, type_: str, reason: str, message: str, dedup: tuple[str, ...]) -> None:
        try:
            await self._write(ref, type_, reason, message, dedup)
        except asyncio.CancelledError:
            raise
        except Exception as ex:
            log.debug("event %s/%s not recorded: %s", ref.get("name"), reason, ex)

    async def _write(self, ref: Obj, type_: str, reason: str, message: str, dedup: tuple[str, ...]) -> None:
        ns = ref.get("namespace") or "default"
        now = time.monotonic()
        prev = self._seen.get(dedup)
        ts = now_rfc3339()
        if prev is not None and now - prev[1] < _DEDUP_SECONDS:
            name, _t, count = prev
            try:
                await self.client.patch(EVENTS, ns, name, {"count": count + 1, "lastTimestamp": ts, "message": message},
                                        readonly=True)
                self._seen.pop(dedup, None)
                self._seen[dedup] = (name, now, count + 1)
                return
            except errors.ApiError as ex:
                if ex.code != 404:
                    raise
        while len(self._seen) >= _CACHE_ENTRIES:  # an LRU of recent events, as client-go's cache
            self._seen.pop(next(iter(self._seen)))
        name = f"{ref.get('name', 'unknown')}.{time.time_ns():x}"
        ev: dict[str, Any] = {
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host,
        }
        await self.client.create(EVENTS, ns, ev, readonly=True)
        self._seen[dedup] = (name, now, 1)
