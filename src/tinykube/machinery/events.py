"""Event recorder: components report what they did as core/v1 Events, as client-go's recorder does.

``event()`` never blocks or fails its caller: events go to a queue that one
background task writes. Repeats of the same (object, type, reason, message) within
ten minutes update the existing Event's ``count`` and ``lastTimestamp`` instead of
creating a new one (upstream's event correlator). Events are named
``<object>.<hex timestamp>`` like upstream's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from ..api import errors
from ..api.resources import EVENTS
from ..client.base import Client, Obj

log = logging.getLogger("tinykube.machinery.events")
_DEDUP_SECONDS = 600.0
_MAX_PENDING = 10000


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._q: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue()
        self._seen: dict[tuple[str, str, str, str, str], tuple[str, str, float, int]] = {}
        self._task: asyncio.Task[None] | None = None

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        if self._q.qsize() >= _MAX_PENDING:
            return  # upstream drops events too when its broadcaster is full
        md = obj.get("metadata") or {}
        ref = {"kind": obj.get("kind", ""), "namespace": md.get("namespace", ""), "name": md.get("name", ""),
               "uid": md.get("uid", ""), "apiVersion": obj.get("apiVersion", ""),
               "resourceVersion": md.get("resourceVersion", "")}
        self._q.put_nowait((ref, type_, reason, message))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        while self._task is not None and not self._task.done() and not self._q.empty():
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _drain(self) -> None:
        while not self._q.empty():
            ref, type_, reason, message = self._q.get_nowait()
            try:
                await self._write(ref, type_, reason, message)
            except asyncio.CancelledError:
                raise
            except Exception as ex:
                log.debug("event %s/%s not recorded: %s", ref.get("name"), reason, ex)

    async def _write(self, ref: Obj, type_: str, reason: str, message: str) -> None:
        ns = ref.get("namespace") or "default"
        dkey = (ns, ref.get("uid", ""), type_, reason, message)
        now = time.monotonic()
        prev = self._seen.get(dkey)
        ts = _now()
        if prev is not None and now - prev[2] < _DEDUP_SECONDS:
            name, _first, _t, count = prev
            try:
                await self.client.patch(EVENTS, ns, name, {"count": count + 1, "lastTimestamp": ts})
                self._seen[dkey] = (name, _first, now, count + 1)
                return
            except errors.ApiError as ex:
                if ex.code != 404:
                    raise
        if len(self._seen) > 4096:
            cutoff = now - _DEDUP_SECONDS
            self._seen = {k: v for k, v in self._seen.items() if v[2] >= cutoff}
        name = f"{ref.get('name', 'unknown')}.{time.time_ns():x}"
        ev: dict[str, Any] = {
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host,
        }
        await self.client.create(EVENTS, ns, ev)
        self._seen[dkey] = (name, ts, now, 1)
