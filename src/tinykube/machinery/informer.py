"""Informers: a local, indexed cache of one resource kept current by list + watch.

An informer lists its resource, then watches from the list's resourceVersion and
applies every event to its cache before calling the registered handlers (so a
handler, and any sync it triggers, sees the cache at least as new as the event).
When the watch ends or the server answers 410 Gone, it lists again and turns the
difference into synthetic add/update/delete notifications, as client-go's reflector
plus DeltaFIFO replace do.

Objects in the cache are shared, with every handler and, over the in-process
client, with the store itself (list and watch are ``readonly``, so no event is
decoded or copied): callers must copy (``copy.deepcopy``) before changing one;
``TINYKUBE_CHECK_SHARED=1`` makes any in-place change raise. Keys are ``namespace/name`` (or ``name`` for cluster-scoped kinds).

:class:`InformerFactory` hands out one informer per resource, shared by every
controller in the process, as client-go's SharedInformerFactory does.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..api import errors
from ..api.resources import Resource
from ..client.base import Client, Obj

log = logging.getLogger("tinykube.machinery.informer")

AddFn = Callable[[Obj], None]
UpdateFn = Callable[[Obj, Obj], None]
DeleteFn = Callable[[Obj], None]
IndexFn = Callable[[Obj], Iterable[str]]

CONTROLLER_INDEX = "controller-uid"
OWNER_INDEX = "owner-uid"
NAMESPACE_INDEX = "namespace"


def key_of(obj: Obj) -> str:
    md = obj["metadata"]
    ns = md.get("namespace")
    return f"{ns}/{md['name']}" if ns else str(md["name"])


def resource_version(obj: Obj | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


def newest(cached: Obj | None, written: Obj | None) -> Obj | None:
    """The object to act on: the informer's copy, unless a write of our own is newer than it (the cache lags a
    write's watch event). A missing cached copy means the object is gone, whatever we wrote."""
    if cached is None or written is None:
        return cached
    return cached if resource_version(cached) >= resource_version(written) else written


def split_key(key: str) -> tuple[str | None, str]:
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return None, key


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            r: dict[str, Any] = ref
            return r
    return None


def _controller_uid(obj: Obj) -> list[str]:
    ref = controller_ref(obj)
    return [ref["uid"]] if ref and ref.get("uid") else []


def _owner_uids(obj: Obj) -> list[str]:
    return [r["uid"] for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid")]


def _namespace(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


class Informer:
    def __init__(self, client: Client, res: Resource, namespace: str | None = None) -> None:
        self.client = client
        self.res = res
        self.namespace = namespace
        self.cache: dict[str, Obj] = {}
        self._index_fns: dict[str, IndexFn] = {}
        self._indices: dict[str, dict[str, dict[str, Obj]]] = {}
        self._adds: builtins.list[AddFn] = []
        self._updates: builtins.list[UpdateFn] = []
        self._deletes: builtins.list[DeleteFn] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.resource_version = ""
        for name, fn in ((CONTROLLER_INDEX, _controller_uid), (OWNER_INDEX, _owner_uids), (NAMESPACE_INDEX, _namespace)):
            self.add_index(name, fn)

    # -- reading -----------------------------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def get(self, ns: str | None, name: str) -> Obj | None:
        return self.cache.get(f"{ns}/{name}" if ns else name)

    def get_key(self, key: str) -> Obj | None:
        return self.cache.get(key)

    def list(self, ns: str | None = None) -> list[Obj]:
        if ns is None:
            return list(self.cache.values())
        return self.by_index(NAMESPACE_INDEX, ns)

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        return list(self._indices[index].get(value, {}).values())

    def index_count(self, index: str, value: str) -> int:
        return len(self._indices[index].get(value, ()))

    # -- configuration -----------------------------------------------------------------------------------
    def add_index(self, name: str, fn: IndexFn) -> None:
        self._index_fns[name] = fn
        idx: dict[str, dict[str, Obj]] = {}
        for k, o in self.cache.items():
            for v in fn(o):
                idx.setdefault(v, {})[k] = o
        self._indices[name] = idx

    def add_handlers(self, on_add: AddFn | None = None, on_update: UpdateFn | None = None,
                     on_delete: DeleteFn | None = None) -> None:
        """Register handlers; objects already cached are replayed to ``on_add``."""
        if on_add:
            self._adds.append(on_add)
            for o in list(self.cache.values()):
                on_add(o)
        if on_update:
            self._updates.append(on_update)
        if on_delete:
            self._deletes.append(on_delete)

    # -- running -----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.res.plural}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._list_and_watch()
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except errors.ApiError as ex:
                if ex.code != 410:
                    log.warning("%s informer: %s", self.res.plural, ex)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            except Exception as ex:  # connection loss and the like: relist after a pause
                log.warning("%s informer: %s", self.res.plural, ex)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _list_and_watch(self) -> None:
        items, rv = await self.client.list(self.res, self.namespace, readonly=True)
        self._replace(items)
        self.resource_version = rv
        self._synced.set()
        async for etype, obj in self.client.watch(self.res, self.namespace, rv, readonly=True):
            if etype == "BOOKMARK":
                self.resource_version = obj.get("metadata", {}).get("resourceVersion", self.resource_version)
                continue
            self.resource_version = obj["metadata"].get("resourceVersion", self.resource_version)
            if etype == "DELETED":
                self._delete(obj)
            else:
                self._upsert(obj)
        # The watch ended (server closed it): list again.

    def _replace(self, items: builtins.list[Obj]) -> None:
        seen: set[str] = set()
        for o in items:
            seen.add(key_of(o))
            self._upsert(o)
        for k in [k for k in self.cache if k not in seen]:
            self._delete(self.cache[k])

    def _index_put(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, fn in self._index_fns.items():
            idx = self._indices[name]
            if old is not None:
                for v in fn(old):
                    bucket = idx.get(v)
                    if bucket is not None:
                        bucket.pop(key, None)
                        if not bucket:
                            del idx[v]
            if new is not None:
                for v in fn(new):
                    idx.setdefault(v, {})[key] = new

    def _upsert(self, obj: Obj) -> None:
        k = key_of(obj)
        old = self.cache.get(k)
        if old is not None and old["metadata"].get("resourceVersion") == obj["metadata"].get("resourceVersion"):
            return
        self.cache[k] = obj
        self._index_put(k, old, obj)
        if old is None:
            for fa in self._adds:
                self._call(fa, obj)
        else:
            for fu in self._updates:
                self._call(fu, old, obj)

    def _delete(self, obj: Obj) -> None:
        k = key_of(obj)
        old = self.cache.pop(k, None)
        self._index_put(k, old, None)
        for fd in self._deletes:
            self._call(fd, old if old is not None else obj)

    def _call(self, fn: Callable[..., None], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:  # a handler's bug must not stop the informer
            log.exception("%s informer handler failed", self.res.plural)


class InformerFactory:
    """One shared informer per resource."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[Resource, Informer] = {}
        self._started = False

    def informer(self, res: Resource) -> Informer:
        inf = self._informers.get(res)
        if inf is None:
            inf = self._informers[res] = Informer(self.client, res)
            if self._started:
                inf.start()
        return inf

    def start(self) -> None:
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.wait_synced() for inf in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))
