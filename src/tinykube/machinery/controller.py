"""The shape every controller shares: handlers enqueue keys, workers run ``sync(key)`` one step at a time.

A sync that raises is retried with per-key exponential backoff, at most
``max_retries`` times in a row (then dropped until the next event, as upstream's
``maxRetries``); a sync that returns normally forgets the key's failures.
Conflicts (409) are routine under concurrency and are retried without logging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..api import errors
from ..client.base import Obj
from .informer import key_of
from .queue import WorkQueue

log = logging.getLogger("tinykube.machinery.controller")


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks, wait until each has ended (whatever it raised), and empty the list."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(BaseException):
            await t
    tasks.clear()


class Controller:
    name = "controller"
    workers = 1
    max_retries = 15

    def __init__(self, base_delay: float = 0.005, max_delay: float = 30.0) -> None:
        self.queue = WorkQueue(base_delay=base_delay, max_delay=max_delay)
        self._tasks: list[asyncio.Task[None]] = []

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def enqueue_after(self, obj: Obj, delay: float) -> None:
        self.queue.add_after(key_of(obj), delay)

    def start(self) -> None:
        for i in range(self.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}"))

    async def stop(self) -> None:
        await self.queue.shutdown()
        await stop_tasks(self._tasks)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            try:
                await self.sync(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as ex:
                self._handle_error(key, ex)
            finally:
                self.queue.done(key)

    def _handle_error(self, key: str, ex: Exception) -> None:
        if self.queue.retries(key) >= self.max_retries:
            log.warning("%s: dropping %s out of the queue after %d retries: %s", self.name, key, self.max_retries, ex)
            self.queue.forget(key)
            return
        if isinstance(ex, errors.ApiError) and ex.code in (404, 409):
            log.debug("%s: %s: %s", self.name, key, ex)
        elif isinstance(ex, errors.ApiError):
            log.info("%s: %s: %s", self.name, key, ex)
        else:
            log.exception("%s: sync of %s failed", self.name, key)
        self.queue.add_rate_limited(key)
