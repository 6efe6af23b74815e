"""Simulated nodes: fake kubelets, in the control-plane process, for clusters bigger than the machine.

:class:`SimulatedNodes` registers ``count`` Node objects (``sim-node-0`` ...)
and then acts as their kubelets, as kwok does:

* **Registration.** A node that does not exist is created with its labels,
  capacity, conditions, addresses, ``nodeInfo`` and pod CIDR; one that exists (a
  restart of the control plane) is adopted: its pod CIDR is kept and its status
  refreshed. Nodes are never deleted by the simulator (``stop`` leaves them for
  the next ``up``). A node someone deletes is given up: its pods are left alone.
* **Heartbeats.** Each node renews a Lease in ``kube-node-lease`` every 10 s and
  refreshes ``lastHeartbeatTime`` in its status every 60 s. The first renewal of
  node ``i`` of ``n`` comes ``(i+1)/n`` of a period after registration, so a
  thousand nodes spread their writes evenly instead of writing together.
* **Pods.** Pods bound to a live simulated node (the shared pods informer,
  indexed by node) go through the life :mod:`tinykube.sim.lifecycle` computes
  from their annotations: ContainerCreating, Running, Ready, or image-pull
  failures, crash loops, never-ready. A pod's status is written only when what
  the kubelet would report changed, so a pod that starts and is ready at once
  costs one write. Pod IPs come from the node's CIDR (:mod:`tinykube.sim.ipam`).
  A pod being deleted gets ``Killing`` events, stays Terminating for
  ``min(terminate-seconds, grace period)`` and is then deleted with grace period
  0, which is what removes it from the API, as the kubelet does.
* **Events.** As ``kubelet`` with the node as host: Pulling, Pulled, Created,
  Started, Failed, BackOff, Killing. ``events=False`` (or
  ``TINYKUBE_SIM_EVENTS=0``) leaves out the four routine ones (Pulling, Pulled,
  Created, Started), which at ten thousand pods are most of the writes.

All timed work (pod transitions, lease renewals, status heartbeats,
registrations) goes through one :class:`~tinykube.machinery.queue.WorkQueue`: a heap
and one timer feeding a fixed pool of workers, which bounds the writes in
flight. Nothing sleeps per pod or per node.

The node remembers, per pod, when it took the pod (the pod's ``startTime``
after a restart), the plan, its IP and how far its events have been told; the
status itself is always recomputed from the plan and the clock, so a late or
repeated look gives the same answer and writes nothing new.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..api import errors
from ..api.meta import parse_timestamp
from ..api.resources import NODES, PODS, must
from ..client.base import Client, Obj
from ..machinery.controller import stop_tasks
from ..machinery.events import EventRecorder
from ..machinery.informer import InformerFactory, key_of, newest, split_key
from ..machinery.queue import WorkQueue
from . import lifecycle
from .ipam import POD_CIDR_BASE, PodAddresses, node_ip, pod_cidr
from .lifecycle import Plan, Timing
from .objects import DEFAULT_CAPACITY, LEASE_NAMESPACE, lease_object, node_object, node_status

log = logging.getLogger("tinykube.sim")

LEASES = must("coordination.k8s.io", "v1", "leases")
ROUTINE_REASONS = frozenset({lifecycle.PULLING, lifecycle.PULLED, lifecycle.CREATED, lifecycle.STARTED})
_RETRY = 1.0


@dataclass
class _Node:
    name: str
    index: int
    ip: str
    cidr: str
    addresses: PodAddresses = field(default_factory=PodAddresses)
    uid: str = ""
    live: bool = False
    renewed: bool = False  # the lease has been renewed on its spread-out period (not only at registration)
    refreshed: bool = False  # likewise the status heartbeat
    images: set[str] = field(default_factory=set)  # images "pulled" on this node (IfNotPresent pulls them once)
    recorder: EventRecorder | None = None


@dataclass
class _Pod:
    uid: str
    node: str
    plan: Plan
    origin: float  # wall-clock time the node took the pod
    told: float  # events of times up to this (seconds since origin) have been recorded
    ip: str | None = None
    written_rv: str = ""  # resourceVersion of our last status write (its watch event needs no sync)
    last: Obj | None = None  # what our last write returned, until the informer's copy is as new
    delete_at: float | None = None
    deleted: bool = False


def _events_default() -> bool:
    return os.environ.get("TINYKUBE_SIM_EVENTS", "1").strip().lower() not in ("0", "false", "no", "off")


class SimulatedNodes:
    def __init__(self, client: Client, informers: InformerFactory, count: int, name_prefix: str = "sim-node-",
                 capacity: dict[str, str] | None = None, pod_cidr_base: str = POD_CIDR_BASE, *,
                 timing: Timing | None = None, events: bool | None = None, concurrency: int = 16,
                 lease_seconds: float = 10.0, lease_duration: int = 40, status_seconds: float = 60.0) -> None:
        if count < 0:
            raise ValueError("count must not be negative")
        self.client = client
        self.count = count
        self.prefix = name_prefix
        self.capacity = {**DEFAULT_CAPACITY, **(capacity or {})}
        self.timing = timing or Timing()
        self.events = _events_default() if events is None else events
        self.concurrency = max(1, concurrency)
        self.lease_seconds = lease_seconds
        self.lease_duration = lease_duration
        self.status_seconds = status_seconds
        self.nodes: dict[str, _Node] = {}
        for i in range(count):
            name = f"{name_prefix}{i}"
            self.nodes[name] = _Node(name, i, node_ip(i), pod_cidr(i, pod_cidr_base))
        self._pods: dict[str, _Pod] = {}
        self._sched = WorkQueue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._registered = asyncio.Event()
        self._pending_registrations = count
        if count == 0:
            self._registered.set()
        self._node_recorders: dict[str, EventRecorder] = {}
        self._pod_inf = informers.informer(PODS)
        self._node_inf = informers.informer(NODES)
        self._index = f"sim.tinykube.io/node:{name_prefix}"
        self._pod_inf.add_index(self._index, self._node_of)
        self._pod_inf.add_handlers(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self._node_inf.add_handlers(on_delete=self._on_node_delete)

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"sim-nodes-worker-{i}"))
        for name in self.nodes:
            self._sched.add("r:" + name)

    async def wait_registered(self) -> None:
        """Wait until every node has been registered (created or adopted) once."""
        await self._registered.wait()

    async def stop(self) -> None:
        """Stop all work. The Node objects stay: a later start adopts them."""
        self._stopped = True
        await self._sched.shutdown()
        await stop_tasks(self._tasks)
        for rec in [n.recorder for n in self.nodes.values() if n.recorder is not None]:
            await rec.stop()

    # -- informer handlers ---------------------------------------------------------------------------------------
    def _node_of(self, pod: Obj) -> list[str]:
        name = (pod.get("spec") or {}).get("nodeName")
        return [name] if name in self.nodes else []

    def _on_pod_add(self, pod: Obj) -> None:
        self._pod_changed(pod)

    def _on_pod_update(self, old: Obj, pod: Obj) -> None:
        if self._stopped:
            return
        tr = self._pods.get(key_of(pod))
        if tr is not None and tr.written_rv and tr.written_rv == pod["metadata"].get("resourceVersion"):
            return  # the echo of our own write
        self._pod_changed(pod)

    def _pod_changed(self, pod: Obj) -> None:
        if self._stopped:
            return
        spec = pod.get("spec") or {}
        node = self.nodes.get(spec.get("nodeName") or "")
        if node is None:
            return
        ip = (pod.get("status") or {}).get("podIP")
        if ip and not spec.get("hostNetwork"):
            node.addresses.reserve(ip)
        if node.live:
            self._sched.add("p:" + key_of(pod))

    def _on_pod_delete(self, pod: Obj) -> None:
        key = key_of(pod)
        tr = self._pods.pop(key, None)
        spec = pod.get("spec") or {}
        node = self.nodes.get(spec.get("nodeName") or "")
        if node is None or spec.get("hostNetwork"):
            return
        ip = tr.ip if tr is not None and tr.uid == pod["metadata"].get("uid") else (pod.get("status") or {}).get("podIP")
        if ip:
            node.addresses.release(ip)

    def _on_node_delete(self, obj: Obj) -> None:
        node = self.nodes.get(obj["metadata"].get("name", ""))
        if node is not None and node.live and (not node.uid or node.uid == obj["metadata"].get("uid")):
            log.info("simulated node %s was deleted: leaving it and its pods alone", node.name)
            node.live = False

    # -- workers -------------------------------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            key = await self._sched.get()
            if key is None:
                return
            try:
                kind, _, rest = key.partition(":")
                if kind == "p":
                    await self._sync_pod(rest)
                elif kind == "r":
                    await self._register(self.nodes[rest])
                elif kind == "l":
                    await self._renew_lease(self.nodes[rest])
                elif kind == "s":
                    await self._refresh_status(self.nodes[rest])
            except asyncio.CancelledError:
                raise
            except errors.ApiError as ex:
                log.info("simulated nodes: %s: %s", key, ex)
                self._sched.add_after(key, 0.05 if ex.code == 409 else _RETRY)
            except Exception:
                log.exception("simulated nodes: %s failed", key)
                self._sched.add_after(key, _RETRY)
            finally:
                self._sched.done(key)
            # In-process writes never suspend: without this, workers with a full queue would starve the rest of
            # the process (informers, controllers, the HTTP server) until the queue ran dry.
            await asyncio.sleep(0)

    # -- nodes ---------------------------------------------------------------------------------------------------
    async def _register(self, node: _Node) -> None:
        now = time.time()
        existing = self._node_inf.get(None, node.name)
        created = False
        if existing is None:
            try:
                obj = await self.client.create(NODES, None, node_object(node.name, node.ip, node.cidr, self.capacity, now))
                created = True
            except errors.ApiError as ex:
                if ex.code != 409:
                    raise
                obj = await self.client.get(NODES, None, node.name)
        else:
            obj = existing
        if not created:
            cidr = (obj.get("spec") or {}).get("podCIDR")
            if isinstance(cidr, str) and cidr:
                node.cidr = cidr
            obj = await self.client.update(NODES, None, {"metadata": {"name": node.name}, "status": node_status(
                node.name, node.ip, self.capacity, now, obj.get("status"))}, subresource="status")
        node.uid = obj["metadata"].get("uid", "")
        node.addresses.set_cidr(node.cidr)
        node.live = True
        if created and self.events:
            self._node_events(node, obj)
        self._sched.add("l:" + node.name)
        self._sched.add_after("s:" + node.name, self._spread(node, self.status_seconds))
        for pod in self._pod_inf.by_index(self._index, node.name):
            self._sched.add("p:" + key_of(pod))
        self._pending_registrations -= 1
        if self._pending_registrations <= 0:
            self._registered.set()

    def _node_events(self, node: _Node, obj: Obj) -> None:
        rec = self._recorder(node)
        rec.event(obj, lifecycle.NORMAL, "Starting", "Starting kubelet.")
        for reason in ("NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID"):
            rec.event(obj, lifecycle.NORMAL, reason, f"Node {node.name} status is now: {reason}")
        rec.event(obj, lifecycle.NORMAL, "NodeAllocatableEnforced", "Updated Node Allocatable limit across pods")
        rec.event(obj, lifecycle.NORMAL, "NodeReady", f"Node {node.name} status is now: NodeReady")

    def _spread(self, node: _Node, period: float) -> float:
        """The first period of node ``i`` of ``n``: ``(i+1)/n`` of a period, so nodes take turns."""
        return period * (node.index + 1) / max(1, self.count)

    async def _renew_lease(self, node: _Node) -> None:
        if not node.live:
            return
        await self.client.update(LEASES, LEASE_NAMESPACE, lease_object(node.name, node.uid, self.lease_duration,
                                                                       time.time()))
        delay = self.lease_seconds if node.renewed else self._spread(node, self.lease_seconds)
        node.renewed = True
        self._sched.add_after("l:" + node.name, delay)

    async def _refresh_status(self, node: _Node) -> None:
        if not node.live:
            return
        cur = self._node_inf.get(None, node.name)
        if cur is None:  # just created and not in the cache yet (a deletion would have made the node not live)
            self._sched.add_after("s:" + node.name, _RETRY)
            return
        try:
            await self.client.update(NODES, None, {"metadata": {"name": node.name}, "status": node_status(
                node.name, node.ip, self.capacity, time.time(), cur.get("status"))}, subresource="status")
        except errors.ApiError as ex:
            if ex.code != 404:
                raise
            node.live = False
            return
        self._sched.add_after("s:" + node.name, self.status_seconds)

    # -- pods ----------------------------------------------------------------------------------------------------
    def _recorder(self, node: _Node) -> EventRecorder:
        if node.recorder is None:
            node.recorder = EventRecorder(self.client, "kubelet", host=node.name)
        return node.recorder

    def _tell(self, node: _Node, pod: Obj, evs: list[lifecycle.Event]) -> None:
        if not evs:
            return
        rec = self._recorder(node)
        for e in evs:
            if not self.events and e.type == lifecycle.NORMAL and e.reason in ROUTINE_REASONS:
                continue
            rec.event(pod, e.type, e.reason, e.message)

    def _newest(self, key: str, tr: _Pod | None) -> Obj | None:
        cached = self._pod_inf.get_key(key)
        pod = newest(cached, tr.last if tr is not None else None)
        if tr is not None and pod is cached:
            tr.last = None  # the cache caught up with our write
        return pod

    def _track(self, pod: Obj, node: _Node, now: float) -> _Pod:
        md = pod["metadata"]
        status = pod.get("status") or {}
        started = parse_timestamp(status.get("startTime"))
        plan = lifecycle.make_plan(pod, self.timing, node.images)
        for c in plan.all_containers():
            if not c.missing:
                node.images.add(lifecycle.normalize_image(c.image))
        tr = _Pod(md.get("uid", ""), node.name, plan, started if started is not None else now,
                  (now - started) if started is not None else -1.0)
        if (pod.get("spec") or {}).get("hostNetwork"):
            tr.ip = node.ip
        elif status.get("podIP"):
            tr.ip = status["podIP"]
            node.addresses.reserve(tr.ip)
        return tr

    async def _sync_pod(self, key: str) -> None:
        tr = self._pods.get(key)
        pod = self._newest(key, tr)
        if pod is None:
            self._pods.pop(key, None)
            return
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node is None or not node.live:
            self._pods.pop(key, None)  # not ours (any more): left alone
            return
        now = time.time()
        md = pod["metadata"]
        if tr is None or tr.uid != md.get("uid"):
            if tr is not None and tr.ip and tr.ip != node.ip:
                node.addresses.release(tr.ip)
            tr = self._pods[key] = self._track(pod, node, now)
        if md.get("deletionTimestamp"):
            await self._terminate(key, pod, node, tr, now)
            return
        if tr.ip is None:
            tr.ip = node.addresses.allocate()
            if tr.ip is None:
                log.warning("simulated node %s: no free pod IP in %s for %s", node.name, node.cidr, key)
                self._sched.add_after("p:" + key, 5.0)
                return
        t = now - tr.origin
        snap = lifecycle.snapshot(tr.plan, t)
        self._tell(node, pod, lifecycle.events_between(tr.plan, tr.told, t))
        tr.told = max(tr.told, t)
        status = lifecycle.render_status(pod, tr.plan, snap, tr.origin, node.ip, tr.ip, now)
        if status != pod.get("status"):
            ns, name = split_key(key)
            body = {"metadata": {"name": name, "namespace": ns, "resourceVersion": md.get("resourceVersion")},
                    "status": status}
            try:
                res = await self.client.update(PODS, ns, body, subresource="status", readonly=True)
            except errors.ApiError as ex:
                if ex.code == 404:
                    self._pods.pop(key, None)
                    return
                if ex.code != 409:
                    raise
                tr.last = await self.client.get(PODS, ns, name)  # someone else wrote: look again at once
                self._sched.add("p:" + key)
                return
            tr.last = res
            tr.written_rv = res["metadata"].get("resourceVersion", "")
        if snap.next_at is not None:
            self._sched.add_after("p:" + key, tr.origin + snap.next_at - time.time())

    async def _terminate(self, key: str, pod: Obj, node: _Node, tr: _Pod, now: float) -> None:
        if tr.deleted:
            return
        if tr.delete_at is None:
            t = now - tr.origin
            snap = lifecycle.snapshot(tr.plan, t)
            self._tell(node, pod, lifecycle.killing_events(tr.plan, snap, t))
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            grace = grace if isinstance(grace, int) and grace > 0 else 0
            tr.delete_at = now + min(tr.plan.terminate, float(grace))
        if now < tr.delete_at:
            self._sched.add_after("p:" + key, tr.delete_at - now)
            return
        ns, name = split_key(key)
        try:
            # The uid precondition, as the kubelet's: never delete a newer pod that took the name meanwhile.
            await self.client.delete(PODS, ns, name, grace_period=0, preconditions={"uid": tr.uid})
        except errors.ApiError as ex:
            if ex.code not in (404, 409):
                raise
        tr.deleted = True

    # -- introspection (tests, status) ---------------------------------------------------------------------------
    def live_nodes(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.live]

    def tracked_pods(self) -> int:
        return len(self._pods)

    def __repr__(self) -> str:
        return f"SimulatedNodes(count={self.count}, prefix={self.prefix!r}, live={len(self.live_nodes())})"

    def _debug(self) -> dict[str, Any]:
        return {"pods": len(self._pods), "queued": len(self._sched)}
