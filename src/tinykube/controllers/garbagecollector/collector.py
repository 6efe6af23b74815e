"""The garbage collector: deletes objects whose owners are gone, and carries out foreground and orphan deletion.

It watches every resource that can carry ownerReferences (every stored resource
that supports delete, list and watch, except events, which upstream ignores too)
through the shared informers, and keeps the :class:`~.graph.Graph` of owners and
dependents current from their events. The graph queues object uids on two work
queues, each drained by a few workers:

attempt-to-delete
    For a uid the collector GETs the live object (a 404 or another uid under that
    name becomes a *virtual delete* in the graph) and classifies each of its owner
    references with a live GET of the owner by apiVersion/kind/name, compared by uid
    (owners known absent are remembered, so 10,000 dependents of one deleted owner
    cost one DELETE each and no owner lookups):

    * *solid* owners exist and are not deleting their dependents: the object stays;
      dangling references and references to owners waiting for their dependents are
      patched out of it;
    * no solid owner and some owner waits for its dependents in foreground: the object
      is deleted in foreground if it has dependents of its own (first making its own
      references non-blocking if one of its dependents also deletes in foreground,
      upstream's cycle breaker), otherwise with its own policy as below;
    * all owners dangling: the object is deleted with the policy its finalizers ask
      for (``orphan`` -> Orphan, ``foregroundDeletion`` -> Foreground), else Background.

    An object being deleted in foreground (``deletionTimestamp`` plus the
    ``foregroundDeletion`` finalizer) has its blocking dependents queued; once none
    with ``blockOwnerDeletion: true`` is left (a graceful pod counts until it is
    gone), the finalizer is removed, and the API server deletes the object when its
    last finalizer goes.

attempt-to-orphan
    An owner whose deletion started with the ``orphan`` finalizer: its reference is
    removed from every dependent (a strategic-merge ``$patch: delete`` on the uid),
    then the finalizer is removed from the owner.

Errors requeue the uid with per-uid exponential backoff and no retry limit, as
upstream. Workers yield to the event loop after each item, so a cascade of
thousands of deletes over the in-process client does not starve other tasks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import Any

from ...api import errors
from ...api.resources import RESOURCES, Resource, by_api_version
from ...client.base import Client, Obj
from ...machinery.controller import stop_tasks
from ...machinery.informer import InformerFactory
from ...machinery.queue import WorkQueue
from .graph import (
    ADD,
    DELETE,
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    UPDATE,
    Graph,
    Identity,
    Node,
    OwnerRef,
    being_deleted,
    has_finalizer,
)

log = logging.getLogger("tinykube.controllers.garbagecollector")

# Upstream's default ignored resources: events are never owners or garbage worth a graph node each.
DEFAULT_IGNORED: frozenset[tuple[str, str]] = frozenset({("", "events"), ("events.k8s.io", "events")})
_NEEDED_VERBS = ("delete", "list", "watch")


def monitored_resources(ignored: Iterable[tuple[str, str]] = DEFAULT_IGNORED) -> list[Resource]:
    """Resources the collector watches: stored ones (not views) that support delete, list and watch."""
    skip = set(ignored)
    return [r for r in RESOURCES
            if not r.storage and all(v in r.verbs for v in _NEEDED_VERBS) and (r.group, r.plural) not in skip]


class _VirtualDeleteEnqueued(Exception):
    """The object does not exist; the graph has been told (no retry needed)."""


class _NamespacedOwnerOfClusterScoped(Exception):
    """A cluster-scoped object names a namespaced owner: invalid, and retrying will not fix it."""


class UnknownKindError(Exception):
    """A reference to an apiVersion/kind this server does not serve (retried: it may be served later)."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"unable to map {api_version}, Kind={kind} to a resource")


class GarbageCollector:
    name = "garbagecollector"

    def __init__(self, client: Client, informers: InformerFactory, workers: int = 10,
                 ignored_resources: Iterable[tuple[str, str]] = DEFAULT_IGNORED, orphan_concurrency: int = 64) -> None:
        self.client = client
        self.workers = workers
        self.orphan_concurrency = orphan_concurrency
        self.delete_queue = WorkQueue(base_delay=0.005, max_delay=60.0)
        self.orphan_queue = WorkQueue(base_delay=0.005, max_delay=60.0)
        self.graph = Graph(self._enqueue_delete, self._enqueue_orphan)
        self._started = False
        self._early: list[tuple[str, str, bool]] = []  # enqueues before start(): (queue, uid, rate_limited)
        self._tasks: list[asyncio.Task[None]] = []
        self.resources = monitored_resources(ignored_resources)
        for res in self.resources:
            informers.informer(res).add_handlers(functools.partial(self._on_add, res),
                                                 functools.partial(self._on_update, res),
                                                 functools.partial(self._on_delete, res))

    # -- informer handlers -------------------------------------------------------------------------------
    def _on_add(self, res: Resource, obj: Obj) -> None:
        self.graph.observe(ADD, res.api_version, res.kind, obj)

    def _on_update(self, res: Resource, old: Obj, new: Obj) -> None:
        self.graph.observe(UPDATE, res.api_version, res.kind, new, old)

    def _on_delete(self, res: Resource, obj: Obj) -> None:
        self.graph.observe(DELETE, res.api_version, res.kind, obj)

    # -- queues ------------------------------------------------------------------------------------------
    def _enqueue_delete(self, uid: str, rate_limited: bool = False) -> None:
        if not self._started:
            self._early.append(("delete", uid, rate_limited))
        elif rate_limited:
            self.delete_queue.add_rate_limited(uid)
        else:
            self.delete_queue.add(uid)

    def _enqueue_orphan(self, uid: str) -> None:
        if not self._started:
            self._early.append(("orphan", uid, False))
        else:
            self.orphan_queue.add(uid)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        early, self._early = self._early, []
        for q, uid, rate_limited in early:
            if q == "orphan":
                self._enqueue_orphan(uid)
            else:
                self._enqueue_delete(uid, rate_limited)
        for i in range(self.workers):
            self._tasks.append(asyncio.create_task(self._delete_worker(), name=f"gc-delete-{i}"))
            self._tasks.append(asyncio.create_task(self._orphan_worker(), name=f"gc-orphan-{i}"))

    async def stop(self) -> None:
        await self.delete_queue.shutdown()
        await self.orphan_queue.shutdown()
        await stop_tasks(self._tasks)

    # -- workers -----------------------------------------------------------------------------------------
    async def _delete_worker(self) -> None:
        while True:
            uid = await self.delete_queue.get()
            if uid is None:
                return
            requeue = False
            try:
                requeue = await self._attempt_to_delete(uid)
            except asyncio.CancelledError:
                raise
            except Exception as ex:
                self._log_failure("attempt to delete", uid, ex)
                requeue = True
            if requeue:
                self.delete_queue.add_rate_limited(uid)
            else:
                self.delete_queue.forget(uid)
            self.delete_queue.done(uid)
            await asyncio.sleep(0)

    async def _orphan_worker(self) -> None:
        while True:
            uid = await self.orphan_queue.get()
            if uid is None:
                return
            try:
                await self._attempt_to_orphan(uid)
                self.orphan_queue.forget(uid)
            except asyncio.CancelledError:
                raise
            except Exception as ex:
                self._log_failure("orphaning dependents of", uid, ex)
                self.orphan_queue.add_rate_limited(uid)
            self.orphan_queue.done(uid)
            await asyncio.sleep(0)

    def _log_failure(self, what: str, uid: str, ex: Exception) -> None:
        node = self.graph.get(uid)
        item = node.identity if node is not None else uid
        if isinstance(ex, errors.ApiError) and ex.code in (404, 409):
            log.debug("%s %s: %s", what, item, ex)
        elif isinstance(ex, errors.ApiError | UnknownKindError):
            log.info("%s %s: %s", what, item, ex)
        else:
            log.exception("%s %s failed", what, item)

    # -- attempt to delete -------------------------------------------------------------------------------
    async def _attempt_to_delete(self, uid: str) -> bool:
        """Process one queued uid; True asks for a retry with backoff."""
        node = self.graph.get(uid)
        if node is None:
            return False  # gone from the graph meanwhile (deleted, or a virtual node found absent)
        try:
            await self._attempt_to_delete_item(node)
        except (_VirtualDeleteEnqueued, _NamespacedOwnerOfClusterScoped):
            return False
        # An owner that exists but has not been seen by an informer yet: look again until it has
        # (otherwise a virtual node for an object created and deleted during a relist could stay forever).
        return node.virtual

    async def _attempt_to_delete_item(self, node: Node) -> None:
        ident = node.identity
        if node.being_deleted and not node.deleting_dependents:
            return  # a one-way trip: its dependents are handled when the deletion completes
        latest = await self._get_or_virtual_delete(ident)
        md = latest.get("metadata") or {}
        if node.deleting_dependents:
            await self._process_deleting_dependents(node)
            return
        refs: list[OwnerRef] = [r for r in md.get("ownerReferences") or [] if isinstance(r, dict) and r.get("uid")]
        if not refs:
            return
        solid, dangling, waiting = await self._classify(ident, refs)
        if solid:
            if not dangling and not waiting:
                return
            # References to owners waiting for their dependents must go too, or those owners never finish.
            await self._remove_owner_refs(ident, [r["uid"] for r in dangling + waiting])
            return
        if waiting and node.dependents:
            if any(dep.deleting_dependents for dep in list(node.dependents.values())):
                # Possible cycle: stop blocking our owners, then delete in foreground.
                await self._unblock_owner_refs(node)
            await self._delete(ident, "Foreground")
            return
        if has_finalizer(md, ORPHAN_FINALIZER):
            policy = "Orphan"
        elif has_finalizer(md, FOREGROUND_FINALIZER):
            policy = "Foreground"
        else:
            policy = "Background"
        await self._delete(ident, policy)

    async def _classify(self, item: Identity, refs: list[OwnerRef]
                        ) -> tuple[list[OwnerRef], list[OwnerRef], list[OwnerRef]]:
        """(solid, dangling, waiting-for-dependents-deletion) references of ``item``."""
        solid: list[OwnerRef] = []
        dangling: list[OwnerRef] = []
        waiting: list[OwnerRef] = []
        for ref in refs:
            owner = await self._live_owner(ref, item)
            if owner is None:
                dangling.append(ref)
                continue
            omd = owner.get("metadata") or {}
            if being_deleted(omd) and has_finalizer(omd, FOREGROUND_FINALIZER):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _live_owner(self, ref: OwnerRef, item: Identity) -> Obj | None:
        """The owner ``ref`` names, fetched from the API server; None if it does not exist (dangling)."""
        cluster_key = Identity.from_ref(ref)
        ns_key = Identity.from_ref(ref, item.namespace)
        if self.graph.absent.has(cluster_key) or self.graph.absent.has(ns_key):
            return None
        res = self._resource(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
        if not item.namespace and res.namespaced:
            log.info("%s is cluster-scoped but names a namespaced owner %s", item, cluster_key)
            raise _NamespacedOwnerOfClusterScoped()
        key = ns_key if res.namespaced else cluster_key
        try:
            owner = await self.client.get(res, item.namespace if res.namespaced else None, str(ref.get("name") or ""))
        except errors.ApiError as ex:
            if ex.code != 404:
                raise
            self.graph.absent.add(key)
            return None
        if (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
            self.graph.absent.add(key)
            return None
        return owner

    async def _process_deleting_dependents(self, node: Node) -> None:
        blocking = node.blocking_dependents()
        if not blocking:
            await self._remove_finalizer(node.identity, FOREGROUND_FINALIZER)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self._enqueue_delete(dep.uid)

    # -- attempt to orphan -------------------------------------------------------------------------------
    async def _attempt_to_orphan(self, uid: str) -> None:
        node = self.graph.get(uid)
        if node is None:
            return
        owner = node.identity
        await self._orphan_dependents(owner, list(node.dependents.values()))
        await self._remove_finalizer(owner, ORPHAN_FINALIZER)

    async def _orphan_dependents(self, owner: Identity, dependents: list[Node]) -> None:
        sem = asyncio.Semaphore(self.orphan_concurrency)
        failures: list[str] = []

        async def one(dep: Identity) -> None:
            async with sem:
                try:
                    await self._remove_owner_refs(dep, [owner.uid])
                except errors.ApiError as ex:
                    if ex.code != 404:
                        failures.append(f"orphaning {dep} failed: {ex}")
                except UnknownKindError as ex:
                    failures.append(f"orphaning {dep} failed: {ex}")

        await asyncio.gather(*(one(d.identity) for d in dependents))
        if failures:
            raise RuntimeError(f"failed to orphan dependents of owner {owner}: " + "; ".join(failures[:10]))

    # -- API operations ----------------------------------------------------------------------------------
    def _resource(self, api_version: str, kind: str) -> Resource:
        res = by_api_version(api_version, kind)
        if res is None:
            raise UnknownKindError(api_version, kind)
        return res

    def _where(self, ident: Identity) -> tuple[Resource, str | None]:
        res = self._resource(ident.api_version, ident.kind)
        return res, (ident.namespace or None) if res.namespaced else None

    async def _get_or_virtual_delete(self, ident: Identity) -> Obj:
        """The live object; if it is gone (or another object took its name), tell the graph and stop."""
        res, ns = self._where(ident)
        try:
            if res.namespaced and ns is None:
                raise errors.not_found(res.plural, ident.name, res.group)
            obj = await self.client.get(res, ns, ident.name)
        except errors.ApiError as ex:
            if ex.code != 404:
                raise
            self.graph.virtual_delete(ident)
            raise _VirtualDeleteEnqueued() from None
        if (obj.get("metadata") or {}).get("uid") != ident.uid:
            self.graph.virtual_delete(ident)
            raise _VirtualDeleteEnqueued()
        return obj

    async def _delete(self, ident: Identity, policy: str) -> None:
        res, ns = self._where(ident)
        log.debug("deleting %s with propagation %s", ident, policy)
        try:
            await self.client.delete(res, ns, ident.name, propagation=policy, preconditions={"uid": ident.uid})
        except errors.ApiError as ex:
            if ex.code == 409:  # another object of that name now: ours is gone
                self.graph.virtual_delete(ident)
                raise _VirtualDeleteEnqueued() from None
            if ex.code != 404:
                raise
            self.graph.virtual_delete(ident)
            raise _VirtualDeleteEnqueued() from None

    async def _remove_owner_refs(self, ident: Identity, owner_uids: list[str]) -> None:
        """Drop the references to ``owner_uids`` from an object (strategic merge: absent ones are no error)."""
        res, ns = self._where(ident)
        body = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": u} for u in owner_uids],
                             "uid": ident.uid}}
        await self.client.patch(res, ns, ident.name, body, "strategic")

    async def _unblock_owner_refs(self, node: Node) -> None:
        refs = [{"uid": r["uid"], "blockOwnerDeletion": False} for r in node.owners
                if r.get("blockOwnerDeletion") is True]
        if not refs:
            return
        res, ns = self._where(node.identity)
        await self.client.patch(res, ns, node.identity.name,
                                {"metadata": {"ownerReferences": refs, "uid": node.identity.uid}}, "strategic")

    async def _remove_finalizer(self, ident: Identity, finalizer: str) -> None:
        """Remove ``finalizer`` from the live object, retrying a few times on conflicts."""
        res, ns = self._where(ident)
        delay = 0.01
        for attempt in range(5):
            try:
                obj = await self.client.get(res, ns, ident.name)
            except errors.ApiError as ex:
                if ex.code == 404:
                    return
                raise
            md: dict[str, Any] = obj.get("metadata") or {}
            if md.get("uid") != ident.uid:
                return  # another object under that name: ours is gone
            fins = md.get("finalizers") or []
            if finalizer not in fins:
                return
            body = {"metadata": {"resourceVersion": md.get("resourceVersion"),
                                 "finalizers": [f for f in fins if f != finalizer]}}
            try:
                await self.client.patch(res, ns, ident.name, body, "merge")
                return
            except errors.ApiError as ex:
                if ex.code == 404:
                    return
                if ex.code != 409 or attempt == 4:
                    raise
            await asyncio.sleep(delay)
            delay *= 2


__all__ = ["DEFAULT_IGNORED", "GarbageCollector", "UnknownKindError", "monitored_resources"]
