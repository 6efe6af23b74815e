"""The Deployment controller: informer handlers, ReplicaSet ownership, and the per-Deployment sync.

Upstream's ``deployment_controller.go``. Deployment events enqueue the Deployment;
ReplicaSet events enqueue the Deployment owning the ReplicaSet (by controller
reference) or, for an orphan, every Deployment whose selector matches its labels;
a pod deletion enqueues a Recreate Deployment once its last pod is gone.

A sync (one at a time per Deployment, ``workers`` in parallel) then:

1. claims ReplicaSets: owned ones that no longer match the selector are released,
   matching orphans adopted (never while the Deployment is being deleted, and only
   after an uncached read confirms it is not);
2. a Deployment being deleted only gets its status refreshed (the garbage
   collector removes its ReplicaSets);
3. records Paused/Resumed on the Progressing condition;
4. paused or scaled Deployments are resized proportionally (``sync.py``),
   the deprecated rollback annotation is handled (``rollback.py``), anything else
   takes one rollout step of its strategy (``rolling.py``, ``recreate.py``).

Finding a Deployment's ReplicaSets costs two index lookups, not a scan: owned ones
through the informer's controller-uid index, orphans through an index of
ReplicaSets without a controller by namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ...api import errors
from ...api.resources import DEPLOYMENTS, PODS, REPLICASETS
from ...api.selectors import LabelSelector
from ...client.base import Client, Obj
from ...machinery.controller import Controller
from ...machinery.events import EventRecorder
from ...machinery.informer import CONTROLLER_INDEX, InformerFactory, controller_ref, split_key
from . import util
from .recreate import RecreateMixin
from .rollback import RollbackMixin
from .rolling import RollingMixin
from .sync import controller_ref_to

log = logging.getLogger("tinykube.controllers.deployment")

COMPONENT = "deployment-controller"
ORPHAN_INDEX = "deployment-controller/orphans-by-namespace"


def _orphans_by_namespace(obj: Obj) -> Iterable[str]:
    if controller_ref(obj) is not None:
        return []
    ns = util.meta(obj).get("namespace")
    return [ns] if ns else []


class DeploymentController(Controller, RollingMixin, RecreateMixin, RollbackMixin):
    name = "deployment"
    workers = 4

    def __init__(self, client: Client, informers: InformerFactory, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.client = client
        self.clock = clock
        self.recorder = EventRecorder(client, COMPONENT)
        self.d_informer = informers.informer(DEPLOYMENTS)
        self.rs_informer = informers.informer(REPLICASETS)
        self.pod_informer = informers.informer(PODS)
        self.rs_informer.add_index(ORPHAN_INDEX, _orphans_by_namespace)
        self._selectors: dict[bytes, LabelSelector] = {}
        self.d_informer.add_handlers(self.enqueue, lambda _old, new: self.enqueue(new), self.enqueue)
        self.rs_informer.add_handlers(self._on_rs_add, self._on_rs_update, self._on_rs_delete)
        self.pod_informer.add_handlers(on_delete=self._on_pod_delete)

    def now(self) -> float:
        return self.clock()

    async def stop(self) -> None:
        await super().stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.recorder.flush(), 2.0)
        await self.recorder.stop()

    # -- lookups -------------------------------------------------------------------------------------------------------
    def selector(self, d: Obj) -> LabelSelector:
        raw = util.spec(d).get("selector")
        k = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        sel = self._selectors.get(k)
        if sel is None:
            if len(self._selectors) > 4096:
                self._selectors.clear()
            sel = self._selectors[k] = util.selector_of(d)
        return sel

    def resolve_controller_ref(self, ns: str | None, ref: dict[str, Any]) -> Obj | None:
        if ref.get("kind") != "Deployment":
            return None
        d = self.d_informer.get(ns, str(ref.get("name", "")))
        if d is None or util.uid_of(d) != ref.get("uid"):
            return None
        return d

    def deployments_for_replica_set(self, rs: Obj) -> list[Obj]:
        """Deployments whose (non-empty) selector matches an orphan RS's labels."""
        labels = util.meta(rs).get("labels")
        if not labels:
            return []
        out = []
        for d in self.d_informer.list(util.meta(rs).get("namespace")):
            try:
                sel = self.selector(d)
            except errors.ApiError:
                continue
            if sel.empty or not sel.matches(labels):
                continue  # an empty selector matches nothing here, not everything
            out.append(d)
        return out

    # -- handlers ------------------------------------------------------------------------------------------------------
    def _on_rs_add(self, rs: Obj) -> None:
        if util.meta(rs).get("deletionTimestamp"):
            self._on_rs_delete(rs)  # seen for the first time while already being deleted
            return
        ref = controller_ref(rs)
        if ref is not None:
            d = self.resolve_controller_ref(util.meta(rs).get("namespace"), ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self.deployments_for_replica_set(rs):
            self.enqueue(d)  # an orphan: whoever matches may adopt it

    def _on_rs_update(self, old: Obj, cur: Obj) -> None:
        if util.meta(old).get("resourceVersion") == util.meta(cur).get("resourceVersion"):
            return
        ns = util.meta(cur).get("namespace")
        cur_ref, old_ref = controller_ref(cur), controller_ref(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            d = self.resolve_controller_ref(ns, old_ref)
            if d is not None:
                self.enqueue(d)  # the previous owner lost it
        if cur_ref is not None:
            d = self.resolve_controller_ref(ns, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if ref_changed or util.meta(cur).get("labels") != util.meta(old).get("labels"):
            for d in self.deployments_for_replica_set(cur):
                self.enqueue(d)

    def _on_rs_delete(self, rs: Obj) -> None:
        ref = controller_ref(rs)
        if ref is None:
            return  # nobody cares about an orphan going away
        d = self.resolve_controller_ref(util.meta(rs).get("namespace"), ref)
        if d is not None:
            self.enqueue(d)

    def _on_pod_delete(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        ns = util.meta(pod).get("namespace")
        rs = self.rs_informer.get(ns, str(ref.get("name", "")))
        if rs is None or util.uid_of(rs) != ref.get("uid"):
            return
        rs_ref = controller_ref(rs)
        if rs_ref is None:
            return
        d = self.resolve_controller_ref(ns, rs_ref)
        if d is None or util.strategy_type(d) != util.RECREATE:
            return
        # A Recreate rollout waits for the last old pod: sync once there are none.
        owned = self.rs_informer.by_index(CONTROLLER_INDEX, util.uid_of(d))
        try:
            pod_map = self.pod_map(d, owned)
        except errors.ApiError:
            return
        if not any(pod_map.values()):
            self.enqueue(d)

    # -- ownership ------------------------------------------------------------------------------------------------------
    async def get_replica_sets_for_deployment(self, d: Obj) -> list[Obj]:
        """The RSs this Deployment manages, after releasing non-matching ones and adopting matching orphans."""
        md = util.meta(d)
        ns = md.get("namespace")
        uid = util.uid_of(d)
        sel = self.selector(d)
        deleting = bool(md.get("deletionTimestamp"))
        claimed: list[Obj] = []
        errs: list[Exception] = []
        for rs in self.rs_informer.by_index(CONTROLLER_INDEX, uid):
            if util.meta(rs).get("namespace") != ns:
                continue
            if sel.matches(util.meta(rs).get("labels")):
                claimed.append(rs)
                continue
            if deleting:
                continue  # releasing is an action; a Deployment being deleted takes none
            try:
                await self._release(d, rs)
            except errors.ApiError as ex:
                if ex.code not in (404, 422):
                    errs.append(ex)
        adoption_checked = False
        for rs in self.rs_informer.by_index(ORPHAN_INDEX, ns) if ns else []:
            if deleting or not sel.matches(util.meta(rs).get("labels")) or util.meta(rs).get("deletionTimestamp"):
                continue
            try:
                if not adoption_checked:
                    await self._recheck_can_adopt(d)
                    adoption_checked = True
                adopted = await self._adopt(d, rs)
            except errors.ApiError as ex:
                if ex.code != 404:
                    errs.append(ex)
                continue
            except RuntimeError as ex:
                errs.append(ex)
                continue
            claimed.append(adopted)  # the patched copy: later writes then carry its current version
        if errs:
            raise errs[0]
        return claimed

    async def _recheck_can_adopt(self, d: Obj) -> None:
        """An uncached read: never adopt for a Deployment that is gone or being deleted."""
        md = util.meta(d)
        fresh = await self.client.get(DEPLOYMENTS, md.get("namespace"), md["name"])
        if util.uid_of(fresh) != util.uid_of(d):
            raise RuntimeError(f"original Deployment {md.get('namespace')}/{md['name']} is gone: "
                               f"got uid {util.uid_of(fresh)}, wanted {util.uid_of(d)}")
        if util.meta(fresh).get("deletionTimestamp"):
            raise RuntimeError(f"{md.get('namespace')}/{md['name']} has just been deleted at "
                               f"{util.meta(fresh)['deletionTimestamp']}")

    async def _adopt(self, d: Obj, rs: Obj) -> Obj:
        body = {"metadata": {"ownerReferences": [controller_ref_to(d)], "uid": util.uid_of(rs)}}
        return await self.client.patch(REPLICASETS, util.meta(rs).get("namespace"), util.name_of(rs), body, "strategic")

    async def _release(self, d: Obj, rs: Obj) -> None:
        body = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": util.uid_of(d)}],
                             "uid": util.uid_of(rs)}}
        await self.client.patch(REPLICASETS, util.meta(rs).get("namespace"), util.name_of(rs), body, "strategic")

    def pod_map(self, d: Obj, rs_list: Iterable[Obj]) -> dict[str, list[Obj]]:
        """Pods of the Deployment by the uid of the RS controlling them (inactive pods included)."""
        sel = self.selector(d)
        ns = util.meta(d).get("namespace")
        out: dict[str, list[Obj]] = {}
        for rs in rs_list:
            uid = util.uid_of(rs)
            out[uid] = [p for p in self.pod_informer.by_index(CONTROLLER_INDEX, uid)
                        if util.meta(p).get("namespace") == ns and sel.matches(util.meta(p).get("labels"))]
        return out

    # -- the sync ---------------------------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.d_informer.get_key(key)
        if cached is None:
            return  # deleted: the garbage collector takes care of its ReplicaSets
        d = util.working_copy(cached)  # the sync's own copy: it records what it wrote
        d.setdefault("apiVersion", "apps/v1")
        d.setdefault("kind", "Deployment")
        d.setdefault("status", {})
        if self.selector(d).empty:
            self.event(d, "Warning", "SelectingAll",
                       "This deployment is selecting all pods. A non-empty selector is required.")
            generation = int(util.meta(d).get("generation") or 0)
            if int(d["status"].get("observedGeneration") or 0) < generation:
                d["status"]["observedGeneration"] = generation
                with contextlib.suppress(errors.ApiError):
                    await self.update_status(d)
            return
        rs_list = await self.get_replica_sets_for_deployment(d)
        if util.meta(d).get("deletionTimestamp"):
            await self.sync_status_only(d, rs_list)
            return
        await self.check_paused_conditions(d)
        if util.spec(d).get("paused"):
            await self.sync_scaling(d, rs_list)
            return
        # Rollback is not re-entrant: finish it (and drop the annotation) before anything else.
        if util.rollback_to(d) is not None:
            await self.rollback(d, rs_list)
            return
        if await self.is_scaling_event(d, rs_list):
            await self.sync_scaling(d, rs_list)
            return
        strategy = util.strategy_type(d)
        if strategy == util.RECREATE:
            await self.rollout_recreate(d, rs_list, self.pod_map(d, rs_list))
        elif strategy == util.ROLLING_UPDATE:
            await self.rollout_rolling(d, rs_list)
        else:
            ns, name = split_key(key)
            raise ValueError(f"unexpected deployment strategy type: {strategy} ({ns}/{name})")
