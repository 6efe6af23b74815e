"""Rollback: kubectl's ``rollout undo`` and the deprecated ``rollback.to`` annotation.

With apps/v1 kubectl rolls back on its own side: it copies the old ReplicaSet's
template (without the hash label) and annotations into the Deployment. The
controller then finds that ReplicaSet as the Deployment's new one (templates equal
ignoring ``pod-template-hash``) and gives it the next revision, recording its old
number in ``revision-history``; nothing here is needed for that path.

For the round-tripped ``deprecated.deployment.rollback.to`` annotation (what an
``extensions/v1beta1`` ``rollbackTo`` became), the controller does the copying
itself, as upstream's ``rollback.go``: revision 0 means the previous one; the
annotation is removed afterwards whatever the outcome, with a warning event when
the revision does not exist or already is the current template.
"""

from __future__ import annotations

from ...api.resources import DEPLOYMENTS
from ...client.base import Obj
from . import util
from .sync import SyncMixin


class RollbackMixin(SyncMixin):
    async def rollback(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(d, rs_list, True)
        all_rss = [rs for rs in [*old_rss, new_rs] if rs is not None]
        target = util.rollback_to(d) or 0
        if target == 0:
            target = util.last_revision(all_rss)
            if target == 0:
                self.event(d, "Warning", util.ROLLBACK_REVISION_NOT_FOUND, "Unable to find last revision.")
                await self.update_deployment_and_clear_rollback_to(d)
                return
        for rs in all_rss:
            try:
                rev = util.revision(rs)
            except ValueError:
                continue
            if rev == target:
                performed = await self.rollback_to_template(d, rs)
                if performed:
                    self.event(d, "Normal", util.ROLLBACK_DONE,
                               f'Rolled back deployment "{util.name_of(d)}" to revision {target}')
                return
        self.event(d, "Warning", util.ROLLBACK_REVISION_NOT_FOUND, "Unable to find the revision to rollback to.")
        await self.update_deployment_and_clear_rollback_to(d)

    async def rollback_to_template(self, d: Obj, rs: Obj) -> bool:
        performed = False
        if not util.equal_ignore_hash(util.template_of(d), util.template_of(rs)):
            util.set_from_replica_set_template(d, util.template_of(rs))
            # The RS's annotations (change-cause...) come back with its template; otherwise the
            # Deployment's current ones would be copied onto the RS we roll back to.
            util.set_deployment_annotations_to(d, rs)
            performed = True
        else:
            self.event(d, "Warning", util.ROLLBACK_TEMPLATE_UNCHANGED,
                       f'The rollback revision contains the same template as current deployment "{util.name_of(d)}"')
        await self.update_deployment_and_clear_rollback_to(d)
        return performed

    async def update_deployment_and_clear_rollback_to(self, d: Obj) -> None:
        ann = util.meta(d).get("annotations")
        if ann:
            ann.pop(util.DEPRECATED_ROLLBACK_TO, None)
        out = await self.client.update(DEPLOYMENTS, util.meta(d).get("namespace"), d)
        d["metadata"]["resourceVersion"] = util.meta(out).get("resourceVersion")
