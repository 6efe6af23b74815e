"""Endpoints controller: one ``Endpoints`` object per service with a selector, listing the pods it selects.

The work queue is keyed by service (``namespace/name``, which is also the Endpoints'
key). Service events queue their service; pod events queue the services whose
selectors match the pod, before and after the change when its labels changed
(:func:`~.util.pod_change`, :func:`~.util.services_to_sync`), and only when something
an endpoint shows can have changed. Deleting an Endpoints object queues its service,
so one still wanted is written again.

At start, Endpoints objects without a service are queued once (their service went away
while no controller ran), but only those this controller manager has written (its field
manager appears in their ``managedFields``): upstream sweeps every service-less
Endpoints object, which would delete ones users made by hand across a restart.

``sync`` reads the informer caches and takes one step:

* service gone: delete the Endpoints of that name;
* ExternalName or no selector: nothing (those Endpoints belong to whoever wrote them,
  and a service that loses its selector keeps what it had);
* the cached Endpoints is the very version the last update of this key replaced: the
  cache is behind, retry later (acting on it could skip a needed write for good);
* otherwise compute the subsets (:mod:`.util`), and create or update the Endpoints only
  when subsets, labels or the over-capacity mark differ from what is stored, stamping
  ``endpoints.kubernetes.io/last-change-trigger-time``.

Failures are requeued with per-key backoff by the base controller; a failed write also
records a ``FailedToCreateEndpoint``/``FailedToUpdateEndpoint`` warning on the service
(not for write conflicts, which the retry resolves), and creates refused because the
namespace is terminating are dropped.

:class:`ServicePodsController` (services and pods feeding a service-keyed queue) is
shared with the EndpointSlice controller.
"""

from __future__ import annotations

import logging

import orjson

from ...api import errors
from ...api.resources import PODS, must
from ...client.base import Client, Obj
from ...machinery.controller import Controller
from ...machinery.events import EventRecorder
from ...machinery.informer import InformerFactory, key_of, split_key
from . import util

log = logging.getLogger("tinykube.controllers.endpoints")

SERVICES = must("", "v1", "services")
ENDPOINTS = must("", "v1", "endpoints")


def owned_copy(obj: Obj) -> Obj:
    """A private deep copy of an object about to be written (the registry keeps and changes what it is given,
    and desired objects share parts with informer objects)."""
    copied: Obj = orjson.loads(orjson.dumps(obj))
    return copied


class CacheBehind(Exception):
    """An informer cache has not caught up with this controller's own writes yet: retry later."""


def namespace_terminating(ex: errors.ApiError) -> bool:
    causes = (ex.details or {}).get("causes") or []
    return any(c.get("reason") == "NamespaceTerminating" for c in causes if isinstance(c, dict))


class ServicePodsController(Controller):
    """Services and pods feeding a queue keyed by service (upstream's pod-to-services mapping)."""

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        super().__init__()
        self.client = client
        self.service_informer = informers.informer(SERVICES)
        self.pod_informer = informers.informer(PODS)
        self.triggers = util.TriggerTimeTracker()
        self.service_informer.add_handlers(self.enqueue, self._service_updated, self.enqueue)
        self.pod_informer.add_handlers(self._pod_added, self._pod_updated, self._pod_added)

    def _service_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _handle_error(self, key: str, ex: Exception) -> None:
        if isinstance(ex, CacheBehind) and self.queue.retries(key) < self.max_retries:
            log.debug("%s: %s: %s", self.name, key, ex)  # routine: the watch is a moment behind
            self.queue.add_rate_limited(key)
            return
        super()._handle_error(key, ex)

    def services_of(self, pod: Obj) -> set[str]:
        """Keys of the services in the pod's namespace whose selectors match it."""
        labels = pod["metadata"].get("labels")
        if not labels:
            return set()
        out: set[str] = set()
        for svc in self.service_informer.list(pod["metadata"].get("namespace") or ""):
            sel = util.selector_of(svc)
            if sel is not None and util.selects(sel, labels):
                out.add(key_of(svc))
        return out

    def _pod_added(self, pod: Obj) -> None:  # also deletions: the pod's services lose it
        for key in self.services_of(pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        endpoint_changed, membership_changed = util.pod_change(old, new)
        if not endpoint_changed and not membership_changed:
            return
        old_keys = self.services_of(old) if membership_changed else set()
        for key in util.services_to_sync(old_keys, self.services_of(new), endpoint_changed, membership_changed):
            self.queue.add(key)

    def selected_pods(self, svc: Obj) -> list[Obj]:
        sel = util.selector_of(svc)
        if sel is None:
            return []
        return [p for p in self.pod_informer.list(svc["metadata"].get("namespace") or "")
                if util.selects(sel, p["metadata"].get("labels"))]


class EndpointsController(ServicePodsController):
    name = "endpoint-controller"
    workers = 4

    def __init__(self, client: Client, informers: InformerFactory, field_manager: str | None = None) -> None:
        super().__init__(client, informers)
        # The name this controller's writes are recorded under in managedFields (the in-process client's).
        self.field_manager = field_manager if field_manager is not None else str(getattr(client, "manager", ""))
        self.endpoints_informer = informers.informer(ENDPOINTS)
        self.endpoints_informer.add_handlers(on_delete=self._endpoints_deleted)
        self.recorder = EventRecorder(client, self.name)
        self._replaced: dict[str, str] = {}  # key -> resourceVersion of the cached object the last update replaced

    def start(self) -> None:
        # Endpoints this controller wrote whose service went away while no controller ran (see the docstring).
        for ep in self.endpoints_informer.list():
            md = ep["metadata"]
            if self.service_informer.get(md.get("namespace"), md["name"]) is None \
                    and util.LEADER_ANNOTATION not in (md.get("annotations") or {}) \
                    and any(m.get("manager") == self.field_manager for m in md.get("managedFields") or []):
                self.enqueue(ep)
        super().start()

    def _endpoints_deleted(self, ep: Obj) -> None:
        self._replaced.pop(key_of(ep), None)
        self.enqueue(ep)

    async def stop(self) -> None:
        await super().stop()
        await self.recorder.stop()

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.service_informer.get(ns, name)
        if svc is None:
            # Unconditional (not only when the cache holds one): an Endpoints object just created may not be
            # in the cache yet.
            self.triggers.forget(key)
            self._replaced.pop(key, None)
            try:
                await self.client.delete(ENDPOINTS, ns, name)
            except errors.ApiError as ex:
                if ex.code != 404:
                    raise
            return
        if not util.manages(svc):
            return
        current = self.endpoints_informer.get(ns, name)
        base = current["metadata"].get("resourceVersion") if current is not None else None
        if base is not None and self._replaced.get(key) == base:
            raise CacheBehind(f"the Endpoints cache still holds version {base} of {key}, which was replaced")
        pods = self.selected_pods(svc)
        trigger = self.triggers.compute(key, svc, pods)
        desired = util.desired_endpoints(svc, current, util.endpoint_subsets(svc, pods), trigger)
        if desired is None:
            return
        written = await self._write(svc, current is None, owned_copy(desired))
        if base is not None and written is not None and written["metadata"].get("resourceVersion") != base:
            self._replaced[key] = base  # (an update the server found to change nothing keeps the version)

    async def _write(self, svc: Obj, create: bool, body: Obj) -> Obj | None:
        ns = svc["metadata"].get("namespace")
        try:
            if create:
                return await self.client.create(ENDPOINTS, ns, body, readonly=True)
            return await self.client.update(ENDPOINTS, ns, body, readonly=True)
        except errors.ApiError as ex:
            if create and ex.code == 403 and namespace_terminating(ex):
                return None  # creates keep failing until the namespace is gone: drop the key
            if ex.code != 409:
                verb, reason = ("create", "FailedToCreateEndpoint") if create else ("update", "FailedToUpdateEndpoint")
                self.recorder.event(svc, "Warning", reason,
                                    f"Failed to {verb} endpoint for service {ns}/{svc['metadata']['name']}: {ex}")
            raise
