"""Shared steps of every Deployment sync: the new ReplicaSet, scaling, history cleanup, status.

Upstream's ``sync.go``. The decisions are pure functions (``plan_scale``,
``cleanup_candidates``, ``calculate_status``) that the table tests exercise; the
:class:`SyncMixin` methods apply them through the client, one write at a time and
stopping at the first failure, exactly where upstream's loops return.

The Deployment ``d`` handed around during a sync is the worker's private copy: the
steps mutate it (revision annotation, conditions, collision count) the way upstream
mutates its deep copy, so later steps compare against what earlier ones wrote.
After a status write the copy takes the new ``resourceVersion``, so a second write
in the same sync does not conflict with the first.

Status writes go through the ``status`` subresource. Upstream's status strategy
lets ``metadata.annotations`` through there (that is how the revision annotation
reaches the Deployment); when the API server resets them instead, the changed
annotations follow in a merge patch of the Deployment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ...api import errors
from ...api.resources import DEPLOYMENTS, REPLICASETS
from ...client.base import Client, Obj
from ...machinery.events import EventRecorder
from ...machinery.informer import Informer, controller_ref
from . import util
from .util import (
    AVAILABLE,
    PROGRESSING,
    annotations_of,
    meta,
    name_of,
    replicas,
    spec,
    uid_of,
)

log = logging.getLogger("tinykube.controllers.deployment")

SCALING_EVENT = "ScalingReplicaSet"
_STATUS_INTS = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                "unavailableReplicas")


# -- pure decisions -------------------------------------------------------------------------------------------------------
@dataclass
class ScaleOp:
    """Set ``rs`` to ``replicas``. ``operation`` None: only when the size differs (and the event says up or
    down by itself); "up"/"down"/"": always reconcile, so the replicas annotations are refreshed too."""

    rs: Obj
    replicas: int
    operation: str | None = None


def plan_scale(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> list[ScaleOp]:
    """Upstream's ``scale``: size changes of a Deployment spread over its ReplicaSets.

    One active (or no active) RS takes the whole size; a saturated new RS means the
    old ones go to zero; otherwise a rolling Deployment's active RSs share the
    difference in proportion to their sizes (larger first, newer first when scaling
    up and older first when scaling down), the first taking the rounding leftovers.
    """
    active_or_latest = util.find_active_or_latest(new_rs, old_rss)
    if active_or_latest is not None:
        if replicas(active_or_latest) == replicas(d):
            return []
        return [ScaleOp(active_or_latest, replicas(d))]
    if util.is_saturated(d, new_rs):
        return [ScaleOp(old, 0) for old in util.filter_active(old_rss)]
    if not util.is_rolling_update(d):
        return []
    all_rss = util.filter_active([*old_rss, new_rs])
    current = util.replica_count(all_rss)
    allowed = replicas(d) + util.max_surge(d) if replicas(d) > 0 else 0
    to_add = allowed - current
    operation = ""
    if to_add > 0:
        all_rss = util.by_size_newer(all_rss)
        operation = "up"
    elif to_add < 0:
        all_rss = util.by_size_older(all_rss)
        operation = "down"
    added = 0
    sizes: list[int] = []
    for rs in all_rss:
        if to_add != 0:
            proportion = util.replica_set_proportion(rs, d, to_add, added)
            sizes.append(replicas(rs) + proportion)
            added += proportion
        else:
            sizes.append(replicas(rs))
    ops: list[ScaleOp] = []
    for i, rs in enumerate(all_rss):
        if i == 0 and to_add != 0:
            sizes[0] = max(sizes[0] + to_add - added, 0)  # leftovers go to the largest
        ops.append(ScaleOp(rs, sizes[i], operation))
    return ops


def cleanup_candidates(old_rss: list[Obj | None], d: Obj) -> list[Obj]:
    """Old RSs to delete beyond ``revisionHistoryLimit``, lowest revision first; only fully scaled-down ones."""
    if not util.has_revision_history_limit(d):
        return []
    alive = [rs for rs in old_rss if rs is not None and not meta(rs).get("deletionTimestamp")]
    diff = len(alive) - int(spec(d)["revisionHistoryLimit"])
    if diff <= 0:
        return []
    out: list[Obj] = []
    for rs in util.by_revision(alive)[:diff]:
        st = util.status(rs)
        if (util.status_replicas(rs) != 0 or replicas(rs) != 0
                or int(meta(rs).get("generation") or 0) > int(st.get("observedGeneration") or 0)
                or meta(rs).get("deletionTimestamp")):
            continue  # still has (or may have) pods
        out.append(rs)
    return out


def calculate_status(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj, now: float | None = None) -> dict[str, Any]:
    """The Deployment status its ReplicaSets imply, with the Available condition (``calculateStatus``).

    Zero counts are left out, as the API serializes them (``omitempty``).
    """
    available = util.available_replica_count(all_rss)
    total = util.replica_count(all_rss)
    unavailable = max(total - available, 0)
    st: dict[str, Any] = {}
    values = {
        "observedGeneration": int(meta(d).get("generation") or 0),
        "replicas": util.actual_replica_count(all_rss),
        "updatedReplicas": util.actual_replica_count([new_rs]),
        "readyReplicas": util.ready_replica_count(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    for k, v in values.items():
        if v:
            st[k] = v
    cc = util.status(d).get("collisionCount")
    if cc is not None:
        st["collisionCount"] = cc
    conds = [dict(c) for c in util.status(d).get("conditions") or []]
    if conds:
        st["conditions"] = conds
    if available >= replicas(d) - util.max_unavailable(d):
        cond = util.new_condition(AVAILABLE, "True", util.MINIMUM_REPLICAS_AVAILABLE,
                                  "Deployment has minimum availability.", now)
    else:
        cond = util.new_condition(AVAILABLE, "False", util.MINIMUM_REPLICAS_UNAVAILABLE,
                                  "Deployment does not have minimum availability.", now)
    util.set_condition(st, cond)
    return st


def normalized_status(st: dict[str, Any] | None) -> dict[str, Any]:
    """A status with zero counts and empty lists dropped, for "did anything change" comparisons."""
    out: dict[str, Any] = {}
    for k, v in (st or {}).items():
        if k in _STATUS_INTS and not v:
            continue
        if k == "conditions" and not v:
            continue
        if v is None:
            continue
        out[k] = v
    return out


def status_equal(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return normalized_status(a) == normalized_status(b)


def is_scaling_event_for(d: Obj, all_rss: list[Obj | None]) -> bool:
    """An active RS records a desired size other than the Deployment's: the user scaled it."""
    for rs in util.filter_active(all_rss):
        desired = util.desired_replicas_annotation(rs)
        if desired is None:
            continue
        if desired != replicas(d):
            return True
    return False


# -- the I/O side ----------------------------------------------------------------------------------------------------------
class SyncMixin:
    """Steps shared by every strategy; the controller provides the client, recorder and informers."""

    client: Client
    recorder: EventRecorder
    rs_informer: Informer

    def now(self) -> float:
        raise NotImplementedError

    # -- writes ---------------------------------------------------------------------------------------------------------
    async def update_status(self, d: Obj) -> Obj:
        """Write ``d.status`` (and any annotation changes, see the module notes); ``d`` takes the new version."""
        md = meta(d)
        ns = md.get("namespace")
        out = await self.client.update(DEPLOYMENTS, ns, d, subresource="status")
        md["resourceVersion"] = meta(out).get("resourceVersion")
        want = md.get("annotations") or {}
        got = annotations_of(out)
        if want != got:
            change: dict[str, Any] = {k: v for k, v in want.items() if got.get(k) != v}
            change.update({k: None for k in got if k not in want})
            body = {"metadata": {"resourceVersion": md["resourceVersion"], "annotations": change}}
            out = await self.client.patch(DEPLOYMENTS, ns, md["name"], body, "merge")
            md["resourceVersion"] = meta(out).get("resourceVersion")
        return out

    def event(self, d: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.event(d, type_, reason, message)

    # -- ReplicaSets --------------------------------------------------------------------------------------------------------
    async def get_all_replica_sets_and_sync_revision(self, d: Obj, rs_list: list[Obj],
                                                     create: bool) -> tuple[Obj | None, list[Obj]]:
        """(new RS, all old RSs), the new one's revision brought up to date (and created when asked)."""
        _, all_old = util.find_old_replica_sets(d, rs_list)
        new_rs = await self.get_new_replica_set(d, rs_list, all_old, create)
        return new_rs, all_old

    async def get_new_replica_set(self, d: Obj, rs_list: list[Obj], old_rss: list[Obj], create: bool) -> Obj | None:
        existing = util.find_new_replica_set(d, rs_list)
        new_revision = str(util.max_revision(old_rss) + 1)
        md = meta(d)
        ns = md.get("namespace")
        if existing is not None:
            rs_copy = util.working_copy(existing)
            annotations_updated = util.set_new_replica_set_annotations(d, rs_copy, new_revision, True)
            min_ready_needs_update = util.min_ready_seconds(rs_copy) != util.min_ready_seconds(d)
            if annotations_updated or min_ready_needs_update:
                _set_min_ready_seconds(rs_copy, util.min_ready_seconds(d))
                updated = await self.client.update(REPLICASETS, ns, rs_copy)
                _replace(rs_list, existing, updated)
                return updated
            # The RS's own revision is the reliable one (it was set before).
            needs_update = util.set_deployment_revision(d, annotations_of(rs_copy).get(util.REVISION_ANNOTATION, ""))
            st = d.setdefault("status", {})
            if util.has_progress_deadline(d) and util.get_condition(st, PROGRESSING) is None:
                msg = f'Found new replica set "{name_of(rs_copy)}"'
                util.set_condition(st, util.new_condition(PROGRESSING, "True", util.FOUND_NEW_RS_REASON, msg,
                                                          self.now()))
                needs_update = True
            if needs_update:
                await self.update_status(d)
            return rs_copy
        if not create:
            return None
        new_rs = self._new_replica_set_object(d)
        count = util.new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
        new_rs["spec"]["replicas"] = count
        util.set_new_replica_set_annotations(d, new_rs, new_revision, False)
        rs_name = name_of(new_rs)
        already_exists = False
        try:
            created = await self.client.create(REPLICASETS, ns, new_rs)
        except errors.ApiError as ex:
            if ex.code == 409 and ex.reason == "AlreadyExists":
                already_exists = True
                found = self.rs_informer.get(ns, rs_name)
                if found is None:
                    raise  # not in our cache yet: try again later
                ref = controller_ref(found)
                if ref is not None and ref.get("uid") == uid_of(d) and util.equal_ignore_hash(
                        util.template_of(d), util.template_of(found)):
                    created = found
                else:
                    # A different template already has this name: a hash collision. Count it so the
                    # next attempt hashes differently, and retry.
                    st = d.setdefault("status", {})
                    st["collisionCount"] = int(st.get("collisionCount") or 0) + 1
                    try:
                        await self.update_status(d)
                        log.info("hash collision for deployment %s/%s: collisionCount now %d", ns, md.get("name"),
                                 st["collisionCount"])
                    except errors.ApiError:
                        pass
                    raise
            elif _namespace_terminating(ex):
                raise
            else:
                msg = f'Failed to create new replica set "{rs_name}": {ex.message}'
                if util.has_progress_deadline(d):
                    st = d.setdefault("status", {})
                    util.set_condition(st, util.new_condition(PROGRESSING, "False", util.FAILED_RS_CREATE_REASON,
                                                              msg, self.now()))
                    try:
                        await self.update_status(d)
                    except errors.ApiError:
                        pass  # the create failure is the bigger problem to report
                self.event(d, "Warning", util.FAILED_RS_CREATE_REASON, msg)
                raise
        if not already_exists and count > 0:
            self.event(d, "Normal", SCALING_EVENT, f"Scaled up replica set {name_of(created)} from 0 to {count}")
        needs_update = util.set_deployment_revision(d, new_revision)
        if not already_exists and util.has_progress_deadline(d):
            msg = f'Created new replica set "{name_of(created)}"'
            util.set_condition(d.setdefault("status", {}),
                               util.new_condition(PROGRESSING, "True", util.NEW_REPLICA_SET_REASON, msg, self.now()))
            needs_update = True
        if needs_update:
            await self.update_status(d)
        return created

    def _new_replica_set_object(self, d: Obj) -> Obj:
        md = meta(d)
        template = util.deep_copy(util.template_of(d))
        pod_hash = util.compute_hash(template, util.status(d).get("collisionCount"))
        tmd = template.setdefault("metadata", {})
        tmd["labels"] = util.clone_and_add_label(tmd.get("labels"), util.DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, pod_hash)
        selector = util.clone_selector_and_add_label(spec(d).get("selector"), util.DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY,
                                                     pod_hash)
        rs_spec: dict[str, Any] = {"replicas": 0, "selector": selector, "template": template}
        if util.min_ready_seconds(d):
            rs_spec["minReadySeconds"] = util.min_ready_seconds(d)
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                # Deterministic, so a retried create finds the first attempt.
                "name": f"{md['name']}-{pod_hash}",
                "namespace": md.get("namespace"),
                "ownerReferences": [controller_ref_to(d)],
                "labels": dict(tmd["labels"]),
            },
            "spec": rs_spec,
        }

    # -- scaling -----------------------------------------------------------------------------------------------------------
    async def scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        for op in plan_scale(d, new_rs, old_rss):
            if op.operation is None:
                await self.scale_replica_set_and_record_event(op.rs, op.replicas, d)
            else:
                await self.scale_replica_set(op.rs, op.replicas, d, op.operation)

    async def scale_replica_set_and_record_event(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        if replicas(rs) == new_scale:
            return False, rs
        operation = "up" if replicas(rs) < new_scale else "down"
        return await self.scale_replica_set(rs, new_scale, d, operation)

    async def scale_replica_set(self, rs: Obj, new_scale: int, d: Obj, operation: str) -> tuple[bool, Obj]:
        """Set the RS size and its desired/max annotations; an event when the size changed."""
        size_changed = replicas(rs) != new_scale
        desired = replicas(d)
        max_replicas = desired + util.max_surge(d)
        if not size_changed and not util.replicas_annotations_need_update(rs, desired, max_replicas):
            return False, rs
        old_scale = replicas(rs)
        rs_copy = util.deep_copy(rs)
        rs_copy.setdefault("spec", {})["replicas"] = new_scale
        util.set_replicas_annotations(rs_copy, desired, max_replicas)
        updated = await self.client.update(REPLICASETS, meta(rs).get("namespace"), rs_copy)
        if size_changed:
            self.event(d, "Normal", SCALING_EVENT,
                       f"Scaled {operation} replica set {name_of(updated)} from {old_scale} to {new_scale}")
        return size_changed, updated

    # -- cleanup and status ------------------------------------------------------------------------------------------------
    async def cleanup_deployment(self, old_rss: list[Obj], d: Obj) -> None:
        for rs in cleanup_candidates(list(old_rss), d):
            try:
                await self.client.delete(REPLICASETS, meta(rs).get("namespace"), name_of(rs))
            except errors.ApiError as ex:
                if ex.code != 404:
                    raise  # stop here rather than hammer the API server

    async def sync_deployment_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> None:
        new_status = calculate_status(all_rss, new_rs, d, self.now())
        if status_equal(d.get("status"), new_status):
            return
        d["status"] = new_status
        await self.update_status(d)

    # -- sync variants ----------------------------------------------------------------------------------------------------
    async def sync_status_only(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, False)
        await self.sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def sync_scaling(self, d: Obj, rs_list: list[Obj]) -> None:
        """Scaling events and paused Deployments: resize proportionally, never roll out."""
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, False)
        await self.scale(d, new_rs, old_rss)
        if spec(d).get("paused") and util.rollback_to(d) is None:
            await self.cleanup_deployment(old_rss, d)
        await self.sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def check_paused_conditions(self, d: Obj) -> None:
        """Progressing=Unknown while paused (and once on resume), so paused time never counts as no progress."""
        if not util.has_progress_deadline(d):
            return
        st = d.setdefault("status", {})
        cond = util.get_condition(st, PROGRESSING)
        if cond is not None and cond.get("reason") == util.TIMED_OUT_REASON:
            return  # lack of progress already reported: keep it
        paused_cond_exists = cond is not None and cond.get("reason") == util.PAUSED_DEPLOY_REASON
        paused = bool(spec(d).get("paused"))
        if paused and not paused_cond_exists:
            c = util.new_condition(PROGRESSING, "Unknown", util.PAUSED_DEPLOY_REASON, "Deployment is paused", self.now())
        elif not paused and paused_cond_exists:
            c = util.new_condition(PROGRESSING, "Unknown", util.RESUMED_DEPLOY_REASON, "Deployment is resumed",
                                   self.now())
        else:
            return
        util.set_condition(st, c)
        await self.update_status(d)

    async def is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, False)
        return is_scaling_event_for(d, [*old_rss, new_rs])


# -- helpers ------------------------------------------------------------------------------------------------------------------
def controller_ref_to(d: Obj) -> dict[str, Any]:
    md = meta(d)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": md.get("name"), "uid": md.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def _set_min_ready_seconds(rs: Obj, value: int) -> None:
    sp = rs.setdefault("spec", {})
    if value:
        sp["minReadySeconds"] = value
    else:
        sp.pop("minReadySeconds", None)


def _replace(rs_list: list[Obj], old: Obj, new: Obj) -> None:
    for i, rs in enumerate(rs_list):
        if rs is old:
            rs_list[i] = new
            return


def _namespace_terminating(ex: errors.ApiError) -> bool:
    for cause in (ex.details or {}).get("causes") or []:
        if cause.get("type") == "NamespaceTerminating" or cause.get("reason") == "NamespaceTerminating":
            return True
    return False
