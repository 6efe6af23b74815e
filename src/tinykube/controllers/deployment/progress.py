"""Rollout status and the progress deadline, as upstream's ``progress.go``.

During a rollout the Progressing condition says what happened last:
``NewReplicaSetCreated``/``FoundNewReplicaSet`` when the new RS appeared,
``ReplicaSetUpdated`` whenever pods were updated, removed or became ready or
available (the condition's ``lastUpdateTime`` moves, its ``lastTransitionTime``
stays), ``NewReplicaSetAvailable`` once complete, and ``ProgressDeadlineExceeded``
(status False) when nothing happened for ``progressDeadlineSeconds``. A rollout
without progress is re-checked right when its deadline passes
(``requeue_after``), not on the next unrelated event.

``compute_rollout_status`` and ``requeue_after`` are pure (the clock is an
argument); :class:`ProgressMixin` writes the status when it changed and schedules
the deadline check otherwise.
"""

from __future__ import annotations

from typing import Any

from ...api.meta import parse_timestamp
from ...client.base import Obj
from ...machinery.informer import key_of
from ...machinery.queue import WorkQueue
from . import util
from .sync import SyncMixin, calculate_status, status_equal
from .util import PROGRESSING, REPLICA_FAILURE

_GO_ZERO_TIME = -62135596800.0


def replica_failures(all_rss: list[Obj | None], new_rs: Obj | None) -> list[dict[str, Any]]:
    """ReplicaFailure conditions of the RSs as Deployment conditions, the new RS's taking precedence."""
    conds: list[dict[str, Any]] = []
    if new_rs is not None:
        conds = [util.replica_set_to_deployment_condition(c) for c in util.status(new_rs).get("conditions") or []
                 if c.get("type") == REPLICA_FAILURE]
    if conds:
        return conds
    for rs in all_rss:
        if rs is None:
            continue
        conds.extend(util.replica_set_to_deployment_condition(c) for c in util.status(rs).get("conditions") or []
                     if c.get("type") == REPLICA_FAILURE)
    return conds


def compute_rollout_status(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj, now: float) -> dict[str, Any]:
    """The status ``syncRolloutStatus`` would write, Progressing condition included."""
    new_status = calculate_status(all_rss, new_rs, d, now)
    if not util.has_progress_deadline(d):
        util.remove_condition(new_status, PROGRESSING)
    current = util.get_condition(util.status(d), PROGRESSING)
    is_complete = (int(new_status.get("replicas") or 0) == int(new_status.get("updatedReplicas") or 0)
                   and current is not None and current.get("reason") == util.NEW_RS_AVAILABLE_REASON)
    if util.has_progress_deadline(d) and not is_complete:
        dname = util.name_of(d)
        if util.deployment_complete(d, new_status):
            msg = f'Deployment "{dname}" has successfully progressed.'
            if new_rs is not None:
                msg = f'ReplicaSet "{util.name_of(new_rs)}" has successfully progressed.'
            util.set_condition(new_status, util.new_condition(PROGRESSING, "True", util.NEW_RS_AVAILABLE_REASON, msg,
                                                              now))
        elif util.deployment_progressing(d, new_status):
            msg = f'Deployment "{dname}" is progressing.'
            if new_rs is not None:
                msg = f'ReplicaSet "{util.name_of(new_rs)}" is progressing.'
            cond = util.new_condition(PROGRESSING, "True", util.REPLICA_SET_UPDATED_REASON, msg, now)
            # Progress moves lastUpdateTime even when the reason stays the same.
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                util.remove_condition(new_status, PROGRESSING)
            util.set_condition(new_status, cond)
        elif util.deployment_timed_out(d, new_status, now):
            msg = f'Deployment "{dname}" has timed out progressing.'
            if new_rs is not None:
                msg = f'ReplicaSet "{util.name_of(new_rs)}" has timed out progressing.'
            util.set_condition(new_status, util.new_condition(PROGRESSING, "False", util.TIMED_OUT_REASON, msg, now))
    failures = replica_failures(all_rss, new_rs)
    if failures:
        util.set_condition(new_status, failures[0])
    else:
        util.remove_condition(new_status, REPLICA_FAILURE)
    return new_status


def requeue_after(d: Obj, new_status: dict[str, Any], now: float) -> float | None:
    """When to look at a rollout again for its deadline: None never, 0 right away, else seconds from now."""
    current = util.get_condition(util.status(d), PROGRESSING)
    if not util.has_progress_deadline(d) or current is None:
        return None
    if util.deployment_complete(d, new_status) or current.get("reason") == util.TIMED_OUT_REASON:
        return None
    last = parse_timestamp(current.get("lastUpdateTime"))
    after = (last if last is not None else _GO_ZERO_TIME) + int(util.spec(d)["progressDeadlineSeconds"]) - now
    if after < 1.0:
        return 0.0
    return after


class ProgressMixin(SyncMixin):
    queue: WorkQueue

    async def sync_rollout_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> None:
        now = self.now()
        new_status = compute_rollout_status(all_rss, new_rs, d, now)
        if status_equal(d.get("status"), new_status):
            self.requeue_stuck_deployment(d, new_status, now)
            return
        d["status"] = new_status
        await self.update_status(d)

    def requeue_stuck_deployment(self, d: Obj, new_status: dict[str, Any], now: float) -> float | None:
        after = requeue_after(d, new_status, now)
        if after is None:
            return None
        key = key_of(d)
        if after == 0:
            self.queue.add_rate_limited(key)
        else:
            # A second more, so the check does not land just before the deadline (the queue keeps one pending
            # time per key, the earliest).
            self.queue.add_after(key, after + 1.0)
        return after
