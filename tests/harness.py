"""In-process control plane for controller tests: a real registry over a real SQLite store in a temp dir.

Controllers under test run over the same in-process client the server uses; no
fakes stand in for the API. ``eventually`` polls a condition, for the asynchronous
convergence that controllers are about.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinykube.apiserver.registry import Registry
from tinykube.client.local import LocalClient
from tinykube.machinery.informer import InformerFactory
from tinykube.server.cluster import bootstrap, open_store


@dataclass
class ControlPlane:
    registry: Registry
    client: LocalClient
    informers: InformerFactory


@asynccontextmanager
async def control_plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    store = open_store(tmp_path)
    reg = Registry(store)
    await bootstrap(reg, 6443)
    client = LocalClient(reg, "test-controller-manager")
    factory = InformerFactory(client)
    try:
        yield ControlPlane(reg, client, factory)
    finally:
        await factory.stop()
        store.close()


async def eventually(pred: Callable[[], Any] | Callable[[], Awaitable[Any]], timeout: float = 10.0,
                     interval: float = 0.02, what: str = "condition") -> Any:
    """Wait until ``pred()`` (sync or async) returns a truthy value and return it; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        r = pred()
        if asyncio.iscoroutine(r):
            r = await r
        last = r
        if r:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
        await asyncio.sleep(interval)
