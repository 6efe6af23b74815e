"""Garbage collector over a real registry: background, foreground and orphan cascades, dangling owners."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.harness import ControlPlane, control_plane, eventually, started

from tinykube.api import errors
from tinykube.api.resources import DEPLOYMENTS, NODES, PODS, REPLICASETS, Resource, must
from tinykube.controllers.garbagecollector import GarbageCollector, monitored_resources

CONFIGMAPS = must("", "v1", "configmaps")
LEASES = must("coordination.k8s.io", "v1", "leases")
NS = "default"
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, GarbageCollector]]:
    async with started(tmp_path, lambda cp: GarbageCollector(cp.client, cp.informers)) as (cp, comps):
        yield cp, comps[0]


def owner_ref(obj: dict[str, Any], block: bool = True, controller: bool = True) -> dict[str, Any]:
    r = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
         "uid": obj["metadata"]["uid"]}
    if controller:
        r["controller"] = True
    if block:
        r["blockOwnerDeletion"] = True
    return r


async def make_rs(cp: ControlPlane, name: str, owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if owners:
        md["ownerReferences"] = owners
    return await cp.client.create(REPLICASETS, NS, {
        "metadata": md, "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}})


async def make_pod(cp: ControlPlane, name: str, owners: list[dict[str, Any]]) -> dict[str, Any]:
    return await cp.client.create(PODS, NS, {"metadata": {"name": name, "ownerReferences": owners},
                                             "spec": {"containers": [{"name": "c", "image": "nginx"}]}})


async def exists(cp: ControlPlane, res: Resource, name: str, ns: str | None = NS) -> dict[str, Any] | None:
    try:
        return await cp.client.get(res, ns, name)
    except errors.ApiError as ex:
        assert ex.code == 404
        return None


async def names(cp: ControlPlane, res: Resource = PODS) -> set[str]:
    items, _ = await cp.client.list(res, NS)
    return {o["metadata"]["name"] for o in items}


def refs_of(obj: dict[str, Any] | None) -> list[str]:
    assert obj is not None
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []]


def test_monitored_resources() -> None:
    plurals = {(r.group, r.plural) for r in monitored_resources()}
    assert {("", "pods"), ("apps", "replicasets"), ("apps", "deployments"), ("", "nodes"), ("", "namespaces"),
            ("", "configmaps"), ("coordination.k8s.io", "leases")} <= plurals
    assert ("", "events") not in plurals and ("events.k8s.io", "events") not in plurals


async def test_background_deletion_removes_dependents(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _gc):
        rs = await make_rs(cp, "web")
        for i in range(5):
            await make_pod(cp, f"web-{i}", [owner_ref(rs)])
        await make_pod(cp, "bystander", [])
        await cp.client.delete(REPLICASETS, NS, "web", propagation="Background")
        assert await exists(cp, REPLICASETS, "web") is None
        await eventually(lambda: _only(cp, {"bystander"}), what="dependents deleted")


async def _only(cp: ControlPlane, expected: set[str]) -> bool:
    return await names(cp) == expected


async def test_foreground_waits_for_blocking_dependents(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, gc):
        rs = await make_rs(cp, "web")
        for i in range(3):
            await make_pod(cp, f"web-{i}", [owner_ref(rs)])
            await cp.client.bind(NS, f"web-{i}", "node-1")  # a scheduled pod goes gracefully, not at once
        await cp.client.delete(REPLICASETS, NS, "web", propagation="Foreground")

        async def all_terminating() -> bool:
            items, _ = await cp.client.list(PODS, NS)
            return len(items) == 3 and all(p["metadata"].get("deletionTimestamp") for p in items)

        await eventually(all_terminating, what="pods deleted gracefully by the collector")
        await asyncio.sleep(0.2)
        owner = await exists(cp, REPLICASETS, "web")
        assert owner is not None, "the owner must wait for its blocking dependents"
        assert owner["metadata"]["deletionTimestamp"] and owner["metadata"]["finalizers"] == ["foregroundDeletion"]
        # The "kubelet" finishes two pods: still one blocking dependent.
        for i in range(2):
            await cp.client.delete(PODS, NS, f"web-{i}", grace_period=0)
        await asyncio.sleep(0.2)
        assert await exists(cp, REPLICASETS, "web") is not None
        await cp.client.delete(PODS, NS, "web-2", grace_period=0)
        await eventually(lambda: _gone(cp, REPLICASETS, "web"), what="owner deleted after its dependents")
        assert rs["metadata"]["uid"] not in gc.graph


async def _gone(cp: ControlPlane, res: Resource, name: str, ns: str | None = NS) -> bool:
    return await exists(cp, res, name, ns) is None


async def test_foreground_does_not_wait_for_non_blocking_dependents(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _gc):
        rs = await make_rs(cp, "web")
        # A dependent that cannot go yet (a finalizer holds it) and whose reference does not block.
        await cp.client.create(CONFIGMAPS, NS, {"metadata": {
            "name": "held", "finalizers": ["example.com/hold"], "ownerReferences": [owner_ref(rs, block=False)]}})
        await cp.client.delete(REPLICASETS, NS, "web", propagation="Foreground")
        await eventually(lambda: _gone(cp, REPLICASETS, "web"), what="owner deleted")
        cm = await exists(cp, CONFIGMAPS, "held")
        assert cm is not None and cm["metadata"].get("deletionTimestamp"), "the dependent was deleted too"
        await cp.client.patch(CONFIGMAPS, NS, "held", {"metadata": {"finalizers": None}})
        await eventually(lambda: _gone(cp, CONFIGMAPS, "held"), what="configmap gone")


async def test_orphan_keeps_dependents_without_the_reference(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _gc):
        rs = await make_rs(cp, "web")
        cm = await cp.client.create(CONFIGMAPS, NS, {"metadata": {"name": "other-owner"}})
        for i in range(3):
            await make_pod(cp, f"web-{i}", [owner_ref(rs), owner_ref(cm, block=False, controller=False)])
        await cp.client.delete(REPLICASETS, NS, "web", propagation="Orphan")
        await eventually(lambda: _gone(cp, REPLICASETS, "web"), what="owner deleted after orphaning")
        await asyncio.sleep(0.1)
        items, _ = await cp.client.list(PODS, NS)
        assert sorted(p["metadata"]["name"] for p in items) == ["web-0", "web-1", "web-2"]
        for p in items:
            assert refs_of(p) == [cm["metadata"]["uid"]]
            assert not p["metadata"].get("deletionTimestamp")


async def test_dependent_of_nonexistent_owner_is_deleted(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _gc):
        rs = await make_rs(cp, "web")
        await make_pod(cp, "real", [owner_ref(rs)])
        ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost",
                 "uid": "00000000-0000-0000-0000-000000000001", "controller": True}
        await make_pod(cp, "orphan-ghost", [ghost])
        # Same name as a live owner, other uid: the owner it names is gone too.
        await make_pod(cp, "orphan-stale-uid", [dict(owner_ref(rs), uid="00000000-0000-0000-0000-000000000002")])
        await eventually(lambda: _only(cp, {"real"}), what="dangling dependents deleted")
        await asyncio.sleep(0.1)
        assert await names(cp) == {"real"}
        assert await exists(cp, REPLICASETS, "web") is not None


async def test_dependent_with_another_live_owner_keeps_living(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _gc):
        a = await make_rs(cp, "a")
        b = await make_rs(cp, "b")
        await make_pod(cp, "shared", [owner_ref(a), owner_ref(b, controller=False)])
        await cp.client.delete(REPLICASETS, NS, "a")

        async def ref_removed() -> bool:
            return refs_of(await exists(cp, PODS, "shared")) == [b["metadata"]["uid"]]

        await eventually(ref_removed, what="dangling reference removed")
        pod = await exists(cp, PODS, "shared")
        assert pod is not None and not pod["metadata"].get("deletionTimestamp")
        # Then the last owner goes: so does the pod.
        await cp.client.delete(REPLICASETS, NS, "b")
        await eventually(lambda: _gone(cp, PODS, "shared"), what="pod deleted with its last owner")


async def test_waiting_owner_reference_is_removed_from_dependent_with_a_solid_owner(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _gc):
        a = await make_rs(cp, "a")
        b = await make_rs(cp, "b")
        await make_pod(cp, "shared", [owner_ref(a), owner_ref(b, controller=False)])
        await cp.client.delete(REPLICASETS, NS, "a", propagation="Foreground")
        await eventually(lambda: _gone(cp, REPLICASETS, "a"), what="foreground owner deleted")
        pod = await exists(cp, PODS, "shared")
        assert pod is not None and refs_of(pod) == [b["metadata"]["uid"]]


async def _make_chain(cp: ControlPlane, pods: int) -> tuple[dict[str, Any], dict[str, Any]]:
    dep = await cp.client.create(DEPLOYMENTS, NS, {"metadata": {"name": "web"}, "spec": {
        "replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}})
    rs = await make_rs(cp, "web-abc", [owner_ref(dep)])
    for i in range(pods):
        await make_pod(cp, f"web-abc-{i}", [owner_ref(rs)])
    return dep, rs


async def test_chain_cascades_in_background(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _gc):
        await _make_chain(cp, 4)
        await cp.client.delete(DEPLOYMENTS, NS, "web")
        await eventually(lambda: _gone(cp, REPLICASETS, "web-abc"), what="replicaset deleted")
        await eventually(lambda: _only(cp, set()), what="pods deleted")


async def test_chain_cascades_in_foreground(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _gc):
        await _make_chain(cp, 4)
        for i in range(4):
            await cp.client.bind(NS, f"web-abc-{i}", "node-1")
        await cp.client.delete(DEPLOYMENTS, NS, "web", propagation="Foreground")

        async def rs_waiting() -> bool:
            rs = await exists(cp, REPLICASETS, "web-abc")
            return rs is not None and rs["metadata"].get("finalizers") == ["foregroundDeletion"]

        await eventually(rs_waiting, what="replicaset deleted in foreground too")
        await eventually(lambda: _all_terminating(cp), what="pods terminating")
        assert await exists(cp, DEPLOYMENTS, "web") is not None
        for i in range(4):
            await cp.client.delete(PODS, NS, f"web-abc-{i}", grace_period=0)
        await eventually(lambda: _gone(cp, REPLICASETS, "web-abc"), what="replicaset deleted")
        await eventually(lambda: _gone(cp, DEPLOYMENTS, "web"), what="deployment deleted last")


async def _all_terminating(cp: ControlPlane) -> bool:
    items, _ = await cp.client.list(PODS, NS)
    return bool(items) and all(p["metadata"].get("deletionTimestamp") for p in items)


async def test_cluster_scoped_owner(tmp_path: Path) -> None:
    # A node's heartbeat Lease (namespaced) is owned by the Node (cluster-scoped), as the kubelet sets it.
    async with running(tmp_path) as (cp, _gc):
        node = await cp.client.create(NODES, None, {"metadata": {"name": "n1"}})
        await cp.client.create(NODES, None, {"metadata": {"name": "n2"}})
        for n in ("n1", "n2"):
            owner = await cp.client.get(NODES, None, n)
            await cp.client.create(LEASES, "kube-node-lease", {
                "metadata": {"name": n, "ownerReferences": [owner_ref(owner, block=False, controller=False)]},
                "spec": {"holderIdentity": n}})
        assert node["metadata"]["uid"]
        await cp.client.delete(NODES, None, "n1")
        await eventually(lambda: _gone(cp, LEASES, "n1", "kube-node-lease"), what="lease of deleted node")
        await asyncio.sleep(0.1)
        assert await exists(cp, LEASES, "n2", "kube-node-lease") is not None


async def test_owner_deleted_while_collector_was_down(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        rs = await make_rs(cp, "web")
        for i in range(3):
            await make_pod(cp, f"web-{i}", [owner_ref(rs)])
        await cp.client.delete(REPLICASETS, NS, "web")
        # An orphan-pending owner seen for the first time at startup is processed too.
        rs2 = await make_rs(cp, "keep")
        await make_pod(cp, "kept", [owner_ref(rs2)])
        await cp.client.delete(REPLICASETS, NS, "keep", propagation="Orphan")
        gc = GarbageCollector(cp.client, cp.informers)
        cp.informers.start()
        await cp.informers.wait_synced()
        gc.start()
        try:
            await eventually(lambda: _only(cp, {"kept"}), what="dependents of the vanished owner deleted")
            await eventually(lambda: _gone(cp, REPLICASETS, "keep"), what="orphaning owner finished")
            assert refs_of(await exists(cp, PODS, "kept")) == []
        finally:
            await gc.stop()


async def test_unobserved_owner_is_verified_with_the_api_server(tmp_path: Path) -> None:
    # ReplicaSets are not watched here, so the owner stays a virtual node the collector must check with a
    # live GET: while it exists the dependent stays, once it is gone the dependent goes.
    async with control_plane(tmp_path) as cp:
        gc = GarbageCollector(cp.client, cp.informers, ignored_resources={("apps", "replicasets")})
        cp.informers.start()
        await cp.informers.wait_synced()
        gc.start()
        try:
            rs = await make_rs(cp, "web")
            await make_pod(cp, "p", [owner_ref(rs)])
            await eventually(lambda: rs["metadata"]["uid"] in gc.graph, what="virtual owner node")
            await asyncio.sleep(0.3)
            assert await names(cp) == {"p"}
            node = gc.graph.get(rs["metadata"]["uid"])
            assert node is not None and node.virtual and list(node.dependents) != []
            await cp.client.delete(REPLICASETS, NS, "web")
            await eventually(lambda: _gone(cp, PODS, "p"), what="dependent of the vanished owner")
            await eventually(lambda: rs["metadata"]["uid"] not in gc.graph, what="virtual node dropped")
        finally:
            await gc.stop()


async def test_large_background_cascade_is_fast(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _gc):
        rs = await make_rs(cp, "big")
        ref = [owner_ref(rs)]
        n = 1500
        for i in range(n):
            await make_pod(cp, f"big-{i}", ref)
        await eventually(lambda: len(cp.informers.informer(PODS).cache) == n, what="pods observed")
        t0 = time.monotonic()
        await cp.client.delete(REPLICASETS, NS, "big")
        await eventually(lambda: not cp.informers.informer(PODS).cache, timeout=20, interval=0.01,
                         what="all pods deleted")
        elapsed = time.monotonic() - t0
        assert await names(cp) == set()
        assert elapsed < 5.0, f"{n} pods took {elapsed:.2f}s"
