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

from tinykube.api.meta import now_rfc3339
from tinykube.api.resources import PODS
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


@asynccontextmanager
async def started(tmp_path: Path, *makers: Callable[[ControlPlane], Any]) -> AsyncIterator[tuple[ControlPlane, list[Any]]]:
    """A control plane with components made by ``makers`` (each ``make(cp) -> component``) started once every
    informer has synced, as the controller manager does; stopped, in reverse, on the way out."""
    async with control_plane(tmp_path) as cp:
        comps = [make(cp) for make in makers]
        cp.informers.start()
        await cp.informers.wait_synced()
        for c in comps:
            c.start()
        try:
            yield cp, comps
        finally:
            for c in reversed(comps):
                await c.stop()


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


async def make_pod(cp: ControlPlane, name: str, ip: str | None, ready: bool | None = True,
                   labels: dict[str, str] | None = None, ports: list[dict[str, Any]] | None = None,
                   **spec: Any) -> dict[str, Any]:
    """A pod in "default" bound to node n1, Running with ``ip`` and a Ready condition (``None``: no condition),
    written the way a kubelet would (there is none in the harness)."""
    body = {"metadata": {"name": name, "labels": labels or {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx", "ports": ports or []}], **spec}}
    created = await cp.client.create(PODS, "default", body)
    created["status"]["phase"] = "Running"
    if ip:
        created["status"].update({"podIP": ip, "podIPs": [{"ip": ip}]})
    if ready is not None:
        created["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                            "lastTransitionTime": now_rfc3339()}]
    result: dict[str, Any] = await cp.client.update(PODS, "default", created, subresource="status")
    return result


async def set_ready(cp: ControlPlane, name: str, ready: bool, at: float | None = None) -> None:
    p = await cp.client.get(PODS, "default", name)
    p["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                  "lastTransitionTime": now_rfc3339(at)}]
    await cp.client.update(PODS, "default", p, subresource="status")
