"""ReplicaSet controller: keeps ``spec.replicas`` pods matching a ReplicaSet, as kube-controller-manager does.

Event handlers map pod events to the owning ReplicaSet (its controller ownerReference,
or, for an orphan, every ReplicaSet whose selector matches it, which may adopt it) and
enqueue it. ``sync`` takes one step:

* claim pods: adopt matching orphans, release owned pods whose labels no longer match;
* if expectations from an earlier step are met, create the missing pods in slow-start
  batches (1, 2, 4, ...; at most 500 per sync) or delete the surplus chosen by
  :func:`~.util.pods_to_delete`, recording new expectations first so a later sync never
  over-creates while the informer catches up;
* write ``status`` (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
  observedGeneration, a ReplicaFailure condition after failed creates) when it changed,
  and come back when a ready pod will cross ``minReadySeconds``.

Counting without walking. Every pod event enqueues the ReplicaSet, so a sync that walked
all its pods would make 10,000 pods going Ready cost quadratic time. The controller keeps
running counts per ReplicaSet (:class:`~.util.PodTally`): handlers only note which pods
changed, and a sync re-examines just those. Walks remain where the answer needs every
pod: choosing pods to delete, releasing pods whose labels stopped matching, and counting
availability under ``minReadySeconds`` (it depends on the clock). That last walk is paced:
a ReplicaSet with as many pods as it wants is synced again no sooner than ``PACE`` times
the CPU its last walk took; one that must create or delete pods is never held back.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from ...api import errors
from ...api.meta import now_rfc3339
from ...api.resources import PODS, REPLICASETS
from ...api.selectors import LabelSelector, from_label_selector_object
from ...client.base import Client
from ...machinery.controller import Controller
from ...machinery.events import EventRecorder
from ...machinery.expectations import Expectations
from ...machinery.informer import CONTROLLER_INDEX, InformerFactory, controller_ref, key_of, split_key
from . import util

log = logging.getLogger("tinykube.controllers.replicaset")
Obj = dict[str, Any]


ORPHANS_INDEX = "replicaset-controller/orphans-by-namespace"
PACE = 4.0  # a steady ReplicaSet's status walks take at most ~1/(1+PACE) of the time


def _orphan_namespace(pod: Obj) -> list[str]:
    """Pods without a controller, by namespace: the only ones a ReplicaSet may adopt (no scan of all pods)."""
    return [pod["metadata"].get("namespace") or ""] if controller_ref(pod) is None else []


def _template_labels(rs: Obj) -> dict[str, str]:
    labels: dict[str, str] = (((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return labels


def _selector(rs: Obj) -> LabelSelector:
    try:
        return from_label_selector_object((rs.get("spec") or {}).get("selector"))
    except errors.ApiError:
        return LabelSelector.nothing()


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    workers = 4

    def __init__(self, client: Client, informers: InformerFactory) -> None:
        super().__init__()
        self.client = client
        self.rs_informer = informers.informer(REPLICASETS)
        self.pod_informer = informers.informer(PODS)
        self.expectations = Expectations()
        self._paced: dict[str, float] = {}  # key -> monotonic time before which a steady sync waits
        self._tallies: dict[str, util.PodTally] = {}  # RS uid -> running counts of its pods
        self._changed: dict[str, set[str]] = {}  # RS uid (with a tally) -> keys of its pods changed since
        self.recorder = EventRecorder(client, self.name)
        self.pod_informer.add_index(ORPHANS_INDEX, _orphan_namespace)
        self.rs_informer.add_handlers(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pod_informer.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)

    async def stop(self) -> None:
        await super().stop()
        await self.recorder.stop()

    # -- event handlers --------------------------------------------------------------------------------------
    def _rs_added(self, rs: Obj) -> None:
        self.enqueue(rs)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _rs_deleted(self, rs: Obj) -> None:
        self.expectations.forget(key_of(rs))
        self._paced.pop(key_of(rs), None)
        self._tallies.pop(rs["metadata"].get("uid", ""), None)
        self._changed.pop(rs["metadata"].get("uid", ""), None)
        self.enqueue(rs)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        ns = pod["metadata"].get("namespace")
        rs = self.rs_informer.get(ns, ref.get("name", ""))
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return key_of(rs)

    def _enqueue_matching(self, pod: Obj) -> None:
        """An orphan: every ReplicaSet in its namespace whose selector matches may adopt it."""
        labels = pod["metadata"].get("labels") or {}
        if not labels:
            return
        for rs in self.rs_informer.list(pod["metadata"].get("namespace")):
            if _selector(rs).matches(labels):
                self.enqueue(rs)

    def _mark(self, pod: Obj) -> None:
        """Note a changed pod for its controller's tally (if that ReplicaSet has one)."""
        ref = controller_ref(pod)
        if ref is not None:
            changed = self._changed.get(ref.get("uid", ""))
            if changed is not None:
                changed.add(key_of(pod))

    def _pod_added(self, pod: Obj) -> None:
        self._mark(pod)
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            key = self._owner_key(pod)
            if key is not None:
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._mark(old)
        self._mark(new)
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            self._pod_deleted(new)
            return
        key = self._owner_key(new)
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            okey = self._owner_key(old)
            if okey is not None:
                self.queue.add(okey)
        if key is not None:
            self.queue.add(key)
            return
        if new_ref is None and old["metadata"].get("labels") != new["metadata"].get("labels"):
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Obj) -> None:
        self._mark(pod)
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, key_of(pod))
            self.queue.add(key)

    # -- sync ------------------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        rs = self.rs_informer.get(ns, name)
        if rs is None:
            self.expectations.forget(key)
            return
        md = rs["metadata"]
        need_sync = self.expectations.satisfied(key) and not md.get("deletionTimestamp")
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        steady = min_ready > 0 and self._steady(rs)
        if steady:
            hold = self._paced.get(key, 0.0) - time.monotonic()
            if hold > 0:
                self.queue.add_after(key, hold)
                return
        sel = _selector(rs)
        tally = self._tally(rs, sel)
        if tally.mismatched and not md.get("deletionTimestamp"):
            await self._release_mismatched(rs, sel)
        adopted = await self._adopt_orphans(rs, sel)
        counts = list(tally.counts)
        tmpl_labels = _template_labels(rs)
        for p in adopted:
            c = util.contribution(p, md["uid"], sel.matches, tmpl_labels)
            if c is not None:
                counts = [a + b for a, b in zip(counts, c, strict=True)]
        pods: list[Obj] | None = None
        t0 = time.perf_counter()
        if min_ready > 0:  # availability depends on the clock: walk the pods (paced, see the module docstring)
            pods = self._claimed(rs, sel) + adopted
        walk = time.perf_counter() - t0
        failure: str | None = None
        if need_sync:
            failure = await self._manage_replicas(key, rs, counts[0], lambda: self._claimed(rs, sel) + adopted)
        now = time.time()
        if pods is not None:
            t0 = time.perf_counter()
            computed = util.calculate_status(rs, pods, now)
            walk += time.perf_counter() - t0
        else:
            computed = {"replicas": counts[0], "fullyLabeledReplicas": counts[1], "readyReplicas": counts[2],
                        "availableReplicas": counts[2]}
        new_status = self._status(rs, computed, failure)
        if new_status is not None:
            await self._write_status(rs, new_status)
        if steady:
            self._paced[key] = time.monotonic() + PACE * walk
        else:
            self._paced.pop(key, None)
        wait = util.next_availability_check(rs, pods, now) if pods is not None else None
        if wait is not None:
            self.queue.add_after(key, wait + 0.05)

    def _tally(self, rs: Obj, sel: LabelSelector) -> util.PodTally:
        """The ReplicaSet's running counts, brought up to date with the pods that changed since its last sync."""
        uid = rs["metadata"]["uid"]
        tmpl_labels = _template_labels(rs)
        sig = orjson.dumps([(rs.get("spec") or {}).get("selector"), tmpl_labels], option=orjson.OPT_SORT_KEYS)
        tally = self._tallies.get(uid)
        changed = self._changed.get(uid)
        self._changed[uid] = set()
        if tally is None or tally.signature != sig:
            tally = self._tallies[uid] = util.PodTally(sig)
            for p in self.pod_informer.by_index(CONTROLLER_INDEX, uid):
                tally.set(key_of(p), util.contribution(p, uid, sel.matches, tmpl_labels))
        else:
            for k in changed or ():
                tally.set(k, util.contribution(self.pod_informer.get_key(k), uid, sel.matches, tmpl_labels))
        return tally

    def _claimed(self, rs: Obj, sel: LabelSelector) -> list[Obj]:
        """The active pods this ReplicaSet controls and selects (a walk of its pods)."""
        return [p for p in self.pod_informer.by_index(CONTROLLER_INDEX, rs["metadata"]["uid"])
                if util.is_active(p) and sel.matches(p["metadata"].get("labels"))]

    async def _release_mismatched(self, rs: Obj, sel: LabelSelector) -> None:
        for p in self.pod_informer.by_index(CONTROLLER_INDEX, rs["metadata"]["uid"]):
            if util.is_active(p) and not sel.matches(p["metadata"].get("labels")):
                await self._release(rs, p)

    async def _adopt_orphans(self, rs: Obj, sel: LabelSelector) -> list[Obj]:
        """Adopt the active orphans the selector matches; returns them as patched."""
        md = rs["metadata"]
        if md.get("deletionTimestamp") or sel.empty or sel.matches_nothing:
            return []
        result: list[Obj] = []
        for p in self.pod_informer.by_index(ORPHANS_INDEX, md.get("namespace") or ""):
            if not util.is_active(p) or not sel.matches(p["metadata"].get("labels")):
                continue
            adopted = await self._adopt(rs, p)
            if adopted is not None:
                result.append(adopted)
        return result

    async def _adopt(self, rs: Obj, pod: Obj) -> Obj | None:
        md = rs["metadata"]
        refs = list(pod["metadata"].get("ownerReferences") or [])
        refs.append({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": md["name"], "uid": md["uid"],
                     "controller": True, "blockOwnerDeletion": True})
        body = {"metadata": {"ownerReferences": refs, "resourceVersion": pod["metadata"]["resourceVersion"]}}
        try:
            return await self.client.patch(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], body)
        except errors.ApiError as ex:
            if ex.code in (404, 409):
                return None
            raise

    async def _release(self, rs: Obj, pod: Obj) -> None:
        uid = rs["metadata"]["uid"]
        refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        body = {"metadata": {"ownerReferences": refs or None, "resourceVersion": pod["metadata"]["resourceVersion"]}}
        try:
            await self.client.patch(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], body)
        except errors.ApiError as ex:
            if ex.code not in (404, 409):
                raise

    async def _manage_replicas(self, key: str, rs: Obj, active: int, pods: Callable[[], list[Obj]]) -> str | None:
        """Create or delete pods towards spec.replicas (``active`` pods now; ``pods()`` lists them when some must
        go); returns a failure message for the ReplicaFailure condition."""
        want = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        diff = active - want
        if diff < 0:
            n = min(-diff, util.BURST_REPLICAS)
            self.expectations.expect_creations(key, n)
            return await self._create_pods(key, rs, n)
        if diff > 0:
            n = min(diff, util.BURST_REPLICAS)
            claimed = pods()
            victims = util.pods_to_delete(claimed, claimed, n)
            self.expectations.expect_deletions(key, [key_of(p) for p in victims])
            await asyncio.gather(*(self._delete_pod(key, rs, p) for p in victims))
        return None

    async def _create_pods(self, key: str, rs: Obj, n: int) -> str | None:
        ns = rs["metadata"].get("namespace")
        template = util.pod_from_template(rs)
        done = 0
        for batch in util.slow_start_batches(n):
            results = await asyncio.gather(*(self.client.create(PODS, ns, copy.deepcopy(template), readonly=True)
                                             for _ in range(batch)), return_exceptions=True)
            failed: BaseException | None = None
            for r in results:
                if isinstance(r, BaseException):
                    failed = r
                    self.expectations.creation_failed(key)
                else:
                    self.recorder.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {r['metadata']['name']}")
            done += batch
            if failed is not None:
                # The rest of this sync's creations are skipped: lower expectations for them too.
                for _ in range(n - done):
                    self.expectations.creation_failed(key)
                msg = str(failed.message if isinstance(failed, errors.ApiError) else failed)
                self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {msg}")
                if isinstance(failed, errors.ApiError) and failed.code in (403, 422, 400, 404):
                    return msg
                raise failed
        return None

    async def _delete_pod(self, key: str, rs: Obj, pod: Obj) -> None:
        md = pod["metadata"]
        try:
            await self.client.delete(PODS, md["namespace"], md["name"])
        except errors.ApiError as ex:
            self.expectations.deletion_observed(key, key_of(pod))
            if ex.code == 404:
                return
            self.recorder.event(rs, "Warning", "FailedDelete", f"Error deleting: {ex.message}")
            raise
        self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {md['name']}")

    def _steady(self, rs: Obj) -> bool:
        """As many pods as wanted and none in flight: only the status can be behind (a cheap count)."""
        want = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        if (rs.get("status") or {}).get("observedGeneration") != rs["metadata"].get("generation", 1):
            return False
        return self.pod_informer.index_count(CONTROLLER_INDEX, rs["metadata"]["uid"]) == want

    def _status(self, rs: Obj, counts: Obj, failure: str | None) -> Obj | None:
        """The status to write from the pod counts, or None when the current one is right."""
        cur = rs.get("status") or {}
        new: Obj = dict(counts)
        new["observedGeneration"] = rs["metadata"].get("generation", 1)
        conds = [c for c in cur.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        old_failure = next((c for c in cur.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
        if failure is not None:  # as upstream: added on a failed create, removed after a sync without one
            conds.append(old_failure if old_failure is not None else
                         {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": failure,
                          "lastTransitionTime": now_rfc3339()})
        if conds:
            new["conditions"] = conds
        # Zero counts are omitted, as upstream's omitempty fields are (``replicas`` is always present).
        new = {k: v for k, v in new.items() if v or k == "replicas"}
        return None if new == cur else new

    async def _write_status(self, rs: Obj, new: Obj) -> None:
        body = copy.deepcopy(rs)
        body["status"] = new
        try:
            await self.client.update(REPLICASETS, rs["metadata"].get("namespace"), body, subresource="status")
        except errors.ApiError as ex:
            if ex.code == 404:
                return
            raise

