"""In-process transport: calls the registry directly (same admission path as HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..api import errors
from ..api.resources import PODS, Resource
from ..apiserver.registry import PATCH_JSON, PATCH_MERGE, PATCH_STRATEGIC, Options, Registry
from .base import Obj, delete_options
from .readonly import share

_PATCH_CT = {"merge": PATCH_MERGE, "json": PATCH_JSON, "strategic": PATCH_STRATEGIC}


def _own(obj: dict[str, Any], raw: bytes | None) -> Obj:
    """A private copy: callers may mutate what they get without touching the store's cache."""
    result: Obj = orjson.loads(raw if raw is not None else orjson.dumps(obj))
    return result


def _shared(obj: dict[str, Any], raw: bytes | None) -> Obj:
    """The store's own object, for callers that promised not to change it."""
    return share(obj)


class LocalClient:
    def __init__(self, registry: Registry, manager: str = "tinykube") -> None:
        self.registry = registry
        self.manager = manager
        self._options = Options(field_validation="Ignore", field_manager=manager, user_agent=manager, typed=True)

    def _opts(self) -> Options:
        return self._options  # the registry only reads options

    async def get(self, res: Resource, ns: str | None, name: str) -> Obj:
        obj, raw = self.registry.get(res, ns, name)
        return _own(obj, raw)

    async def list(self, res: Resource, ns: str | None = None, label_selector: str = "",
                   field_selector: str = "", readonly: bool = False) -> tuple[list[Obj], str]:
        items, meta = self.registry.list(res, ns, label_selector, field_selector)
        if readonly:
            return [share(e.obj) for e in items], str(meta["resourceVersion"])
        return [orjson.loads(e.raw) for e in items], str(meta["resourceVersion"])

    async def create(self, res: Resource, ns: str | None, obj: Obj, readonly: bool = False) -> Obj:
        r = await self.registry.create(res, ns, obj, self._opts())
        return (_shared if readonly else _own)(r.obj, r.raw)

    async def update(self, res: Resource, ns: str | None, obj: Obj, subresource: str = "",
                     readonly: bool = False) -> Obj:
        r = await self.registry.update(res, ns, obj["metadata"]["name"], obj, self._opts(), subresource)
        return (_shared if readonly else _own)(r.obj, r.raw)

    async def patch(self, res: Resource, ns: str | None, name: str, body: Any, patch_type: str = "merge",
                    subresource: str = "", readonly: bool = False) -> Obj:
        r = await self.registry.patch(res, ns, name, _PATCH_CT[patch_type], orjson.dumps(body), self._opts(), subresource)
        return (_shared if readonly else _own)(r.obj, r.raw)

    async def delete(self, res: Resource, ns: str | None, name: str, propagation: str | None = None,
                     grace_period: int | None = None, preconditions: dict[str, str] | None = None) -> None:
        opts = delete_options(propagation, grace_period, preconditions)
        await self.registry.delete(res, ns, name, opts)

    async def delete_collection(self, res: Resource, ns: str | None, label_selector: str = "") -> None:
        await self.registry.delete_collection(res, ns, label_selector, "", {"propagationPolicy": "Background"})

    async def bind(self, ns: str, pod: str, node: str) -> None:
        await self.registry.bind(PODS, ns, pod, {"target": {"kind": "Node", "name": node}}, self._opts())

    async def watch(self, res: Resource, ns: str | None, resource_version: str,
                    readonly: bool = False) -> AsyncIterator[tuple[str, Obj]]:
        w, initial = self.registry.watch(res, ns, resource_version)
        out = _shared if readonly else _own
        try:
            for e in initial:
                yield "ADDED", out(*self.registry._to_external(res, e))
            while True:
                ev = await w.next()
                if ev is None:
                    raise errors.gone("watch closed")
                yield ev.type, out(*self.registry._to_external(res, ev.entry))
        finally:
            w.close()
