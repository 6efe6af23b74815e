"""EndpointSlice controller: the ``discovery.k8s.io/v1`` EndpointSlices of every service with a selector.

It shares the Endpoints controller's shape (:class:`~..endpoints.controller.ServicePodsController`:
a queue keyed by service, fed by service events and by pod events mapped to the
services selecting the pod). Slice events queue their service (by its
``kubernetes.io/service-name`` label, for slices managed by this controller) unless
they are the echo of the controller's own write; an unexpected deletion queues it too,
so a slice someone deleted comes back.

``sync`` takes one step for a service:

* gone: forget it (its slices go with it: they carry a controller ownerReference to the
  service and the garbage collector deletes them);
* ExternalName or no selector: nothing (slices of such services are someone else's);
* otherwise, unless the slice cache is older than this controller's last writes for the
  service (:class:`~.util.SliceTracker`; the sync is retried with backoff), compute the
  desired endpoints and reconcile the service's managed slices with them
  (:func:`~.util.reconcile`): creates (not while the service is being deleted), then
  updates, then deletes, each stamped with
  ``endpoints.kubernetes.io/last-change-trigger-time``.

Pods on a node the cache does not know are left out and the sync fails after writing
the rest, so it is retried with backoff until the node shows up (or the pod goes).
"""

from __future__ import annotations

import logging

from ...api import errors
from ...api.resources import NODES, must
from ...client.base import Client, Obj
from ...machinery.informer import InformerFactory, split_key
from ..endpoints.controller import CacheBehind, ServicePodsController, namespace_terminating, owned_copy
from ..endpoints.util import manages
from . import util

log = logging.getLogger("tinykube.controllers.endpointslice")

ENDPOINTSLICES = must("discovery.k8s.io", "v1", "endpointslices")
SERVICE_INDEX = "endpointslice-controller/service"


def _service_index(slice_: Obj) -> list[str]:
    key = util.managed_service_key(slice_)
    return [key] if key else []


class StaleSlices(CacheBehind):
    """The slice cache has not caught up with this controller's own writes yet."""


class NodesMissing(CacheBehind):
    """Some selected pods run on nodes the node cache does not know (yet, or any more)."""


class EndpointSliceController(ServicePodsController):
    name = "endpointslice-controller"
    workers = 4

    def __init__(self, client: Client, informers: InformerFactory,
                 max_endpoints_per_slice: int = util.MAX_ENDPOINTS_PER_SLICE) -> None:
        super().__init__(client, informers)
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.tracker = util.SliceTracker()
        self.node_informer = informers.informer(NODES)
        self.slice_informer = informers.informer(ENDPOINTSLICES)
        self.slice_informer.add_index(SERVICE_INDEX, _service_index)
        self.slice_informer.add_handlers(self._slice_added, self._slice_updated, self._slice_deleted)

    # -- slice events ----------------------------------------------------------------------------------------
    def _slice_added(self, slice_: Obj) -> None:
        key = util.managed_service_key(slice_)
        if key is not None and self.tracker.should_sync(key, slice_):
            self.queue.add(key)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        old_key, new_key = util.managed_service_key(old), util.managed_service_key(new)
        if old_key is not None and old_key != new_key:
            self.queue.add(old_key)  # relabelled away from its service (or from this controller)
        if new_key is not None and (new_key != old_key or self.tracker.should_sync(new_key, new)):
            self.queue.add(new_key)

    def _slice_deleted(self, slice_: Obj) -> None:
        key = util.managed_service_key(slice_)
        if key is not None and not self.tracker.handle_deletion(key, slice_):
            self.queue.add(key)

    # -- sync ------------------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.service_informer.get(ns, name)
        if svc is None:
            self.triggers.forget(key)
            self.tracker.forget(key)
            return
        if not manages(svc):
            return
        slices = [s for s in self.slice_informer.by_index(SERVICE_INDEX, key)
                  if not s["metadata"].get("deletionTimestamp")]
        if self.tracker.stale(key, slices):
            raise StaleSlices(f"the EndpointSlice cache is behind this controller's writes for service {key}")
        pods = self.selected_pods(svc)
        trigger = self.triggers.compute(key, svc, pods)
        desired, missing = util.desired_endpoints(svc, pods, lambda n: self.node_informer.get(None, n))
        plan = util.reconcile(svc, desired, slices, self.max_endpoints_per_slice)
        if not plan.empty:
            await self._apply(key, svc, plan, trigger)
        if missing:
            raise NodesMissing(f"pods of service {key} on unknown nodes left out: {', '.join(sorted(missing))}")

    async def _apply(self, key: str, svc: Obj, plan: util.Plan, trigger: float | None) -> None:
        ns = svc["metadata"].get("namespace")
        if not svc["metadata"].get("deletionTimestamp"):  # creating beside the garbage collector would race it
            for s in plan.create:
                try:
                    created = await self.client.create(ENDPOINTSLICES, ns, owned_copy(util.finalized(s, trigger)),
                                                       readonly=True)
                except errors.ApiError as ex:
                    if ex.code == 403 and namespace_terminating(ex):
                        return
                    raise
                self.tracker.wrote(key, created)
        for s in plan.update:
            updated = await self.client.update(ENDPOINTSLICES, ns, owned_copy(util.finalized(s, trigger)),
                                               readonly=True)
            self.tracker.wrote(key, updated)
        for s in plan.delete:
            try:
                await self.client.delete(ENDPOINTSLICES, ns, s["metadata"]["name"])
            except errors.ApiError as ex:
                if ex.code != 404:
                    raise
            self.tracker.expect_deletion(key, s)
