"""Recreate: every old pod gone before the new ReplicaSet gets any (upstream's ``recreate.go``).

Each sync scales all active old ReplicaSets to zero; while an old ReplicaSet still
reports replicas, or any pod of an old ReplicaSet is not in a terminal phase, it
only updates status. Then it creates the new ReplicaSet (not earlier, so nothing
is scaled up before everything old is down) at the full size. The pods are looked
up through the pod informer's controller-uid index; a pod deletion wakes the
Deployment once the last of its pods is gone.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...client.base import Obj
from . import util
from .progress import ProgressMixin


def old_pods_running(new_rs: Obj | None, old_rss: list[Obj], pod_map: Mapping[str, list[Obj]]) -> bool:
    """Old RSs still report replicas, or a pod of an RS other than the new one is not finished."""
    if util.actual_replica_count(old_rss) > 0:
        return True
    new_uid = util.uid_of(new_rs) if new_rs is not None else None
    for rs_uid, pods in pod_map.items():
        if new_uid is not None and rs_uid == new_uid:
            continue
        for pod in pods:
            phase = util.status(pod).get("phase")
            if phase in ("Failed", "Succeeded"):
                continue  # terminal pods do not run
            return True  # Pending, Running, Unknown (we cannot be sure it stopped) or unset
    return False


class RecreateMixin(ProgressMixin):
    async def rollout_recreate(self, d: Obj, rs_list: list[Obj], pod_map: Mapping[str, list[Obj]]) -> None:
        # Do not create the new RS yet: nothing may scale up before the old ones are down.
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, False)
        all_rss: list[Obj | None] = [*old_rss, new_rs]
        if await self.scale_down_old_replica_sets_for_recreate(util.filter_active(old_rss), d):
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if old_pods_running(new_rs, old_rss, pod_map):
            await self.sync_rollout_status(all_rss, new_rs, d)
            return
        if new_rs is None:
            new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, True)
            all_rss = [*old_rss, new_rs]
        assert new_rs is not None
        await self.scale_replica_set_and_record_event(new_rs, util.replicas(d), d)
        if util.deployment_complete(d, util.status(d)):
            await self.cleanup_deployment(old_rss, d)
        await self.sync_rollout_status(all_rss, new_rs, d)

    async def scale_down_old_replica_sets_for_recreate(self, old_rss: list[Obj], d: Obj) -> bool:
        scaled = False
        for rs in old_rss:
            if util.replicas(rs) == 0:
                continue
            did, _ = await self.scale_replica_set_and_record_event(rs, 0, d)
            scaled = scaled or did
        return scaled
