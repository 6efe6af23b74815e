"""tinykube's scheduler: binds pending pods to nodes, following kube-scheduler's default profile.

Flow, as upstream's ``scheduleOne``:

1. Informer handlers keep the :class:`~.cache.Cache` current (bound pods, nodes)
   and put pending pods — no ``spec.nodeName``, ``schedulerName`` empty or
   ``default-scheduler``, not terminating, no scheduling gates — in the
   :class:`~.queue.SchedulingQueue`.
2. One loop pops the highest-priority pod and picks the best feasible node from
   the pod's shared :class:`~.candidates.Candidates` heap (filters and scores are
   in :mod:`.plugins`). This part is synchronous: no await between the decision
   and recording it.
3. The pod is *assumed* on that node in the cache at once, so the next decision
   counts it, and a bind call runs in the background (at most
   ``bind_concurrency`` in flight). Success records a ``Scheduled`` event; a
   failure forgets the assumed pod and retries it after backoff.
4. A pod that fits nowhere gets the full diagnosis of every node — upstream's
   FitError with the reason histogram and the preemption message — as a
   ``FailedScheduling`` Warning event, and the ``PodScheduled=False /
   Unschedulable`` condition (written only when it changes). It waits in the
   unschedulable set until a node is added or changes, or a pod frees room
   (after its backoff), or at the latest ``flush_interval`` seconds.

Diagnoses are cached per pod signature against the cache's change counter, so a
burst of identical unschedulable pods costs one scan. Preemption is evaluated
only to word the message; no pod is evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from typing import Any

from ..api import errors
from ..api.meta import now_rfc3339
from ..api.resources import NODES, PODS
from ..client.base import Client, Obj
from ..machinery.events import EventRecorder
from ..machinery.informer import InformerFactory, key_of
from .cache import Cache
from .candidates import Candidates
from .plugins import PodInfo, diagnose, pod_info, pod_record, truncate_message
from .queue import SchedulingQueue

log = logging.getLogger("tinykube.scheduler")

SCHEDULER_NAME = "default-scheduler"
_TERMINAL = ("Succeeded", "Failed")


def _is_ours(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME


def _pending(pod: Obj) -> bool:
    """Unbound, ours, schedulable now: not terminating, not finished, no scheduling gates."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName") or spec.get("schedulingGates") or not _is_ours(pod):
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in _TERMINAL


def _priority(pod: Obj) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


def _scheduled_condition(pod: Obj) -> dict[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled":
            c: dict[str, Any] = cond
            return c
    return None


class Scheduler:
    """The default scheduler over the shared ``PODS`` and ``NODES`` informers.

    ``bind_concurrency`` bounds the bind calls in flight; ``initial_backoff`` and
    ``max_backoff`` (seconds) are the per-pod retry backoff after failed attempts;
    ``flush_interval`` is how long an unschedulable pod waits for a helpful cluster
    event before it is retried anyway; ``seed`` makes tie-breaking reproducible.
    """

    MAX_HEAPS = 256
    BATCH = 64  # decisions between yields to the event loop

    def __init__(self, client: Client, informers: InformerFactory, bind_concurrency: int = 64,
                 initial_backoff: float = 1.0, max_backoff: float = 10.0, flush_interval: float = 10.0,
                 seed: int | None = None) -> None:
        self.client = client
        self.pods = informers.informer(PODS)
        self.nodes = informers.informer(NODES)
        self.cache = Cache()
        self.queue = SchedulingQueue(initial_backoff, max_backoff, flush_interval)
        self.recorder = EventRecorder(client, SCHEDULER_NAME)
        self.bind_concurrency = bind_concurrency
        self.rng = random.Random(seed)
        self._infos: dict[str, PodInfo] = {}
        self._heaps: OrderedDict[bytes, Candidates] = OrderedDict()
        self._diagnoses: dict[bytes, tuple[int, int, str]] = {}  # signature -> (cache seq, node count, message)
        self._last_failure: dict[str, tuple[int, str]] = {}  # pod key -> (cache seq, message)
        self._in_flight: set[str] = set()
        self._slot_free = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._move_scheduled = False
        self.scheduled = 0
        self.nodes.add_handlers(self._on_node_add, self._on_node_update, self._on_node_delete)
        self.pods.add_handlers(self._on_pod_add, self._on_pod_update, self._on_pod_delete)

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        self.queue.close()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(BaseException):
                await self._loop_task
            self._loop_task = None
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.recorder.flush(), 2)
        await self.recorder.stop()

    # -- informer handlers -----------------------------------------------------------------------------------
    def _on_node_add(self, node: Obj) -> None:
        if self.cache.upsert_node(node):
            self._cluster_changed()

    def _on_node_update(self, old: Obj, node: Obj) -> None:
        self._on_node_add(node)

    def _on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node(node["metadata"]["name"])

    def _on_pod_add(self, pod: Obj) -> None:
        key = key_of(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._observe_bound(key, pod, node)
        elif _pending(pod) and key not in self._in_flight:
            self.queue.add(key, _priority(pod))

    def _on_pod_update(self, old: Obj, pod: Obj) -> None:
        key = key_of(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._forget_pending(key)
            self._observe_bound(key, pod, node)
            return
        if not _pending(pod):
            self._forget_pending(key)
            return
        if key in self._in_flight:
            return
        changed = old.get("spec") != pod.get("spec") or \
            (old.get("metadata") or {}).get("labels") != (pod.get("metadata") or {}).get("labels")
        if changed:
            self._infos.pop(key, None)
            self.queue.add(key, _priority(pod))
        elif not self.queue.is_unschedulable(key) and self.queue.attempts(key) == 0:
            self.queue.add(key, _priority(pod))

    def _on_pod_delete(self, pod: Obj) -> None:
        key = key_of(pod)
        self._forget_pending(key)
        self._last_failure.pop(key, None)
        if self.cache.remove_pod(key) is not None:
            self._cluster_changed()

    def _forget_pending(self, key: str) -> None:
        self.queue.remove(key)
        self._infos.pop(key, None)

    def _observe_bound(self, key: str, pod: Obj, node: str) -> None:
        """A bound pod from the informer: count it, confirm our assumption, or drop it once it finished."""
        self._last_failure.pop(key, None)
        rec = self.cache.pods.get(key)
        if (pod.get("status") or {}).get("phase") in _TERMINAL:
            if rec is not None:
                self.cache.remove_pod(key)
                self._cluster_changed()
            return
        if rec is None or rec.node != node:
            moved = rec is not None
            self.cache.add_pod(pod_record(pod, node, key))
            if moved:
                self._cluster_changed()
            return
        rec.assumed = False
        if (pod.get("metadata") or {}).get("deletionTimestamp") and rec.owner is not None:
            self.cache.pod_terminating(key)

    def _cluster_changed(self) -> None:
        """Something that may let unschedulable pods fit: move them, once per loop iteration."""
        if self._move_scheduled or not self.queue.has_unschedulable:
            return
        self._move_scheduled = True

        def move() -> None:
            self._move_scheduled = False
            self.queue.move_all()

        asyncio.get_running_loop().call_soon(move)

    # -- the scheduling loop ---------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self.queue.wait()
            if self.queue.closed:
                return
            n = 0
            while n < self.BATCH and len(self._in_flight) < self.bind_concurrency:
                key = self.queue.pop()
                if key is None:
                    break
                try:
                    self._schedule(key)
                except Exception:
                    log.exception("scheduling %s failed", key)
                    self.queue.retry_after_backoff(key)
                n += 1
            while len(self._in_flight) >= self.bind_concurrency:
                self._slot_free.clear()
                await self._slot_free.wait()
            await asyncio.sleep(0)

    def _info(self, key: str, pod: Obj) -> PodInfo:
        info = self._infos.get(key)
        if info is None:
            info = self._infos[key] = pod_info(pod, key)
        return info

    def _heap_for(self, info: PodInfo) -> Candidates:
        heaps = self._heaps
        cand = heaps.get(info.signature)
        if cand is None:
            cand = heaps[info.signature] = Candidates(info, self.rng)
            if len(heaps) > self.MAX_HEAPS:
                heaps.popitem(last=False)
        else:
            heaps.move_to_end(info.signature)
        return cand

    def _schedule(self, key: str) -> None:
        pod = self.pods.get_key(key)
        if pod is None or not _pending(pod) or key in self._in_flight or key in self.cache.pods:
            return
        info = self._info(key, pod)
        ni = self._heap_for(info).best(self.cache)
        if ni is not None:
            self._assume(key, pod, info, ni.name)
            return
        msg, feasible = self._diagnose(info)
        if feasible:
            self._assume(key, pod, info, self.rng.choice(feasible))
        else:
            self._fail(key, pod, msg)

    def _assume(self, key: str, pod: Obj, info: PodInfo, node: str) -> None:
        self.cache.add_pod(pod_record(pod, node, key, info))
        self.cache.pods[key].assumed = True
        self._infos.pop(key, None)
        self._in_flight.add(key)
        t = asyncio.get_running_loop().create_task(self._bind(key, pod, node))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _bind(self, key: str, pod: Obj, node: str) -> None:
        md = pod["metadata"]
        ns, name = md.get("namespace") or "default", md["name"]
        try:
            await self.client.bind(ns, name, node)
        except Exception as ex:
            self._bind_failed(key, pod, node, ex)
        else:
            self.scheduled += 1
            self.queue.done(key)
            self.recorder.event(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")
        finally:
            self._in_flight.discard(key)
            self._slot_free.set()

    def _bind_failed(self, key: str, pod: Obj, node: str, ex: Exception) -> None:
        rec = self.cache.pods.get(key)
        if rec is not None and rec.assumed and rec.node == node:
            self.cache.remove_pod(key)
            self._cluster_changed()
        if isinstance(ex, errors.ApiError) and ex.code == 404:
            return  # the pod is gone
        log.info("binding %s to %s failed: %s", key, node, ex)
        self.recorder.event(pod, "Warning", "FailedScheduling", truncate_message(f"Binding rejected: {ex}"))
        current = self.pods.get_key(key)
        if current is not None and _pending(current):
            self.queue.retry_after_backoff(key)

    # -- failures --------------------------------------------------------------------------------------------
    def _diagnose(self, info: PodInfo) -> tuple[str, list[str]]:
        """Upstream's FitError message for a pod that fits no node (cached until the cache changes)."""
        cache = self.cache
        cached = self._diagnoses.get(info.signature)
        if cached is not None and cached[0] == cache.seq and cached[1] == cache.real_nodes:
            return cached[2], []
        msg, feasible = diagnose(info, cache.node_infos())
        if feasible:  # cannot happen while the heaps are right: say so, rebuild this one, and use the scan
            log.warning("scheduler: %s fits %s but no candidate was found", info.key, ", ".join(feasible[:5]))
            self._heaps.pop(info.signature, None)
        else:
            self._remember_diagnosis(info, msg)
        return msg, feasible

    def _remember_diagnosis(self, info: PodInfo, msg: str) -> None:
        if len(self._diagnoses) > 1024:
            self._diagnoses.clear()
        self._diagnoses[info.signature] = (self.cache.seq, self.cache.real_nodes, msg)

    def _fail(self, key: str, pod: Obj, msg: str) -> None:
        self.queue.failed(key)
        seq = self.cache.seq
        last = self._last_failure.get(key)
        # A periodic retry that found the cluster unchanged is not news: upstream would not have retried at all.
        if last is None or last != (seq, msg):
            self.recorder.event(pod, "Warning", "FailedScheduling", truncate_message(msg))
        self._last_failure[key] = (seq, msg)
        cond = _scheduled_condition(pod)
        if cond is not None and cond.get("status") == "False" and cond.get("reason") == "Unschedulable" \
                and cond.get("message") == msg:
            return
        new: dict[str, Any] = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                               "reason": "Unschedulable", "message": msg}
        if cond is None or cond.get("status") != "False":
            new["lastTransitionTime"] = now_rfc3339()
        t = asyncio.get_running_loop().create_task(self._set_condition(pod, new))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _set_condition(self, pod: Obj, cond: dict[str, Any]) -> None:
        md = pod["metadata"]
        try:
            await self.client.patch(PODS, md.get("namespace") or "default", md["name"],
                                    {"status": {"conditions": [cond]}}, "strategic", "status")
        except errors.ApiError as ex:
            if ex.code != 404:
                log.info("updating PodScheduled of %s/%s: %s", md.get("namespace"), md["name"], ex)
        except Exception as ex:
            log.info("updating PodScheduled of %s/%s: %s", md.get("namespace"), md["name"], ex)
