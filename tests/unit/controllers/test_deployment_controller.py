"""The Deployment controller alone over a real registry.

No ReplicaSet controller runs here: :class:`FakeReplicaSets` plays its part the way
upstream's controller tests fake it, writing each ReplicaSet's ``status`` through
the status subresource (every replica created, and as many available as the test's
policy says).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.harness import ControlPlane, control_plane, eventually

from tinykube.api import errors
from tinykube.api.resources import DEPLOYMENTS, EVENTS, PODS, REPLICASETS
from tinykube.controllers.deployment import DeploymentController, util
from tinykube.machinery.informer import controller_ref

Obj = dict[str, Any]
NS = "default"


def deployment(name: str = "web", replicas: int = 3, image: str = "nginx:1", **spec: Any) -> Obj:
    d: Obj = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": name, "namespace": NS, "annotations": {}},
              "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                       "template": {"metadata": {"labels": {"app": name}},
                                    "spec": {"containers": [{"name": "c", "image": image}]}}}}
    d["spec"].update(spec)
    return d


class FakeReplicaSets:
    """Keeps every ReplicaSet's status in line with its spec; ``available(rs, n)`` decides availability."""

    def __init__(self, cp: ControlPlane, available: Callable[[Obj, int], int] | None = None) -> None:
        self.cp = cp
        self.inf = cp.informers.informer(REPLICASETS)
        self.available = available or (lambda _rs, n: n)
        self._task: asyncio.Task[None] | None = None

    def desired_status(self, rs: Obj) -> Obj:
        n = util.replicas(rs)
        avail = self.available(rs, n)
        return {"replicas": n, "fullyLabeledReplicas": n, "readyReplicas": avail, "availableReplicas": avail,
                "observedGeneration": int(rs["metadata"].get("generation") or 0)}

    async def _loop(self) -> None:
        while True:
            for rs in list(self.inf.cache.values()):
                want = self.desired_status(rs)
                if rs.get("status") == want or rs["metadata"].get("deletionTimestamp"):
                    continue
                copy = util.deep_copy(rs)
                copy["status"] = want
                with contextlib.suppress(errors.ApiError):  # conflicts: next round
                    await self.cp.client.update(REPLICASETS, NS, copy, subresource="status")
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


@asynccontextmanager
async def running(tmp_path: Path, available: Callable[[Obj, int], int] | None = None,
                  fake: bool = True) -> AsyncIterator[tuple[ControlPlane, DeploymentController, FakeReplicaSets]]:
    async with control_plane(tmp_path) as cp:
        dc = DeploymentController(cp.client, cp.informers)
        frs = FakeReplicaSets(cp, available)
        cp.informers.start()
        await cp.informers.wait_synced()
        dc.start()
        if fake:
            frs.start()
        try:
            yield cp, dc, frs
        finally:
            await frs.stop()
            await dc.stop()


def owned(cp: ControlPlane, d: Obj) -> list[Obj]:
    uid = d["metadata"]["uid"]
    return sorted((rs for rs in cp.informers.informer(REPLICASETS).cache.values()
                   if (controller_ref(rs) or {}).get("uid") == uid), key=util.revision)


async def get_d(cp: ControlPlane, name: str = "web") -> Obj:
    return await cp.client.get(DEPLOYMENTS, NS, name)


async def events(cp: ControlPlane, reason: str = "ScalingReplicaSet") -> list[str]:
    items, _ = await cp.client.list(EVENTS, NS)
    items.sort(key=lambda e: e["metadata"]["name"])  # <object>.<hex ns timestamp>: creation order
    return [e["message"] for e in items if e.get("reason") == reason]


def complete(d: Obj) -> bool:
    st = d.get("status") or {}
    cond = util.get_condition(st, "Progressing")
    return (st.get("observedGeneration") == d["metadata"]["generation"]
            and st.get("updatedReplicas") == d["spec"]["replicas"] == st.get("replicas") == st.get("availableReplicas")
            and cond is not None and cond["reason"] == util.NEW_RS_AVAILABLE_REASON)


async def wait_complete(cp: ControlPlane, name: str = "web", timeout: float = 10.0) -> Obj:
    async def check() -> Obj | None:
        d = await get_d(cp, name)
        return d if complete(d) else None
    result: Obj = await eventually(check, timeout, what=f"deployment {name} complete")
    return result


async def set_template(cp: ControlPlane, image: str, cause: str | None = None, name: str = "web") -> None:
    body: Obj = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
    if cause is not None:
        body["metadata"] = {"annotations": {util.CHANGE_CAUSE_ANNOTATION: cause}}
    await cp.client.patch(DEPLOYMENTS, NS, name, body, "strategic")


# -- tests ------------------------------------------------------------------------------------------------------------------
async def test_creates_replica_set_and_reports_status(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _dc, _frs):
        d = deployment(minReadySeconds=5)
        d["metadata"]["annotations"] = {util.CHANGE_CAUSE_ANNOTATION: "first",
                                        util.LAST_APPLIED_CONFIG_ANNOTATION: '{"kind":"Deployment"}'}
        created = await cp.client.create(DEPLOYMENTS, NS, d)
        done = await wait_complete(cp)
        [rs] = owned(cp, created)
        pod_hash = util.compute_hash(created["spec"]["template"], None)
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
        assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": pod_hash}}
        assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
        assert rs["spec"]["minReadySeconds"] == 5
        assert rs["spec"]["replicas"] == 3
        ref = controller_ref(rs)
        assert ref is not None and ref["uid"] == created["metadata"]["uid"] and ref["blockOwnerDeletion"] is True
        assert rs["metadata"]["annotations"] == {
            util.CHANGE_CAUSE_ANNOTATION: "first", util.REVISION_ANNOTATION: "1",
            util.DESIRED_REPLICAS_ANNOTATION: "3", util.MAX_REPLICAS_ANNOTATION: "4"}  # 25% surge of 3 rounds up
        assert done["metadata"]["annotations"][util.REVISION_ANNOTATION] == "1"
        st = done["status"]
        assert {k: st.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == {
            "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
        assert "unavailableReplicas" not in st
        avail = util.get_condition(st, "Available")
        assert avail is not None and (avail["status"], avail["reason"], avail["message"]) == (
            "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        prog = util.get_condition(st, "Progressing")
        assert prog is not None and prog["message"] == f'ReplicaSet "web-{pod_hash}" has successfully progressed.'
        assert prog["lastUpdateTime"] and prog["lastTransitionTime"]
        await eventually(lambda: events(cp), what="events")
        assert (await events(cp))[0] == f"Scaled up replica set web-{pod_hash} from 0 to 3"
        # Nothing left to do: no further writes to the Deployment.
        rv = done["metadata"]["resourceVersion"]
        await asyncio.sleep(0.3)
        assert (await get_d(cp))["metadata"]["resourceVersion"] == rv


async def test_rolling_update_respects_surge_and_unavailability(tmp_path: Path) -> None:
    snapshots: list[tuple[int, int]] = []
    async with running(tmp_path) as (cp, _dc, _frs):
        inf = cp.informers.informer(REPLICASETS)

        def record(*_: Obj) -> None:
            rss = list(inf.cache.values())
            snapshots.append((util.replica_count(rss), util.available_replica_count(rss)))

        inf.add_handlers(on_update=record)
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
        created = await cp.client.create(DEPLOYMENTS, NS, deployment(replicas=4, strategy=strategy))
        await wait_complete(cp)
        [first] = owned(cp, created)
        snapshots.clear()
        await set_template(cp, "nginx:2", cause="upgrade")
        done = await wait_complete(cp)
        old, new = owned(cp, created)
        assert old["metadata"]["name"] == first["metadata"]["name"]
        assert (util.replicas(old), util.replicas(new)) == (0, 4)
        assert util.revision(new) == 2 and done["metadata"]["annotations"][util.REVISION_ANNOTATION] == "2"
        assert util.annotations_of(new)[util.CHANGE_CAUSE_ANNOTATION] == "upgrade"
        # Never more than replicas + maxSurge pods wanted, never fewer than replicas - maxUnavailable available.
        assert snapshots and max(total for total, _ in snapshots) <= 5
        assert min(avail for _, avail in snapshots) >= 3
        msgs = await events(cp)
        new_name, old_name = new["metadata"]["name"], old["metadata"]["name"]
        assert msgs[1:3] == [f"Scaled up replica set {new_name} from 0 to 1",
                             f"Scaled down replica set {old_name} from 4 to 3"]
        assert f"Scaled down replica set {old_name} from 1 to 0" in msgs
        assert all(m.startswith(("Scaled up replica set", "Scaled down replica set")) for m in msgs)


async def test_recreate_waits_for_old_pods(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _dc, _frs):
        created = await cp.client.create(DEPLOYMENTS, NS, deployment(strategy={"type": "Recreate"}))
        await wait_complete(cp)
        [old] = owned(cp, created)
        # A pod of the old ReplicaSet, still running after its ReplicaSet reports zero replicas.
        pod = {"metadata": {"name": "web-old-pod", "labels": dict(old["spec"]["template"]["metadata"]["labels"]),
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True,
                                                 "name": old["metadata"]["name"], "uid": old["metadata"]["uid"]}]},
               "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
        await cp.client.create(PODS, NS, pod)
        await eventually(lambda: cp.informers.informer(PODS).get(NS, "web-old-pod"), what="pod cached")
        await set_template(cp, "nginx:2")

        async def old_scaled_down() -> bool:
            rs = await cp.client.get(REPLICASETS, NS, old["metadata"]["name"])
            return util.replicas(rs) == 0 and util.status_replicas(rs) == 0
        await eventually(old_scaled_down, what="old replica set down")
        await asyncio.sleep(0.3)
        assert len(owned(cp, created)) == 1, "no new ReplicaSet while an old pod runs"
        await cp.client.delete(PODS, NS, "web-old-pod")
        done = await wait_complete(cp)
        old_now, new = owned(cp, created)
        assert util.replicas(old_now) == 0 and util.replicas(new) == 3
        assert done["metadata"]["annotations"][util.REVISION_ANNOTATION] == "2"
        msgs = await events(cp)
        assert msgs[1:] == [f"Scaled down replica set {old['metadata']['name']} from 3 to 0",
                            f"Scaled up replica set {new['metadata']['name']} from 0 to 3"]


async def test_rollback_by_template_restore_reuses_old_replica_set(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _dc, _frs):
        d = deployment()
        d["metadata"]["annotations"] = {util.CHANGE_CAUSE_ANNOTATION: "v1"}
        created = await cp.client.create(DEPLOYMENTS, NS, d)
        await wait_complete(cp)
        await set_template(cp, "nginx:2", cause="v2")
        await wait_complete(cp)
        first, second = owned(cp, created)
        assert [util.revision(first), util.revision(second)] == [1, 2]
        # What `kubectl rollout undo` sends: the old template without its hash label, and its annotations.
        template = util.deep_copy(first["spec"]["template"])
        del template["metadata"]["labels"][util.DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY]
        patch = [{"op": "replace", "path": "/spec/template", "value": template},
                 {"op": "replace", "path": "/metadata/annotations",
                  "value": {util.CHANGE_CAUSE_ANNOTATION: "v1", util.REVISION_ANNOTATION: "2"}}]
        await cp.client.patch(DEPLOYMENTS, NS, "web", patch, "json")

        async def rolled_back() -> bool:
            d = await get_d(cp)
            return complete(d) and d["metadata"]["annotations"].get(util.REVISION_ANNOTATION) == "3"
        await eventually(rolled_back, what="rolled back to the first template")
        rss = owned(cp, created)
        assert len(rss) == 2, "no new ReplicaSet for a template that already has one"
        by_name = {rs["metadata"]["name"]: rs for rs in rss}
        reused = by_name[first["metadata"]["name"]]
        assert util.replicas(reused) == 3 and util.replicas(by_name[second["metadata"]["name"]]) == 0
        ann = util.annotations_of(reused)
        assert ann[util.REVISION_ANNOTATION] == "3" and ann[util.REVISION_HISTORY_ANNOTATION] == "1"
        assert ann[util.CHANGE_CAUSE_ANNOTATION] == "v1"
        assert sorted(util.revision(rs) for rs in rss) == [2, 3]  # revision 1 is gone from the history


async def test_pause_scales_but_does_not_roll_out(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _dc, _frs):
        created = await cp.client.create(DEPLOYMENTS, NS, deployment())
        await wait_complete(cp)
        await cp.client.patch(DEPLOYMENTS, NS, "web", {"spec": {"paused": True}})

        async def paused_condition() -> Obj | None:
            c = util.get_condition((await get_d(cp)).get("status"), "Progressing")
            return c if c and c["reason"] == util.PAUSED_DEPLOY_REASON else None
        cond = await eventually(paused_condition, what="paused condition")
        assert (cond["status"], cond["message"]) == ("Unknown", "Deployment is paused")
        await set_template(cp, "nginx:2")
        await cp.client.patch(DEPLOYMENTS, NS, "web", {"spec": {"replicas": 5}})
        await eventually(lambda: [util.replicas(rs) for rs in owned(cp, created)] == [5], what="scaled while paused")
        await asyncio.sleep(0.3)
        assert len(owned(cp, created)) == 1, "paused: no rollout"
        await cp.client.patch(DEPLOYMENTS, NS, "web", {"spec": {"paused": False}})
        done = await wait_complete(cp)
        assert len(owned(cp, created)) == 2 and done["metadata"]["annotations"][util.REVISION_ANNOTATION] == "2"
        assert util.replicas(owned(cp, created)[1]) == 5


async def test_progress_deadline_exceeded(tmp_path: Path) -> None:
    # Pods of the first template are fine; the second template's never become available.
    def available(rs: Obj, n: int) -> int:
        image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
        return n if image == "nginx:1" else 0

    async with running(tmp_path, available) as (cp, _dc, _frs):
        created = await cp.client.create(DEPLOYMENTS, NS, deployment(progressDeadlineSeconds=1))
        await wait_complete(cp)
        await set_template(cp, "nginx:broken")

        async def timed_out() -> Obj | None:
            c = util.get_condition((await get_d(cp)).get("status"), "Progressing")
            return c if c and c["reason"] == util.TIMED_OUT_REASON else None
        cond = await eventually(timed_out, timeout=8.0, what="progress deadline exceeded")
        new = owned(cp, created)[-1]
        assert cond["status"] == "False"
        assert cond["message"] == f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.'
        d = await get_d(cp)
        assert d["status"]["availableReplicas"] >= 2  # the old pods kept the minimum available
        assert util.get_condition(d["status"], "Available")["status"] == "True"


async def test_revision_history_limit_cleans_oldest(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _dc, _frs):
        created = await cp.client.create(DEPLOYMENTS, NS, deployment(revisionHistoryLimit=1))
        await wait_complete(cp)
        for image in ("nginx:2", "nginx:3"):
            await set_template(cp, image)
            await wait_complete(cp)
        await eventually(lambda: len(owned(cp, created)) == 2, what="history trimmed to one old ReplicaSet")
        assert [util.revision(rs) for rs in owned(cp, created)] == [2, 3]
        images = [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in owned(cp, created)]
        assert images == ["nginx:2", "nginx:3"]


async def test_proportional_scaling_mid_rollout(tmp_path: Path) -> None:
    def available(rs: Obj, n: int) -> int:
        return n if rs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1" else 0

    async with running(tmp_path, available) as (cp, _dc, _frs):
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}}
        created = await cp.client.create(DEPLOYMENTS, NS, deployment(replicas=10, strategy=strategy))
        await wait_complete(cp)
        await set_template(cp, "nginx:2")
        await eventually(lambda: [util.replicas(rs) for rs in owned(cp, created)] == [10, 2], what="stuck rollout")
        await cp.client.patch(DEPLOYMENTS, NS, "web", {"spec": {"replicas": 20}})
        # 12 of 10+2 pods become 22 of 20+2: 10 -> 18 and 2 -> 4 (sync_test.go "deployment with surge pods" shape).
        await eventually(lambda: [util.replicas(rs) for rs in owned(cp, created)] == [18, 4], what="proportional")
        for rs in owned(cp, created):
            ann = util.annotations_of(rs)
            assert (ann[util.DESIRED_REPLICAS_ANNOTATION], ann[util.MAX_REPLICAS_ANNOTATION]) == ("20", "22")


async def test_hash_collision_bumps_collision_count(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _dc, _frs):
        # The Deployment's template as the API server will store it, to predict the ReplicaSet name.
        probe = await cp.client.create(DEPLOYMENTS, NS, deployment(name="probe"))
        template = probe["spec"]["template"]
        template["metadata"]["labels"] = {"app": "web"}
        taken = f"web-{util.compute_hash(template, None)}"
        squatter = {"metadata": {"name": taken, "labels": {"other": "x"}},
                    "spec": {"replicas": 0, "selector": {"matchLabels": {"other": "x"}},
                             "template": {"metadata": {"labels": {"other": "x"}},
                                          "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
        await cp.client.create(REPLICASETS, NS, squatter)
        await eventually(lambda: cp.informers.informer(REPLICASETS).get(NS, taken), what="squatter cached")
        created = await cp.client.create(DEPLOYMENTS, NS, deployment())
        done = await wait_complete(cp)
        assert done["status"]["collisionCount"] == 1
        [rs] = owned(cp, created)
        assert rs["metadata"]["name"] == f"web-{util.compute_hash(created['spec']['template'], 1)}" != taken


async def test_adopts_matching_orphan_and_releases_mismatch(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _dc, _frs):
        d = deployment()
        created = await cp.client.create(DEPLOYMENTS, NS, {**d, "spec": {**d["spec"], "paused": True}})
        template = util.deep_copy(created["spec"]["template"])
        template["metadata"]["labels"]["pod-template-hash"] = "orphan"
        orphan = {"metadata": {"name": "web-orphan", "labels": {"app": "web", "pod-template-hash": "orphan"}},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "orphan"}},
                           "template": template}}
        await cp.client.create(REPLICASETS, NS, orphan)
        await eventually(lambda: [r["metadata"]["name"] for r in owned(cp, created)] == ["web-orphan"],
                         what="orphan adopted")
        await cp.client.patch(DEPLOYMENTS, NS, "web", {"spec": {"paused": False}})
        await wait_complete(cp)
        assert [r["metadata"]["name"] for r in owned(cp, created)] == ["web-orphan"], "adopted RS is the new one"
        # Labels no longer matching the selector: the Deployment lets it go.
        await cp.client.patch(REPLICASETS, NS, "web-orphan", {"metadata": {"labels": {"app": "other"}}})
        await eventually(lambda: controller_ref(cp.informers.informer(REPLICASETS).get(NS, "web-orphan") or {})
                         is None, what="released")
