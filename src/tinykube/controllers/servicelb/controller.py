"""ServiceLB controller: Services of type LoadBalancer get an external IP from a local pool.

It plays the part a cloud provider's service controller (or k3s' ServiceLB) plays in
a real cluster, for the one thing tinykube can do locally: hand out an address. The
address is published in ``status.loadBalancer.ingress`` as ``[{"ip": ..., "ipMode":
"VIP"}]``; making it reachable is the service proxy's business.

The work queue is keyed by service (``namespace/name``); every add, update and delete
of a service queues it. ``sync`` reads the informer cache, asks :func:`.util.decide`
what the service should show, and writes ``status.loadBalancer`` through the status
subresource when that differs from what is stored (a write conflict is retried by the
base controller). :mod:`.util` holds the rules (which services are handled, keeping an
address, ``spec.loadBalancerIP``, releasing).

No allocation state is kept anywhere but in the services: an address is in use while a
service shows it in its status. What a sync sees of other services may lag behind the
writes this controller just made (the watch event of a write comes a moment later),
so each status write's result is remembered per key and used instead of the cached
service until the cache holds that version or a newer one
(:func:`~tinykube.machinery.informer.newest`): an address just given to one service
is never given to another created right after it, and one just released can be
reused at once. One worker only: a sync's read of who holds what and its write must
not interleave with another sync's.

Events, as upstream's service controller records them: ``EnsuringLoadBalancer`` and
``EnsuredLoadBalancer`` (Normal) around a write that gives a service its address,
``DeletingLoadBalancer``/``DeletedLoadBalancer`` around removing an address from a
service no longer handled, ``SyncLoadBalancerFailed`` (Warning) when a handled service
gets no address. When that may change by itself (the pool is exhausted, the requested
``loadBalancerIP`` is held by another service) the key is retried with per-key
exponential backoff, never dropped, and services waiting so are also queued at once
whenever some service lets go of a pool address. Other failures (a requested address
outside the pool or not an address, no IPv4 family) wait for the service to change.
"""

from __future__ import annotations

import copy
import logging

from ...api import errors
from ...api.resources import must
from ...client.base import Client, Obj
from ...machinery.controller import Controller
from ...machinery.events import EventRecorder
from ...machinery.informer import InformerFactory, key_of, newest, resource_version, split_key
from . import util

log = logging.getLogger("tinykube.controllers.servicelb")

SERVICES = must("", "v1", "services")

EVENT_ENSURING = "EnsuringLoadBalancer"
EVENT_ENSURED = "EnsuredLoadBalancer"
EVENT_DELETING = "DeletingLoadBalancer"
EVENT_DELETED = "DeletedLoadBalancer"
EVENT_FAILED = "SyncLoadBalancerFailed"


class NoAddress(Exception):
    """A handled service got no address for now (pool exhausted, requested address in use): retry later."""


class ServiceLBController(Controller):
    name = "service-lb-controller"
    workers = 1  # see the module docstring

    def __init__(self, client: Client, informers: InformerFactory, pool: str) -> None:
        super().__init__()
        self.client = client
        self.pool = util.Pool.parse(pool)
        self.service_informer = informers.informer(SERVICES)
        self.service_informer.add_handlers(self.enqueue, self._service_updated, self._service_deleted)
        self.recorder = EventRecorder(client, self.name)
        # key -> the object our last status write of it returned, until the cache holds that version.
        self._written: dict[str, Obj] = {}
        # Keys of handled services without an address that an address freed elsewhere may help.
        self._waiting: set[str] = set()

    async def stop(self) -> None:
        await super().stop()
        await self.recorder.stop()

    # -- handlers -----------------------------------------------------------------------------------------------
    def _service_updated(self, old: Obj, new: Obj) -> None:
        key = key_of(new)
        mine = self._written.get(key)
        if mine is not None and resource_version(new) >= resource_version(mine):
            del self._written[key]
        if set(util.pool_ips(old, self.pool)) - set(util.pool_ips(new, self.pool)):
            self._wake_waiting()
        self.enqueue(new)

    def _service_deleted(self, svc: Obj) -> None:
        key = key_of(svc)
        self._written.pop(key, None)
        self._waiting.discard(key)
        if util.pool_ips(svc, self.pool):
            self._wake_waiting()
        self.enqueue(svc)

    def _wake_waiting(self) -> None:
        for key in self._waiting:
            self.queue.add(key)

    def _handle_error(self, key: str, ex: Exception) -> None:
        if isinstance(ex, NoAddress):
            log.debug("%s: %s: %s", self.name, key, ex)  # the Warning event says it; keep trying, backing off
            self.queue.add_rate_limited(key)
            return
        super()._handle_error(key, ex)

    # -- sync ---------------------------------------------------------------------------------------------------
    def _current(self, svc: Obj) -> Obj:
        """The service as we best know it: the cached copy, or our own newer write of it."""
        return newest(svc, self._written.get(key_of(svc))) or svc

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.service_informer.get(ns, name)
        if cached is None:
            self._written.pop(key, None)
            self._waiting.discard(key)
            return
        svc = self._current(cached)
        if svc is cached:
            self._written.pop(key, None)
        held = util.holders((self._current(s) for s in self.service_informer.list()), self.pool)
        decision = util.decide(svc, self.pool, held)
        failure = decision.failure
        if failure is not None and failure.retry:
            self._waiting.add(key)
        else:
            self._waiting.discard(key)
        if decision.load_balancer is not None:
            if decision.assigns:
                self.recorder.event(svc, "Normal", EVENT_ENSURING, "Ensuring load balancer")
            elif failure is None:
                self.recorder.event(svc, "Normal", EVENT_DELETING, "Deleting load balancer")
            if not await self._write_status(key, svc, decision.load_balancer):
                return
            if decision.assigns:
                log.info("%s: %s gets load balancer IP %s", self.name, key, decision.ip)
                self.recorder.event(svc, "Normal", EVENT_ENSURED, "Ensured load balancer")
            elif failure is None:
                self.recorder.event(svc, "Normal", EVENT_DELETED, "Deleted load balancer")
        if failure is not None:
            self.recorder.event(svc, "Warning", EVENT_FAILED,
                                f"Error syncing load balancer: failed to ensure load balancer: {failure.message}")
            if failure.retry:
                raise NoAddress(failure.message)

    async def _write_status(self, key: str, svc: Obj, load_balancer: Obj) -> bool:
        """Write ``status.loadBalancer``; False when the service is gone. Conflicts raise (and are retried)."""
        body = copy.deepcopy(svc)  # the cached object is shared: never change it
        status = body.get("status")
        if not isinstance(status, dict):
            status = body["status"] = {}
        status["loadBalancer"] = copy.deepcopy(load_balancer)
        ns = svc["metadata"].get("namespace")
        try:
            written = await self.client.update(SERVICES, ns, body, subresource="status", readonly=True)
        except errors.ApiError as ex:
            if ex.code == 404:
                self._written.pop(key, None)
                return False
            raise
        self._written[key] = written
        return True
