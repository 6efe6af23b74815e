"""ReplicaSet controller: upstream's deletion ranking, slow start, and the controller over a real registry."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from tests.harness import control_plane, eventually

from tinykube.api.meta import now_rfc3339
from tinykube.api.resources import EVENTS, PODS, REPLICASETS
from tinykube.controllers.replicaset import util
from tinykube.controllers.replicaset.controller import ReplicaSetController

NOW = 1_700_000_000.0


def pod(name: str, node: str = "", phase: str = "Pending", ready: bool | None = None, ready_since: float = 0,
        created: float = NOW - 100, restarts: int = 0, cost: int | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"metadata": {"name": name, "uid": name, "creationTimestamp": now_rfc3339(created)},
                         "spec": {"nodeName": node} if node else {}, "status": {"phase": phase}}
    if ready is not None:
        p["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                      "lastTransitionTime": now_rfc3339(ready_since or NOW - 50)}]
    if restarts:
        p["status"]["containerStatuses"] = [{"name": "c", "restartCount": restarts}]
    if cost is not None:
        p["metadata"]["annotations"] = {util.DELETION_COST: str(cost)}
    return p


# Each case: (the pod that must be deleted first, the other pod) — upstream's TestSortingActivePodsWithRanks order.
RANK_CASES = [
    ("unscheduled before scheduled", pod("a"), pod("b", node="n1")),
    ("pending before running", pod("a", node="n1", phase="Pending"), pod("b", node="n1", phase="Running")),
    ("unknown before running", pod("a", node="n1", phase="Unknown"), pod("b", node="n1", phase="Running")),
    ("not ready before ready", pod("a", node="n1", phase="Running", ready=False),
     pod("b", node="n1", phase="Running", ready=True)),
    ("lower deletion cost first", pod("a", node="n1", phase="Running", ready=True, cost=-10),
     pod("b", node="n1", phase="Running", ready=True, cost=10)),
    ("ready for less time first", pod("a", node="n2", phase="Running", ready=True, ready_since=NOW - 10),
     pod("b", node="n3", phase="Running", ready=True, ready_since=NOW - 1000)),
    ("more restarts first", pod("a", node="n2", phase="Running", ready=True, restarts=5),
     pod("b", node="n3", phase="Running", ready=True, restarts=1)),
    ("newer before older", pod("a", node="n2", phase="Running", ready=True, created=NOW - 10),
     pod("b", node="n3", phase="Running", ready=True, created=NOW - 5000)),
]


@pytest.mark.parametrize("name,first,second", RANK_CASES, ids=[c[0] for c in RANK_CASES])
def test_deletion_ranking(name: str, first: dict[str, Any], second: dict[str, Any]) -> None:
    for order in ([first, second], [second, first]):
        assert util.pods_to_delete(order, order, 1, now=NOW)[0]["metadata"]["name"] == "a", name


def test_doubled_up_pods_go_first() -> None:
    a = pod("a", node="n1", phase="Running", ready=True)
    b = pod("b", node="n1", phase="Running", ready=True)
    c = pod("c", node="n2", phase="Running", ready=True)
    chosen = {p["metadata"]["name"] for p in util.pods_to_delete([c, a, b], [a, b, c], 1, now=NOW)}
    assert chosen <= {"a", "b"}


def test_ready_time_compared_by_log_buckets() -> None:
    # 300 s and 400 s ready fall in the same power-of-two bucket: the next rank (restarts) decides.
    a = pod("a", node="n1", phase="Running", ready=True, ready_since=NOW - 400, restarts=3)
    b = pod("b", node="n2", phase="Running", ready=True, ready_since=NOW - 300)
    assert util.pods_to_delete([b, a], [a, b], 1, now=NOW)[0]["metadata"]["name"] == "a"


def test_slow_start_batches() -> None:
    assert util.slow_start_batches(10) == [1, 2, 4, 3]
    assert util.slow_start_batches(1) == [1]
    assert util.slow_start_batches(0) == []
    assert sum(util.slow_start_batches(500)) == 500


def test_status_counts_and_availability() -> None:
    rs = {"spec": {"minReadySeconds": 30, "template": {"metadata": {"labels": {"app": "x", "tier": "t"}}}}}
    pods = [pod("a", phase="Running", ready=True, ready_since=NOW - 100),
            pod("b", phase="Running", ready=True, ready_since=NOW - 5),
            pod("c", phase="Running", ready=False)]
    pods[0]["metadata"]["labels"] = {"app": "x", "tier": "t"}
    pods[1]["metadata"]["labels"] = {"app": "x"}
    st = util.calculate_status(rs, pods, NOW)
    assert st == {"replicas": 3, "fullyLabeledReplicas": 1, "readyReplicas": 2, "availableReplicas": 1}
    assert util.next_availability_check(rs, pods, NOW) == pytest.approx(25)


def test_running_counts_agree_with_a_full_walk() -> None:
    """A PodTally fed only the pods that changed matches calculate_status over the claimed pods, at every step."""
    import random

    from tinykube.api.selectors import from_label_selector_object
    rng = random.Random(7)
    uid = "rs-uid"
    rs = {"spec": {"selector": {"matchLabels": {"app": "x"}},
                   "template": {"metadata": {"labels": {"app": "x", "tier": "t"}}}}}
    sel = from_label_selector_object(rs["spec"]["selector"])
    tmpl = rs["spec"]["template"]["metadata"]["labels"]
    pods: dict[str, dict[str, Any]] = {}
    tally = util.PodTally(b"sig")

    def random_pod(name: str) -> dict[str, Any]:
        p = pod(name, phase=rng.choice(["Pending", "Running", "Succeeded", "Failed"]),
                ready=rng.choice([None, True, False]))
        p["metadata"]["labels"] = rng.choice([{"app": "x", "tier": "t"}, {"app": "x"}, {"app": "y"}])
        owner = rng.choice([uid, uid, uid, "other", None])
        if owner:
            p["metadata"]["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "ReplicaSet"}]
        if rng.random() < 0.1:
            p["metadata"]["deletionTimestamp"] = now_rfc3339(NOW)
        return p

    for _step in range(400):
        name = f"p{rng.randrange(40)}"
        if name in pods and rng.random() < 0.3:
            del pods[name]
            tally.set(name, util.contribution(None, uid, sel.matches, tmpl))
        else:
            pods[name] = random_pod(name)
            tally.set(name, util.contribution(pods[name], uid, sel.matches, tmpl))
        claimed = [p for p in pods.values() if util.is_active(p) and sel.matches(p["metadata"]["labels"])
                   and (p["metadata"].get("ownerReferences") or [{}])[0].get("uid") == uid]
        want = util.calculate_status(rs, claimed, NOW)
        mismatched = sum(1 for p in pods.values() if util.is_active(p) and not sel.matches(p["metadata"]["labels"])
                         and (p["metadata"].get("ownerReferences") or [{}])[0].get("uid") == uid)
        assert tally.counts == [want["replicas"], want["fullyLabeledReplicas"], want["readyReplicas"], mismatched]
        assert want["availableReplicas"] == want["readyReplicas"]  # minReadySeconds 0
    assert tally.replicas > 0 and tally.mismatched >= 0


def replicaset(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}, "annotations": {"sim.tinykube.io/x": "1"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def _pods(cp: Any, app: str, active_only: bool = True) -> list[dict[str, Any]]:
    items, _ = await cp.client.list(PODS, "default", label_selector=f"app={app}")
    return [p for p in items if not active_only or not p["metadata"].get("deletionTimestamp")]


async def test_controller_creates_scales_and_reports(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        rsc = ReplicaSetController(cp.client, cp.informers)
        cp.informers.start()
        await cp.informers.wait_synced()
        rsc.start()
        try:
            rs = await cp.client.create(REPLICASETS, "default", replicaset("web", 7))
            pods = await eventually(lambda: _pods_len(cp, "web", 7), what="7 pods")
            for p in pods:
                assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", p["metadata"]["name"])
                ref = p["metadata"]["ownerReferences"][0]
                assert ref["uid"] == rs["metadata"]["uid"] and ref["controller"] and ref["blockOwnerDeletion"]
                assert p["metadata"]["annotations"] == {"sim.tinykube.io/x": "1"}
            # Give the controller time to over-create if expectations were broken.
            await eventually(lambda: _status(cp, "web", "replicas", 7), what="status.replicas 7")
            assert len(await _pods(cp, "web")) == 7
            # Make three pods ready: readyReplicas/availableReplicas follow.
            for p in pods[:3]:
                p2 = copy.deepcopy(p)
                p2["status"].update({"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now_rfc3339()}]})
                await cp.client.update(PODS, "default", p2, subresource="status")
            await eventually(lambda: _status(cp, "web", "availableReplicas", 3), what="3 available")
            cur = await cp.client.get(REPLICASETS, "default", "web")
            assert cur["status"]["readyReplicas"] == 3 and cur["status"]["observedGeneration"] == 1
            # Scale down to 3: the not-ready pods go first.
            await cp.client.patch(REPLICASETS, "default", "web", {"spec": {"replicas": 3}})
            left = await eventually(lambda: _pods_len(cp, "web", 3), what="3 pods left")
            assert {p["metadata"]["name"] for p in left} == {p["metadata"]["name"] for p in pods[:3]}
            await eventually(lambda: _status(cp, "web", "observedGeneration", 2), what="observedGeneration 2")
            await rsc.recorder.flush()
            evs, _ = await cp.client.list(EVENTS, "default")
            reasons = [e["reason"] for e in evs if e["involvedObject"]["name"] == "web"]
            assert reasons.count("SuccessfulCreate") == 7 and reasons.count("SuccessfulDelete") == 4
            msgs = {e["message"] for e in evs if e["reason"] == "SuccessfulCreate"}
            assert msgs == {f"Created pod: {p['metadata']['name']}" for p in pods}
        finally:
            await rsc.stop()


async def test_controller_adopts_orphans_and_releases_mismatches(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        orphan = {"metadata": {"name": "stray", "labels": {"app": "api"}},
                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        await cp.client.create(PODS, "default", orphan)
        rsc = ReplicaSetController(cp.client, cp.informers)
        cp.informers.start()
        await cp.informers.wait_synced()
        rsc.start()
        try:
            rs = await cp.client.create(REPLICASETS, "default", replicaset("api", 2))
            pods = await eventually(lambda: _pods_len(cp, "api", 2), what="2 pods")
            names = {p["metadata"]["name"] for p in pods}
            assert "stray" in names  # adopted, so only one new pod was created
            stray = await cp.client.get(PODS, "default", "stray")
            assert stray["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
            # Relabel a pod: the RS releases it and makes a replacement.
            await cp.client.patch(PODS, "default", "stray", {"metadata": {"labels": {"app": "other"}}})

            async def released() -> bool:
                p = await cp.client.get(PODS, "default", "stray")
                return not p["metadata"].get("ownerReferences") and len(await _pods(cp, "api")) == 2
            await eventually(released, what="stray released and replaced")
        finally:
            await rsc.stop()


async def _pods_len(cp: Any, app: str, n: int) -> list[dict[str, Any]] | None:
    ps = await _pods(cp, app)
    return ps if len(ps) == n else None


async def _status(cp: Any, name: str, field: str, value: int) -> bool:
    rs = await cp.client.get(REPLICASETS, "default", name)
    return bool((rs.get("status") or {}).get(field, 0) == value)
