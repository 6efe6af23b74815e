"""Simulated nodes over a real registry: registration, heartbeats, pod lifecycles, deletion and adoption."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from tests.harness import ControlPlane, control_plane, eventually

from tinykube.api import errors
from tinykube.api.meta import parse_timestamp
from tinykube.api.resources import EVENTS, NODES, PODS, must
from tinykube.machinery.informer import InformerFactory
from tinykube.sim import SimulatedNodes, Timing
from tinykube.sim import lifecycle as L

LEASES = must("coordination.k8s.io", "v1", "leases")
FAST = Timing(backoff_base=0.2, backoff_max=0.8, transient=0.05)


@asynccontextmanager
async def simulated(cp: ControlPlane, count: int, informers: InformerFactory | None = None,
                    **kw: Any) -> AsyncIterator[SimulatedNodes]:
    inf = informers or cp.informers
    kw.setdefault("timing", FAST)
    sim = SimulatedNodes(cp.client, inf, count, **kw)
    inf.start()
    await inf.wait_synced()
    sim.start()
    try:
        await asyncio.wait_for(sim.wait_registered(), 10)
        yield sim
    finally:
        await sim.stop()
        if informers is not None:
            await informers.stop()


def pod(name: str, node: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"nodeName": node, "containers": [{"name": "app", "image": "nginx:1.27"}]}
    s.update(spec)
    return {"metadata": {"name": name, "namespace": "default", "annotations": annotations or {}}, "spec": s}


async def get_pod(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    try:
        return await cp.client.get(PODS, "default", name)
    except errors.ApiError as ex:
        if ex.code == 404:
            return None
        raise


def cond(p: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in p["status"].get("conditions", []) if c["type"] == type_)


def cstatus(p: dict[str, Any], i: int = 0) -> dict[str, Any]:
    statuses: list[dict[str, Any]] = p["status"].get("containerStatuses") or [{}]
    return statuses[i]


async def pod_events(cp: ControlPlane, name: str) -> list[dict[str, Any]]:
    items, _ = await cp.client.list(EVENTS, "default")
    return [e for e in items if e["involvedObject"].get("name") == name]


async def wait_pod(cp: ControlPlane, name: str, pred: Any, what: str, timeout: float = 5.0) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        p = await get_pod(cp, name)
        return p if p is not None and pred(p) else None
    result: dict[str, Any] = await eventually(check, timeout, what=what)
    return result


def running_ready(p: dict[str, Any]) -> bool:
    return p["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))


async def test_nodes_register_with_status_and_leases(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 3, lease_seconds=0.3) as sim:
        nodes, _ = await cp.client.list(NODES)
        by_name = {n["metadata"]["name"]: n for n in nodes}
        assert sorted(by_name) == ["sim-node-0", "sim-node-1", "sim-node-2"]
        assert sorted(sim.live_nodes()) == sorted(by_name)
        n = by_name["sim-node-1"]
        labels = n["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == "sim-node-1"
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
        assert labels["type"] == "simulated" and labels["node.tinykube.io/simulated"] == "true"
        st = n["status"]
        assert st["capacity"]["cpu"] == "32" and st["capacity"]["memory"] == "256Gi" and st["capacity"]["pods"] == "110"
        assert "ephemeral-storage" in st["capacity"]
        assert st["allocatable"]["pods"] == "110"
        conds = {c["type"]: c for c in st["conditions"]}
        assert conds["Ready"]["status"] == "True" and conds["Ready"]["reason"] == "KubeletReady"
        assert conds["Ready"]["message"] == "kubelet is posting ready status"
        for t in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            assert conds[t]["status"] == "False"
        addrs = {a["type"]: a["address"] for a in st["addresses"]}
        assert addrs == {"InternalIP": "172.30.0.2", "Hostname": "sim-node-1"}
        info = st["nodeInfo"]
        assert info["kubeletVersion"] == "v1.32.0" and info["containerRuntimeVersion"] == "tinykube-sim://0.1"
        assert info["operatingSystem"] == "linux" and info["architecture"] == "amd64" and info["osImage"]
        assert n["spec"]["podCIDR"] == "10.244.1.0/24" and n["spec"]["podCIDRs"] == ["10.244.1.0/24"]
        # Leases: one per node, held by it, renewed.
        lease = await eventually(lambda: cp.client.get(LEASES, "kube-node-lease", "sim-node-2"), what="lease")
        assert lease["spec"]["holderIdentity"] == "sim-node-2" and lease["spec"]["leaseDurationSeconds"] == 40
        assert lease["metadata"]["ownerReferences"][0]["uid"] == by_name["sim-node-2"]["metadata"]["uid"]
        first = parse_timestamp(lease["spec"]["renewTime"])
        assert first is not None

        async def renewed() -> bool:
            again = await cp.client.get(LEASES, "kube-node-lease", "sim-node-2")
            t = parse_timestamp(again["spec"]["renewTime"])
            return t is not None and t > first
        await eventually(renewed, 3, what="lease renewal")


async def test_node_status_heartbeat(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 2, status_seconds=0.3) as _sim:
        def beat(n: dict[str, Any]) -> str:
            return str(next(c for c in n["status"]["conditions"] if c["type"] == "Ready")["lastHeartbeatTime"])
        first = await cp.client.get(NODES, None, "sim-node-1")

        async def refreshed() -> dict[str, Any] | None:
            n = await cp.client.get(NODES, None, "sim-node-1")
            return n if beat(n) > beat(first) else None
        n = await eventually(refreshed, 4, what="a newer lastHeartbeatTime")
        ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
        ready0 = next(c for c in first["status"]["conditions"] if c["type"] == "Ready")
        assert ready["lastTransitionTime"] == ready0["lastTransitionTime"]  # no transition, only a heartbeat


async def test_node_capacity_is_configurable_and_cidrs_widen(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 2, capacity={"cpu": "4", "pods": "20"}) as _sim:
        n = await cp.client.get(NODES, None, "sim-node-0")
        assert n["status"]["capacity"]["cpu"] == "4" and n["status"]["capacity"]["pods"] == "20"
        assert n["status"]["capacity"]["memory"] == "256Gi"
    from tinykube.sim.ipam import pod_cidr
    assert pod_cidr(255) == "10.244.255.0/24"
    assert pod_cidr(256) == "10.245.0.0/24"  # past 256 nodes the range widens beyond the /16
    assert len({pod_cidr(i) for i in range(1000)}) == 1000


async def test_pod_goes_running_and_ready_in_one_write(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 2) as _sim:
        writes: list[str] = []
        cp.registry.store.add_listener(
            lambda ev: writes.append(ev.type) if ev.key.endswith("/pods/default/web") else None)
        await cp.client.create(PODS, "default", pod("web", "sim-node-1"))
        p = await wait_pod(cp, "web", running_ready, "pod running and ready")
        st = p["status"]
        assert st["hostIP"] == "172.30.0.2" and st["hostIPs"] == [{"ip": "172.30.0.2"}]
        assert IPv4Address(st["podIP"]) in IPv4Network("10.244.1.0/24") and st["podIPs"] == [{"ip": st["podIP"]}]
        assert parse_timestamp(st["startTime"]) is not None
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"):
            assert cond(p, t)["status"] == "True", t
        cs = cstatus(p)
        assert cs["name"] == "app" and cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
        assert cs["containerID"].startswith("sim://") and cs["image"] == "docker.io/library/nginx:1.27"
        assert cs["imageID"].startswith("docker.io/library/nginx@sha256:")
        assert "startedAt" in cs["state"]["running"] and cs["lastState"] == {}
        await asyncio.sleep(0.3)
        assert writes == ["ADDED", "MODIFIED"], writes  # created, then one status write: nothing needless after
        evs = await eventually(lambda: _reasons(cp, "web", {"Pulling", "Pulled", "Created", "Started"}),
                               what="kubelet events")
        by_reason = {e["reason"]: e for e in evs}
        assert by_reason["Pulling"]["message"] == 'Pulling image "nginx:1.27"'
        assert by_reason["Created"]["message"] == "Created container: app"
        assert by_reason["Started"]["message"] == "Started container app"
        assert by_reason["Pulled"]["message"].startswith('Successfully pulled image "nginx:1.27" in ')
        assert all(e["source"] == {"component": "kubelet", "host": "sim-node-1"} for e in evs)


async def test_pod_bound_later_is_picked_up(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 2) as _sim:
        unbound = pod("late", "")
        del unbound["spec"]["nodeName"]
        await cp.client.create(PODS, "default", unbound)
        await asyncio.sleep(0.1)
        assert (await cp.client.get(PODS, "default", "late"))["status"]["phase"] == "Pending"
        await cp.client.bind("default", "late", "sim-node-0")
        p = await wait_pod(cp, "late", running_ready, "bound pod ready")
        assert p["status"]["hostIP"] == "172.30.0.1"
        assert cond(p, "PodScheduled")["status"] == "True"


async def _reasons(cp: ControlPlane, name: str, want: set[str]) -> list[dict[str, Any]] | None:
    evs = await pod_events(cp, name)
    return evs if want <= {e["reason"] for e in evs} else None


async def test_each_pod_gets_its_own_ip(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 1, events=False) as _sim:
        for i in range(5):
            await cp.client.create(PODS, "default", pod(f"p{i}", "sim-node-0"))
        ips = []
        for i in range(5):
            p = await wait_pod(cp, f"p{i}", running_ready, f"p{i} ready")
            ips.append(p["status"]["podIP"])
        assert len(set(ips)) == 5 and all(IPv4Address(ip) in IPv4Network("10.244.0.0/24") for ip in ips)
        assert "10.244.0.0" not in ips and "10.244.0.1" not in ips
        await asyncio.sleep(0.1)
        assert await pod_events(cp, "p0") == []  # events=False: the routine events are not written


async def test_start_and_ready_seconds(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 1) as _sim:
        t0 = time.monotonic()
        await cp.client.create(PODS, "default", pod("slow", "sim-node-0", {L.ANN_START: "0.4", L.ANN_READY: "0.4"}))
        p = await wait_pod(cp, "slow", lambda p: cstatus(p).get("state", {}).get("waiting", {}).get("reason")
                           == "ContainerCreating", "ContainerCreating")
        assert p["status"]["phase"] == "Pending" and p["status"]["podIP"] and p["status"]["startTime"]
        assert cond(p, "Ready")["status"] == "False" and cond(p, "Ready")["reason"] == "ContainersNotReady"
        assert cond(p, "PodReadyToStartContainers")["status"] == "True"
        p = await wait_pod(cp, "slow", lambda p: p["status"]["phase"] == "Running", "Running")
        t_running = time.monotonic() - t0
        assert cond(p, "Ready")["status"] == "False" and cstatus(p)["ready"] is False and cstatus(p)["started"] is True
        await wait_pod(cp, "slow", running_ready, "Ready")
        t_ready = time.monotonic() - t0
        assert 0.35 <= t_running < 0.8 + 0.4, t_running
        assert t_ready >= 0.75, t_ready
        assert t_ready - t_running >= 0.2, (t_running, t_ready)


async def test_never_ready(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 1) as _sim:
        await cp.client.create(PODS, "default", pod("nr", "sim-node-0", {L.ANN_NEVER_READY: "true"}))
        p = await wait_pod(cp, "nr", lambda p: p["status"].get("phase") == "Running", "Running")
        await asyncio.sleep(0.4)
        p = await cp.client.get(PODS, "default", "nr")
        assert p["status"]["phase"] == "Running"
        assert cond(p, "Ready")["status"] == "False" and cond(p, "ContainersReady")["status"] == "False"
        assert cond(p, "Ready")["message"] == "containers with unready status: [app]"
        assert cstatus(p)["ready"] is False and "running" in cstatus(p)["state"]


async def test_missing_images(tmp_path: Path) -> None:
    slow = Timing(backoff_base=0.4, backoff_max=0.8, transient=0.15)
    async with control_plane(tmp_path) as cp, simulated(cp, 1, timing=slow) as _sim:
        reasons: list[str] = []

        def record(ev: Any) -> None:
            if ev.key.endswith("/pods/default/mi") and ev.type == "MODIFIED":
                w = ((ev.entry.obj["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting")
                if w and (not reasons or reasons[-1] != w["reason"]):
                    reasons.append(w["reason"])
        cp.registry.store.add_listener(record)
        await cp.client.create(PODS, "default", pod("mi", "sim-node-0", {L.ANN_MISSING: "nginx:1.2*"}))
        p = await wait_pod(cp, "mi", lambda p: cstatus(p).get("state", {}).get("waiting", {}).get("reason")
                           == "ImagePullBackOff", "ImagePullBackOff")
        assert cstatus(p)["state"]["waiting"]["message"] == 'Back-off pulling image "nginx:1.27"'
        assert p["status"]["phase"] == "Pending" and cstatus(p)["ready"] is False
        assert p["status"]["podIP"] and cond(p, "Ready")["status"] == "False"
        p = await wait_pod(cp, "mi", lambda p: cstatus(p)["state"].get("waiting", {}).get("reason")
                           == "ErrImagePull", "ErrImagePull again")
        msg = cstatus(p)["state"]["waiting"]["message"]
        assert msg == L.pull_error("nginx:1.27") and "not found" in msg
        assert reasons[:3] == ["ErrImagePull", "ImagePullBackOff", "ErrImagePull"], reasons

        def counts(evs: list[dict[str, Any]]) -> dict[str, int]:
            out: dict[str, int] = {}
            for e in evs:
                out[e["message"]] = out.get(e["message"], 0) + e.get("count", 1)
            return out

        async def retried() -> dict[str, int] | None:
            c = counts(await pod_events(cp, "mi"))
            return c if c.get('Pulling image "nginx:1.27"', 0) >= 3 else None
        c = await eventually(retried, 5, what="pull retries")
        assert c["Error: ErrImagePull"] >= 2 and c["Error: ImagePullBackOff"] >= 2
        assert c['Back-off pulling image "nginx:1.27"'] >= 2
        assert any(m.startswith('Failed to pull image "nginx:1.27": ') for m in c)
        assert (await cp.client.get(PODS, "default", "mi"))["status"]["phase"] == "Pending"


async def test_crash_loop(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 1) as _sim:
        created = await cp.client.create(PODS, "default", pod("cr", "sim-node-0", {L.ANN_CRASH: "true"}))
        uid = created["metadata"]["uid"]
        p = await wait_pod(cp, "cr", lambda p: cstatus(p).get("state", {}).get("waiting", {}).get("reason")
                           == "CrashLoopBackOff", "CrashLoopBackOff")
        cs = cstatus(p)
        assert cs["state"]["waiting"]["message"] == f"back-off 200ms restarting failed container=app pod=cr_default({uid})"
        assert cs["lastState"]["terminated"]["reason"] == "Error" and cs["lastState"]["terminated"]["exitCode"] == 1
        assert cs["ready"] is False and cs["restartCount"] >= 1
        assert p["status"]["phase"] == "Running" and cond(p, "Ready")["status"] == "False"
        p = await wait_pod(cp, "cr", lambda p: cstatus(p)["restartCount"] >= 4, "restarts growing", timeout=6)
        assert p["status"]["phase"] == "Running"
        evs = await eventually(lambda: _reasons(cp, "cr", {"BackOff"}), what="BackOff event")
        backoff = next(e for e in evs if e["reason"] == "BackOff")
        assert backoff["type"] == "Warning"
        assert backoff["message"] == f"Back-off restarting failed container app in pod cr_default({uid})"


async def test_crash_with_restart_policy_never_fails(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 1) as _sim:
        await cp.client.create(PODS, "default", pod("once", "sim-node-0", {L.ANN_CRASH: "true"}, restartPolicy="Never"))
        p = await wait_pod(cp, "once", lambda p: p["status"].get("phase") == "Failed", "Failed")
        cs = cstatus(p)
        assert cs["state"]["terminated"]["exitCode"] == 1 and cs["restartCount"] == 0
        assert cond(p, "Ready")["reason"] == "PodCompleted"


async def test_deletion_waits_terminate_seconds(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 1) as _sim:
        await cp.client.create(PODS, "default", pod("term", "sim-node-0", {L.ANN_TERMINATE: "0.6"}))
        await cp.client.create(PODS, "default", pod("quick", "sim-node-0"))
        await wait_pod(cp, "term", running_ready, "term ready")
        await wait_pod(cp, "quick", running_ready, "quick ready")
        t0 = time.monotonic()
        await cp.client.delete(PODS, "default", "term")
        await cp.client.delete(PODS, "default", "quick")
        await eventually(lambda: _gone(cp, "quick"), 3, what="quick pod gone")
        p = await get_pod(cp, "term")
        assert p is not None and p["metadata"].get("deletionTimestamp"), "still Terminating"
        await eventually(lambda: _gone(cp, "term"), 3, what="terminating pod gone")
        assert time.monotonic() - t0 >= 0.5
        evs = await eventually(lambda: _reasons(cp, "term", {"Killing"}), what="Killing event")
        assert [e["message"] for e in evs if e["reason"] == "Killing"] == ["Stopping container app"]


async def _gone(cp: ControlPlane, name: str) -> bool:
    return await get_pod(cp, name) is None


async def test_restart_adopts_nodes_and_pods(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        first = InformerFactory(cp.client)
        async with simulated(cp, 2, informers=first) as _sim:
            await cp.client.create(PODS, "default", pod("keep", "sim-node-0"))
            before = await wait_pod(cp, "keep", running_ready, "ready")
            nodes_before = {n["metadata"]["name"]: n["metadata"]["uid"] for n in (await cp.client.list(NODES))[0]}
        # Stopped: the nodes stay.
        assert {n["metadata"]["name"] for n in (await cp.client.list(NODES))[0]} == set(nodes_before)
        second = InformerFactory(cp.client)
        async with simulated(cp, 2, informers=second) as sim2:
            nodes_after = {n["metadata"]["name"]: n["metadata"]["uid"] for n in (await cp.client.list(NODES))[0]}
            assert nodes_after == nodes_before  # adopted, not recreated
            await cp.client.create(PODS, "default", pod("new", "sim-node-0"))
            new = await wait_pod(cp, "new", running_ready, "new pod ready")
            assert new["status"]["podIP"] != before["status"]["podIP"]
            await asyncio.sleep(0.2)
            after = await cp.client.get(PODS, "default", "keep")
            # The adopted pod's status is what the node reports already: nothing was rewritten.
            assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
            assert sim2.tracked_pods() == 2


async def test_pods_of_deleted_and_foreign_nodes_are_left_alone(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp, simulated(cp, 2) as sim:
        await cp.client.delete(NODES, None, "sim-node-0")
        await eventually(lambda: "sim-node-0" not in sim.live_nodes(), what="node given up")
        await cp.client.create(PODS, "default", pod("orphan", "sim-node-0"))
        await cp.client.create(PODS, "default", pod("foreign", "real-node"))
        await cp.client.create(PODS, "default", pod("ok", "sim-node-1"))
        await wait_pod(cp, "ok", running_ready, "pod on a live node ready")
        await asyncio.sleep(0.2)
        for name in ("orphan", "foreign"):
            p = await cp.client.get(PODS, "default", name)
            assert p["status"]["phase"] == "Pending" and "containerStatuses" not in p["status"], name
        with_node = await get_pod(cp, "orphan")
        assert with_node is not None
        try:
            await cp.client.get(NODES, None, "sim-node-0")
            raise AssertionError("a deleted simulated node must not come back by itself")
        except errors.ApiError as ex:
            assert ex.code == 404


async def test_stop_is_clean_and_keeps_nodes(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        async with simulated(cp, 3) as sim:
            await cp.client.create(PODS, "default", pod("x", "sim-node-2", {L.ANN_CRASH: "true"}))
            await wait_pod(cp, "x", lambda p: p["status"].get("phase") == "Running", "running")
        assert all(t.done() for t in sim._tasks) or not sim._tasks
        rv = (await cp.client.get(PODS, "default", "x"))["metadata"]["resourceVersion"]
        await asyncio.sleep(0.5)  # a crash loop with sub-second back-off would have written by now
        assert (await cp.client.get(PODS, "default", "x"))["metadata"]["resourceVersion"] == rv
        assert len((await cp.client.list(NODES))[0]) == 3
