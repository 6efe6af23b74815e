"""RollingUpdate: one bounded step per sync, as upstream's ``rolling.go``.

Each sync first tries to scale the new ReplicaSet up (never past
``replicas + maxSurge`` pods in total); only when it could not does it scale old
ReplicaSets down, never below ``replicas - maxUnavailable`` available pods. Scaling
down first removes old replicas that are not available (they do not count towards
availability anyway), then available ones from the oldest ReplicaSet on.

The arithmetic is pure (``new_replica_set_target``, ``max_scaled_down``,
``plan_cleanup_unhealthy``, ``plan_scale_down_old_replica_sets`` and, for the
table tests, ``plan_reconcile_old_replica_sets``); :class:`RollingMixin` applies
it. As upstream, a failed write while scaling old ReplicaSets down ends the step
quietly (the ReplicaSet's own update event brings the Deployment back).
"""

from __future__ import annotations

import logging

from ...api import errors
from ...client.base import Obj
from . import util
from .progress import ProgressMixin
from .util import available_replicas, replicas

log = logging.getLogger("tinykube.controllers.deployment")

ScalePlan = list[tuple[Obj, int]]


def new_replica_set_target(all_rss: list[Obj | None], new_rs: Obj, d: Obj) -> int | None:
    """The size to give the new RS now (None: leave it), as ``reconcileNewReplicaSet`` decides."""
    if replicas(new_rs) == replicas(d):
        return None
    if replicas(new_rs) > replicas(d):
        return replicas(d)  # scale down to the desired count
    return util.new_rs_new_replicas(d, all_rss, new_rs)


def max_scaled_down(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> int:
    """Pods that may go: everything above the minimum available, less the new RS's unavailable pods."""
    min_avail = replicas(d) - util.max_unavailable(d)
    new_unavailable = replicas(new_rs) - available_replicas(new_rs) if new_rs is not None else 0
    return util.replica_count(all_rss) - min_avail - new_unavailable


def _with_replicas(rs: Obj, n: int) -> Obj:
    return {**rs, "spec": {**util.spec(rs), "replicas": n}}


def plan_cleanup_unhealthy(old_rss: list[Obj], d: Obj, max_cleanup: int) -> tuple[ScalePlan, int, str | None]:
    """Scale-downs removing old RSs' unavailable replicas, oldest RS first, at most ``max_cleanup`` in all.

    Returns (steps, replicas removed, error): an error stops the plan where upstream returns one.
    """
    steps: ScalePlan = []
    total = 0
    for rs in util.by_creation_timestamp(old_rss):
        if total >= max_cleanup:
            break
        if replicas(rs) == 0:
            continue  # cannot scale this one down
        if replicas(rs) == available_replicas(rs):
            continue  # no unhealthy replicas
        count = min(max_cleanup - total, replicas(rs) - available_replicas(rs))
        new_count = replicas(rs) - count
        if new_count > replicas(rs):
            return steps, total, (f"when cleaning up unhealthy replicas, got invalid request to scale down "
                                  f"{util.meta(rs).get('namespace')}/{util.name_of(rs)} {replicas(rs)} -> {new_count}")
        steps.append((rs, new_count))
        total += count
    return steps, total, None


def plan_scale_down_old_replica_sets(all_rss: list[Obj | None], old_rss: list[Obj],
                                     d: Obj) -> tuple[ScalePlan, int, str | None]:
    """Scale-downs keeping at least ``replicas - maxUnavailable`` pods available, oldest RS first."""
    min_avail = replicas(d) - util.max_unavailable(d)
    available = util.available_replica_count(all_rss)
    if available <= min_avail:
        return [], 0, None
    steps: ScalePlan = []
    total = 0
    to_scale_down = available - min_avail
    for rs in util.by_creation_timestamp(old_rss):
        if total >= to_scale_down:
            break
        if replicas(rs) == 0:
            continue
        count = min(replicas(rs), to_scale_down - total)
        new_count = replicas(rs) - count
        if new_count > replicas(rs):
            return steps, total, (f"when scaling down old RS, got invalid request to scale down "
                                  f"{util.meta(rs).get('namespace')}/{util.name_of(rs)} {replicas(rs)} -> {new_count}")
        steps.append((rs, new_count))
        total += count
    return steps, total, None


def plan_reconcile_old_replica_sets(all_rss: list[Obj | None], old_rss: list[Obj], new_rs: Obj | None,
                                    d: Obj) -> tuple[ScalePlan, int]:
    """The whole ``reconcileOldReplicaSets`` step as a plan, assuming every write succeeds."""
    if util.replica_count(old_rss) == 0:
        return [], 0
    limit = max_scaled_down(all_rss, new_rs, d)
    if limit <= 0:
        return [], 0
    cleanup, cleaned, err = plan_cleanup_unhealthy(old_rss, d, limit)
    if err is not None:
        return cleanup, 0  # upstream reports "nothing scaled" after the writes it did make
    changed = {id(rs): n for rs, n in cleanup}
    updated_old = [_with_replicas(rs, changed[id(rs)]) if id(rs) in changed else rs for rs in old_rss]
    scale_down, scaled, err = plan_scale_down_old_replica_sets([*updated_old, new_rs], updated_old, d)
    if err is not None:
        return cleanup + scale_down, 0
    return cleanup + scale_down, cleaned + scaled


class RollingMixin(ProgressMixin):
    async def rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, True)
        assert new_rs is not None  # created when missing
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        if await self.reconcile_new_replica_set(all_rss, new_rs, d):
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if await self.reconcile_old_replica_sets(all_rss, util.filter_active(old_rss), new_rs, d):
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if util.deployment_complete(d, util.status(d)):
            await self.cleanup_deployment(old_rss, d)
        await self.sync_rollout_status(all_rss, new_rs, d)

    async def reconcile_new_replica_set(self, all_rss: list[Obj | None], new_rs: Obj, d: Obj) -> bool:
        target = new_replica_set_target(all_rss, new_rs, d)
        if target is None:
            return False
        scaled, _ = await self.scale_replica_set_and_record_event(new_rs, target, d)
        return scaled

    async def reconcile_old_replica_sets(self, all_rss: list[Obj | None], old_rss: list[Obj], new_rs: Obj,
                                         d: Obj) -> bool:
        if util.replica_count(old_rss) == 0:
            return False  # nothing left to scale down
        limit = max_scaled_down(all_rss, new_rs, d)
        if limit <= 0:
            return False
        # Unhealthy replicas first: they would otherwise block the rollout until it times out.
        steps, cleaned, err = plan_cleanup_unhealthy(old_rss, d, limit)
        current = list(old_rss)
        for rs, n in steps:
            ok, updated = await self._scale_quietly(rs, n, d)
            if not ok:
                return False
            current = [updated if x is rs else x for x in current]
        if err is not None:
            log.debug("deployment %s: %s", util.name_of(d), err)
            return False
        steps, scaled, err = plan_scale_down_old_replica_sets([*current, new_rs], current, d)
        for rs, n in steps:
            ok, _ = await self._scale_quietly(rs, n, d)
            if not ok:
                return False
        if err is not None:
            log.debug("deployment %s: %s", util.name_of(d), err)
            return False
        return cleaned + scaled > 0

    async def _scale_quietly(self, rs: Obj, n: int, d: Obj) -> tuple[bool, Obj]:
        try:
            _, updated = await self.scale_replica_set_and_record_event(rs, n, d)
        except errors.ApiError as ex:
            log.debug("deployment %s: scaling %s down: %s", util.name_of(d), util.name_of(rs), ex)
            return False, rs
        return True, updated
