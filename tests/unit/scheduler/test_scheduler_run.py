"""The scheduler over a real registry: binding, spreading, failures with upstream's message, retries."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.harness import ControlPlane, control_plane, eventually

from tinykube.api.resources import EVENTS, NODES, PODS
from tinykube.scheduler import Scheduler

INSUFFICIENT_3 = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
                  "3 No preemption victims found for incoming pod.")


async def add_node(cp: ControlPlane, name: str, cpu: str = "2", memory: str = "4Gi", pods: str = "110",
                   labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None,
                   ready: str = "True") -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}}
    if taints:
        obj["spec"] = {"taints": taints}
    created = await cp.client.create(NODES, None, obj)
    alloc = {"cpu": cpu, "memory": memory, "pods": pods}
    created["status"] = {"allocatable": alloc, "capacity": alloc,
                         "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady"}]}
    return await cp.client.update(NODES, None, created, subresource="status")


async def add_pod(cp: ControlPlane, name: str, cpu: str = "100m", owner: str | None = None,
                  ns: str = "default", **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": name},
                           "spec": {"containers": [{"name": "c", "image": "x",
                                                    "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}}}],
                                    **spec}}
    if owner:
        obj["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                               "uid": f"uid-{owner}", "controller": True}]
    return await cp.client.create(PODS, ns, obj)


def node_of(cp: ControlPlane, name: str, ns: str = "default") -> str | None:
    p = cp.informers.informer(PODS).get(ns, name)
    return (p or {}).get("spec", {}).get("nodeName")


def condition(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    p = cp.informers.informer(PODS).get("default", name) or {}
    return next((c for c in p.get("status", {}).get("conditions") or [] if c["type"] == "PodScheduled"), None)


def message(cp: ControlPlane, name: str) -> str:
    cond = condition(cp, name)
    return str(cond["message"]) if cond else ""


def resource_version(cp: ControlPlane, name: str) -> str:
    return str((cp.informers.informer(PODS).get("default", name) or {})["metadata"]["resourceVersion"])


async def events_for(cp: ControlPlane, name: str, reason: str) -> list[dict[str, Any]]:
    items, _ = await cp.client.list(EVENTS, "default")
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


@pytest.fixture
async def cp(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    async with control_plane(tmp_path) as plane:
        yield plane


async def start(cp: ControlPlane, **kw: Any) -> Scheduler:
    s = Scheduler(cp.client, cp.informers, seed=7, **kw)
    cp.informers.start()
    await cp.informers.wait_synced()
    s.start()
    return s


async def test_binds_pending_pods_and_records_scheduled(cp: ControlPlane) -> None:
    await add_node(cp, "n1")
    await add_pod(cp, "before")  # pending before the scheduler starts
    s = await start(cp)
    try:
        await add_pod(cp, "after")
        await eventually(lambda: node_of(cp, "before") == "n1" and node_of(cp, "after") == "n1", what="bound")
        cond = condition(cp, "after")
        assert cond is not None and cond["status"] == "True"
        ev = await eventually(lambda: events_for(cp, "after", "Scheduled"), what="Scheduled event")
        assert ev[0]["message"] == "Successfully assigned default/after to n1"
        assert ev[0]["type"] == "Normal" and ev[0]["source"]["component"] == "default-scheduler"
    finally:
        await s.stop()


async def test_not_our_pods_are_left_alone(cp: ControlPlane) -> None:
    await add_node(cp, "n1")
    await add_node(cp, "n2")
    s = await start(cp)
    try:
        await add_pod(cp, "other", schedulerName="my-scheduler")
        await add_pod(cp, "pinned", nodeName="n2")
        await add_pod(cp, "mine")
        await eventually(lambda: node_of(cp, "mine"), what="mine bound")
        assert node_of(cp, "other") is None and node_of(cp, "pinned") == "n2"
        assert await events_for(cp, "pinned", "Scheduled") == []
        # the pinned pod's requests are counted on n2
        assert "default/pinned" in s.cache.nodes["n2"].pods
    finally:
        await s.stop()


async def test_spreads_one_owner_across_nodes(cp: ControlPlane) -> None:
    # n1 is far emptier: least-allocated alone would stack most pods there; spreading the owner wins
    await add_node(cp, "n1", cpu="64", memory="64Gi")
    await add_node(cp, "n2", cpu="2")
    await add_node(cp, "n3", cpu="2")
    s = await start(cp)
    try:
        for i in range(9):
            await add_pod(cp, f"web-{i}", owner="web")
        await eventually(lambda: all(node_of(cp, f"web-{i}") for i in range(9)), what="web bound")
        assert Counter(node_of(cp, f"web-{i}") for i in range(9)) == {"n1": 3, "n2": 3, "n3": 3}
    finally:
        await s.stop()


async def test_assumed_pods_count_before_the_informer_sees_the_binding(cp: ControlPlane) -> None:
    await add_node(cp, "n1", cpu="2")
    for i in range(3):
        await add_pod(cp, f"p{i}", cpu="1")
    s = await start(cp)  # all three are decided in one burst
    try:
        await eventually(lambda: sum(1 for i in range(3) if node_of(cp, f"p{i}")) == 2, what="two bound")
        await eventually(lambda: condition(cp, next(f"p{i}" for i in range(3) if not node_of(cp, f"p{i}"))),
                         what="the third marked unschedulable")
        assert sum(1 for i in range(3) if node_of(cp, f"p{i}")) == 2
    finally:
        await s.stop()


async def test_insufficient_cpu_then_a_big_node_arrives(cp: ControlPlane) -> None:
    for n in ("n1", "n2", "n3"):
        await add_node(cp, n, cpu="1")
    s = await start(cp, initial_backoff=0.2)
    try:
        await add_pod(cp, "big-0", cpu="4", owner="big")
        await add_pod(cp, "big-1", cpu="4", owner="big")
        await eventually(lambda: condition(cp, "big-0") and condition(cp, "big-1"), what="conditions")
        for name in ("big-0", "big-1"):
            cond = condition(cp, name)
            assert cond is not None
            assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", INSUFFICIENT_3)
            assert node_of(cp, name) is None
            ev = await eventually(lambda n=name: events_for(cp, n, "FailedScheduling"), what="FailedScheduling")
            assert ev[0]["type"] == "Warning" and ev[0]["message"] == INSUFFICIENT_3
            assert ev[0]["source"]["component"] == "default-scheduler"
        assert s.queue.unschedulable == {"default/big-0", "default/big-1"}
        rv = resource_version(cp, "big-0")
        await add_node(cp, "huge", cpu="16")
        await eventually(lambda: node_of(cp, "big-0") == "huge" and node_of(cp, "big-1") == "huge",
                         timeout=5, what="scheduled on the new node")
        assert resource_version(cp, "big-0") != rv
        cond = condition(cp, "big-0")
        assert cond is not None and cond["status"] == "True"
    finally:
        await s.stop()


class CountingClient:
    """The real local client, counting the writes the scheduler makes (every call goes through)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def patch(self, res: Any, ns: Any, name: str, body: Any, patch_type: str = "merge",
                    subresource: str = "", **kw: Any) -> Any:
        self.writes[f"patch {res.plural}/{subresource}"] += 1
        return await self.inner.patch(res, ns, name, body, patch_type, subresource, **kw)

    async def create(self, res: Any, ns: Any, obj: Any, **kw: Any) -> Any:
        self.writes[f"create {res.plural}"] += 1
        return await self.inner.create(res, ns, obj, **kw)


async def test_unchanged_failures_are_not_rewritten(cp: ControlPlane) -> None:
    await add_node(cp, "n1", cpu="1")
    client = CountingClient(cp.client)
    s = Scheduler(client, cp.informers, initial_backoff=0.05, max_backoff=0.05, flush_interval=0.05)
    cp.informers.start()
    await cp.informers.wait_synced()
    s.start()
    try:
        await add_pod(cp, "big", cpu="4")
        await eventually(lambda: condition(cp, "big"), what="condition")
        await eventually(lambda: s.queue.attempts("default/big") >= 5, what="periodic retries")
        await s.recorder.flush()
        # nothing changed between the retries: one condition write, one event, no event count updates
        assert client.writes == {"patch pods/status": 1, "create events": 1}
        # a change in the cluster (another node that does not help) is news: the next failure is reported again
        await add_node(cp, "n2", cpu="1")
        await eventually(lambda: message(cp, "big").startswith("0/2 "), what="new message")
        await s.recorder.flush()
        assert client.writes["patch pods/status"] == 2
    finally:
        await s.stop()


async def test_deleting_a_pod_frees_room(cp: ControlPlane) -> None:
    await add_node(cp, "n1", cpu="1")
    s = await start(cp, initial_backoff=0.1)
    try:
        await add_pod(cp, "first", cpu="800m")
        await eventually(lambda: node_of(cp, "first"), what="first bound")
        await add_pod(cp, "second", cpu="800m")
        await eventually(lambda: condition(cp, "second"), what="second unschedulable")
        assert message(cp, "second").startswith("0/1 nodes are available: 1 Insufficient cpu.")
        await cp.client.delete(PODS, "default", "first", grace_period=0)
        await eventually(lambda: node_of(cp, "second") == "n1", timeout=5, what="second bound after the delete")
    finally:
        await s.stop()


async def test_taints_and_tolerations(cp: ControlPlane) -> None:
    await add_node(cp, "tainted", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    await add_node(cp, "plain", cpu="1")
    s = await start(cp)
    try:
        for i in range(4):
            await add_pod(cp, f"plain-{i}", cpu="200m", owner="plain")
        for i in range(2):
            await add_pod(cp, f"tol-{i}", cpu="200m", owner="tol",
                          tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                        "effect": "NoSchedule"}])
        await eventually(lambda: all(node_of(cp, f"plain-{i}") for i in range(4))
                         and all(node_of(cp, f"tol-{i}") for i in range(2)), what="all bound")
        assert {node_of(cp, f"plain-{i}") for i in range(4)} == {"plain"}
        # the tolerating owner spreads over both nodes
        assert sorted(str(node_of(cp, f"tol-{i}")) for i in range(2)) == ["plain", "tainted"]
        await add_pod(cp, "nowhere", cpu="900m")
        await eventually(lambda: condition(cp, "nowhere"), what="nowhere unschedulable")
        assert message(cp, "nowhere") == (
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}. "
            "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
            "1 Preemption is not helpful for scheduling.")
    finally:
        await s.stop()


async def test_node_selector_and_node_readiness(cp: ControlPlane) -> None:
    await add_node(cp, "ssd", labels={"disk": "ssd"})
    await add_node(cp, "hdd", labels={"disk": "hdd"})
    await add_node(cp, "down", labels={"disk": "ssd"}, ready="False")
    s = await start(cp, initial_backoff=0.1)
    try:
        for i in range(4):
            await add_pod(cp, f"fast-{i}", nodeSelector={"disk": "ssd"})
        await eventually(lambda: all(node_of(cp, f"fast-{i}") for i in range(4)), what="fast bound")
        assert {node_of(cp, f"fast-{i}") for i in range(4)} == {"ssd"}
        await add_pod(cp, "tape", nodeSelector={"disk": "tape"})
        await eventually(lambda: condition(cp, "tape"), what="tape unschedulable")
        assert message(cp, "tape") == (
            "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
            "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: "
            "3 Preemption is not helpful for scheduling.")
        # a node update that makes a pod fit retries it: relabel hdd as tape
        hdd = await cp.client.get(NODES, None, "hdd")
        hdd["metadata"]["labels"]["disk"] = "tape"
        await cp.client.update(NODES, None, hdd)
        await eventually(lambda: node_of(cp, "tape") == "hdd", timeout=5, what="tape bound after relabel")
    finally:
        await s.stop()


async def test_no_nodes(cp: ControlPlane) -> None:
    s = await start(cp, initial_backoff=0.1)
    try:
        await add_pod(cp, "lonely")
        await eventually(lambda: condition(cp, "lonely"), what="condition")
        assert message(cp, "lonely") == "no nodes available to schedule pods"
        await add_node(cp, "n1")
        await eventually(lambda: node_of(cp, "lonely") == "n1", timeout=5, what="bound once a node exists")
    finally:
        await s.stop()


async def test_throughput(cp: ControlPlane) -> None:
    """A quick end-to-end rate over the in-process API (printed, not asserted: it depends on the machine)."""
    for i in range(50):
        await add_node(cp, f"n{i}", cpu="32", memory="64Gi")
    total = 1000
    for i in range(total):
        await add_pod(cp, f"p{i}", owner=f"rs{i % 5}")
    s = await start(cp)
    t0 = time.perf_counter()
    try:
        await eventually(lambda: s.scheduled >= total, timeout=60, what="all bound")
        elapsed = time.perf_counter() - t0
        print(f"\nscheduler: {total} pods on 50 nodes in {elapsed:.2f}s = {total / elapsed:.0f} pods/s (incl. binds)")
        per_node = Counter(r.node for r in s.cache.pods.values())
        assert len(per_node) == 50 and max(per_node.values()) - min(per_node.values()) <= 1
    finally:
        await s.stop()
