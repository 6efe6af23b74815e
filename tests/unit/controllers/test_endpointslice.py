"""EndpointSlice controller: desired endpoints and slice reconciliation (tables), the staleness tracker, and the
controller over a real registry (with the garbage collector for deletions).

The harness has no kubelet: pods get their IPs and Ready conditions by hand, through the status subresource.
"""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.harness import ControlPlane, control_plane, eventually, make_pod, set_ready
from tests.unit.controllers.test_endpoints import pod

from tinykube.api.meta import now_rfc3339
from tinykube.api.resources import NODES, PODS, must
from tinykube.controllers.endpoints import util as eputil
from tinykube.controllers.endpointslice import util
from tinykube.controllers.endpointslice.controller import EndpointSliceController
from tinykube.controllers.garbagecollector.collector import GarbageCollector

SERVICES = must("", "v1", "services")
ENDPOINTSLICES = must("discovery.k8s.io", "v1", "endpointslices")
Obj = dict[str, Any]
NOW = 1_700_000_000.0


# -- builders (pods as in test_endpoints.py) ---------------------------------------------------------------------------
def service(name: str = "web", ports: list[Obj] | None = None, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-svc-{name}",
                         "creationTimestamp": now_rfc3339(NOW - 3600)},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}] if ports is None else ports,
                     "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], **spec}}


NODE = {"metadata": {"name": "n1", "labels": {util.LABEL_ZONE: "zone-a"}}}


def nodes(name: str) -> Obj | None:
    return NODE if name == "n1" else None


def conditions(ready: bool, serving: bool, terminating: bool) -> Obj:
    return {"ready": ready, "serving": serving, "terminating": terminating}


# -- endpoints ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "p", "publish", "want"), [
    ("ready", pod("a"), False, conditions(True, True, False)),
    ("not ready", pod("a", ready=False), False, conditions(False, False, False)),
    ("no Ready condition", pod("a", ready=None), False, conditions(False, False, False)),
    ("terminating, still ready", pod("a", terminating=True), False, conditions(False, True, True)),
    ("terminating, not ready", pod("a", ready=False, terminating=True), False, conditions(False, False, True)),
    ("publishNotReadyAddresses", pod("a", ready=False), True, conditions(True, False, False)),
    ("publishNotReadyAddresses, terminating", pod("a", terminating=True), True, conditions(True, True, True)),
])
def test_endpoint_conditions(case: str, p: Obj, publish: bool, want: Obj) -> None:
    ep = util.pod_endpoint(p, service(publishNotReadyAddresses=publish), "IPv4", NODE)
    assert ep is not None and ep["conditions"] == want, case


def test_endpoint_fields() -> None:
    p = pod("a", hostname="a0", subdomain="web")
    assert util.pod_endpoint(p, service(), "IPv4", NODE) == {
        "addresses": ["10.0.0.1"], "conditions": conditions(True, True, False), "hostname": "a0",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"},
        "nodeName": "n1", "zone": "zone-a"}
    assert util.pod_endpoint(p, service(), "IPv6", NODE) is None
    assert "zone" not in (util.pod_endpoint(p, service(), "IPv4", {"metadata": {"name": "n1"}}) or {})


@pytest.mark.parametrize(("spec", "want"), [
    ({"ipFamilies": ["IPv4"]}, ["IPv4"]),
    ({"ipFamilies": ["IPv6", "IPv4"]}, ["IPv6", "IPv4"]),
    ({"ipFamilies": [], "clusterIP": "fd00::10"}, ["IPv6"]),
    ({"ipFamilies": [], "clusterIP": "10.96.0.1"}, ["IPv4"]),
    ({"ipFamilies": [], "clusterIP": "None"}, ["IPv4", "IPv6"]),
])
def test_address_types(spec: Obj, want: list[str]) -> None:
    assert util.address_types(service(**spec)) == want


def test_desired_endpoints_group_by_resolved_ports_and_skip_unknown_nodes() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                         {"name": "admin", "port": 81, "targetPort": 9000, "protocol": "TCP"}])
    pods = [pod("a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", "10.0.0.2", ports=[{"name": "web", "containerPort": 8080}]),
            pod("c", "10.0.0.3", ports=[{"name": "web", "containerPort": 9090}]),
            pod("d", "10.0.0.4"),
            pod("e", "10.0.0.5", node="gone"),
            pod("f", "10.0.0.6", phase="Failed"),
            pod("g", None)]
    desired, missing = util.desired_endpoints(svc, pods, nodes)
    assert missing == ["e"]
    groups = desired["IPv4"]
    admin = {"name": "admin", "port": 9000, "protocol": "TCP"}
    got = {tuple(p["port"] for p in g.ports): sorted(k[0][0] for k in g.endpoints) for g in groups.values()}
    assert got == {(8080, 9000): ["10.0.0.1", "10.0.0.2"], (9090, 9000): ["10.0.0.3"], (9000,): ["10.0.0.4"]}
    assert next(g for g in groups.values() if len(g.ports) == 1).ports == [admin]
    # publishNotReadyAddresses publishes a pod whatever its node.
    desired, missing = util.desired_endpoints(service(publishNotReadyAddresses=True), pods[4:5], nodes)
    assert missing == [] and len(next(iter(desired["IPv4"].values())).endpoints) == 1


# -- reconcile ----------------------------------------------------------------------------------------------------
SVC = service()
PORTS = [{"name": "", "port": 8080, "protocol": "TCP"}]


def desired_of(pods: list[Obj], svc: Obj = SVC) -> util.Desired:
    return util.desired_endpoints(svc, pods, nodes)[0]


def pods_n(n: int, start: int = 0, **kw: Any) -> list[Obj]:
    return [pod(f"p{i:04d}", f"10.1.{i // 250}.{i % 250 + 1}", **kw) for i in range(start, start + n)]


def stored(slices: list[Obj], first: int = 0) -> list[Obj]:
    """Slices as the API would hold them after creation: named, versioned."""
    out = []
    for i, s in enumerate(slices, first):
        s = copy.deepcopy(util.finalized(s, None))
        s["metadata"]["name"] = f"web-{i:05d}"
        s["metadata"]["resourceVersion"] = str(100 + i)
        s["metadata"]["uid"] = f"slice-{i}"
        out.append(s)
    return out


def names(slices: list[Obj]) -> list[str]:
    return sorted(s["metadata"]["name"] for s in slices)


def ep_count(slices: list[Obj]) -> list[int]:
    return sorted(len(s.get("endpoints") or []) for s in slices)


def test_reconcile_creates_one_slice_with_labels_and_owner() -> None:
    svc = copy.deepcopy(SVC)
    svc["metadata"]["labels"] = {"team": "a", util.LABEL_MANAGED_BY: "someone"}
    plan = util.reconcile(svc, desired_of(pods_n(3), svc), [])
    assert not plan.update and not plan.delete and len(plan.create) == 1
    s = plan.create[0]
    assert s["metadata"]["generateName"] == "web-" and s["metadata"]["namespace"] == "default"
    assert s["metadata"]["labels"] == {"team": "a", util.LABEL_SERVICE_NAME: "web",
                                       util.LABEL_MANAGED_BY: util.CONTROLLER_NAME}
    assert s["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                 "uid": "uid-svc-web", "controller": True, "blockOwnerDeletion": True}]
    assert s["addressType"] == "IPv4" and s["ports"] == PORTS
    assert [e["addresses"][0] for e in s["endpoints"]] == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]


def test_reconcile_splits_at_max_and_headless_label() -> None:
    plan = util.reconcile(service(clusterIP="None"), desired_of(pods_n(250), service(clusterIP="None")), [])
    assert ep_count(plan.create) == [50, 100, 100]
    assert all(s["metadata"]["labels"][eputil.HEADLESS_LABEL] == "" for s in plan.create)
    plan = util.reconcile(SVC, desired_of(pods_n(25)), [], max_per_slice=10)
    assert ep_count(plan.create) == [5, 10, 10]


def test_reconcile_placeholder() -> None:
    plan = util.reconcile(SVC, desired_of([]), [])
    assert len(plan.create) == 1 and not plan.create[0]["endpoints"] and not plan.create[0]["ports"]
    written = util.finalized(plan.create[0], None)
    assert written["endpoints"] is None and written["ports"] is None  # as upstream stores empty lists
    assert util.reconcile(SVC, desired_of([]), stored(plan.create)).empty
    # Endpoints arrive: the placeholder becomes the slice (an update, not a delete and a create).
    plan2 = util.reconcile(SVC, desired_of(pods_n(2)), stored(plan.create))
    assert not plan2.create and not plan2.delete and names(plan2.update) == ["web-00000"]
    assert plan2.update[0]["ports"] == PORTS and ep_count(plan2.update) == [2]
    # ... and back to a placeholder when they go.
    plan3 = util.reconcile(SVC, desired_of([]), stored(plan2.update))
    assert not plan3.create and not plan3.delete and names(plan3.update) == ["web-00000"]
    assert not plan3.update[0]["endpoints"] and not plan3.update[0]["ports"]


def test_reconcile_no_change_no_write() -> None:
    current = stored(util.reconcile(SVC, desired_of(pods_n(150)), []).create)
    assert util.reconcile(SVC, desired_of(pods_n(150)), current).empty


def test_reconcile_touches_only_the_slice_that_changed() -> None:
    current = stored(util.reconcile(SVC, desired_of(pods_n(250)), []).create)
    pods = pods_n(250)
    pods[7] = pod("p0007", "10.1.0.8", ready=False)
    plan = util.reconcile(SVC, desired_of(pods), current)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    changed = next(e for e in plan.update[0]["endpoints"] if e["targetRef"]["name"] == "p0007")
    assert changed["conditions"] == conditions(False, False, False)
    owner = next(s for s in current if any(e["targetRef"]["name"] == "p0007" for e in s["endpoints"]))
    assert plan.update[0]["metadata"]["name"] == owner["metadata"]["name"]


def test_reconcile_fills_updated_slices_before_creating() -> None:
    current = stored(util.reconcile(SVC, desired_of(pods_n(200)), []).create)
    assert ep_count(current) == [100, 100]
    # One pod goes and two come: the slice that lost one takes one, a new slice takes the other.
    pods = pods_n(200)[1:] + pods_n(2, start=500)
    plan = util.reconcile(SVC, desired_of(pods), current)
    assert len(plan.update) == 1 and ep_count(plan.update) == [100]
    assert len(plan.create) == 1 and ep_count(plan.create) == [1]


def test_reconcile_puts_leftovers_in_the_untouched_slice_they_fit_best() -> None:
    current = stored(util.reconcile(SVC, desired_of(pods_n(100)), []).create)
    current += stored(util.reconcile(SVC, desired_of(pods_n(60, start=100)), []).create, first=1)
    current += stored(util.reconcile(SVC, desired_of(pods_n(90, start=200)), []).create, first=2)
    assert ep_count(current) == [60, 90, 100]
    plan = util.reconcile(SVC, desired_of(pods_n(100) + pods_n(60, 100) + pods_n(90, 200) + pods_n(8, 400)), current)
    assert not plan.create and not plan.delete and names(plan.update) == ["web-00002"]  # 90 + 8, closest to full
    assert ep_count(plan.update) == [98]
    plan = util.reconcile(SVC, desired_of(pods_n(100) + pods_n(60, 100) + pods_n(90, 200) + pods_n(30, 400)), current)
    assert names(plan.update) == ["web-00001"] and ep_count(plan.update) == [90]  # only the 60 one has room


def test_reconcile_deletes_foreign_stale_and_unsupported_slices() -> None:
    current = stored(util.reconcile(SVC, desired_of(pods_n(3)), []).create)
    foreign = copy.deepcopy(current[0])
    foreign["metadata"].update(name="web-old", uid="old")
    foreign["metadata"]["ownerReferences"][0]["uid"] = "uid-of-an-earlier-web"
    v6 = copy.deepcopy(current[0])
    v6["metadata"].update(name="web-v6", uid="v6")
    v6["addressType"] = "IPv6"
    plan = util.reconcile(SVC, desired_of(pods_n(3)), [*current, foreign, v6])
    assert not plan.create and not plan.update and names(plan.delete) == ["web-old", "web-v6"]


def test_reconcile_port_change_reuses_the_slice_name() -> None:
    current = stored(util.reconcile(SVC, desired_of(pods_n(3)), []).create)
    svc = service(ports=[{"port": 80, "targetPort": 9090, "protocol": "TCP"}])
    plan = util.reconcile(svc, desired_of(pods_n(3), svc), current)
    assert not plan.create and not plan.delete and names(plan.update) == ["web-00000"]
    assert plan.update[0]["ports"] == [{"name": "", "port": 9090, "protocol": "TCP"}]
    assert plan.update[0]["metadata"]["resourceVersion"] == "100"


def test_reconcile_service_labels_follow() -> None:
    current = stored(util.reconcile(SVC, desired_of(pods_n(3)), []).create)
    svc = copy.deepcopy(SVC)
    svc["metadata"]["labels"] = {"tier": "front"}
    plan = util.reconcile(svc, desired_of(pods_n(3), svc), current)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    assert plan.update[0]["metadata"]["labels"]["tier"] == "front"
    assert plan.update[0]["endpoints"] == current[0]["endpoints"]


def test_reconcile_drops_duplicates() -> None:
    current = stored(util.reconcile(SVC, desired_of(pods_n(3)), []).create)
    dup = copy.deepcopy(current[0])
    dup["metadata"].update(name="web-dup", uid="dup")
    plan = util.reconcile(SVC, desired_of(pods_n(3)), [*current, dup])
    assert not plan.create and not plan.update and names(plan.delete) == ["web-dup"]


def test_finalized_trigger_time() -> None:
    s = util.reconcile(SVC, desired_of(pods_n(1)), []).create[0]
    t = 1_700_000_000.0
    assert util.finalized(s, t)["metadata"]["annotations"] == {eputil.LAST_CHANGE_TRIGGER_TIME: now_rfc3339(t)}
    assert "annotations" not in util.finalized(util.finalized(s, t), None)["metadata"]


# -- staleness ----------------------------------------------------------------------------------------------------
def sl(uid: str, rv: int) -> Obj:
    return {"metadata": {"uid": uid, "resourceVersion": str(rv)}}


def test_slice_tracker() -> None:
    t = util.SliceTracker()
    k = "default/web"
    assert not t.stale(k, []) and t.should_sync(k, sl("a", 1))
    t.wrote(k, sl("a", 5))
    assert t.stale(k, [])  # created, not in the cache yet
    assert t.stale(k, [sl("a", 4)])  # an older version
    assert not t.stale(k, [sl("a", 5)]) and not t.stale(k, [sl("a", 6)])
    assert not t.should_sync(k, sl("a", 5))  # the echo of the write
    assert t.should_sync(k, sl("a", 6))  # someone else's change
    t.expect_deletion(k, sl("a", 5))
    assert t.stale(k, [sl("a", 5)]) and not t.stale(k, [])
    assert t.handle_deletion(k, sl("a", 5))  # expected
    t.wrote(k, sl("b", 7))
    assert not t.handle_deletion(k, sl("b", 7))  # deleted by someone else
    assert not t.stale(k, [])
    t.wrote(k, sl("c", 8))
    t.forget(k)
    assert not t.stale(k, [])


# -- the controller over a real registry --------------------------------------------------------------------------
@asynccontextmanager
async def running(tmp_path: Path, max_per_slice: int = 100) -> AsyncIterator[tuple[ControlPlane,
                                                                                  EndpointSliceController]]:
    async with control_plane(tmp_path) as cp:
        await cp.client.create(NODES, None, copy.deepcopy(NODE))
        ctrl = EndpointSliceController(cp.client, cp.informers, max_endpoints_per_slice=max_per_slice)
        gc = GarbageCollector(cp.client, cp.informers)
        cp.informers.start()
        await cp.informers.wait_synced()
        ctrl.start()
        gc.start()
        try:
            yield cp, ctrl
        finally:
            await gc.stop()
            await ctrl.stop()


async def slices_of(cp: ControlPlane, svc: str = "web") -> list[Obj]:
    items, _ = await cp.client.list(ENDPOINTSLICES, "default", label_selector=f"{util.LABEL_SERVICE_NAME}={svc}")
    return [s for s in items if not s["metadata"].get("deletionTimestamp")]


def by_pod(slices: list[Obj]) -> dict[str, Obj]:
    return {e["targetRef"]["name"]: e for s in slices for e in s.get("endpoints") or []}


async def slices_where(cp: ControlPlane, pred: Any, what: str, svc: str = "web") -> list[Obj]:
    async def check() -> list[Obj] | None:
        slices = await slices_of(cp, svc)
        return slices if pred(slices) else None
    result: list[Obj] = await eventually(check, what=what)
    return result


async def make_service(cp: ControlPlane, name: str = "web", **spec: Any) -> Obj:
    body = {"metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}], **spec}}
    svc: Obj = await cp.client.create(SERVICES, "default", body)
    return svc


async def test_controller_slices_follow_pods(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, ctrl):
        svc = await make_service(cp)
        placeholder = await slices_where(cp, lambda s: len(s) == 1, "placeholder slice")
        assert placeholder[0]["endpoints"] is None and placeholder[0]["ports"] is None
        await make_pod(cp, "a", "10.0.0.1")
        await make_pod(cp, "b", "10.0.0.2")
        await make_pod(cp, "c", "10.0.0.3", ready=False)
        slices = await slices_where(cp, lambda s: len(by_pod(s)) == 3, "3 endpoints")
        assert len(slices) == 1 and slices[0]["metadata"]["name"] == placeholder[0]["metadata"]["name"]
        s = slices[0]
        assert s["addressType"] == "IPv4" and s["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
        assert s["metadata"]["labels"] == {util.LABEL_SERVICE_NAME: "web", util.LABEL_MANAGED_BY: util.CONTROLLER_NAME}
        assert s["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
        assert s["metadata"]["name"].startswith("web-")
        eps = by_pod(slices)
        assert eps["a"]["conditions"] == conditions(True, True, False) and eps["a"]["addresses"] == ["10.0.0.1"]
        assert eps["c"]["conditions"] == conditions(False, False, False)
        assert eps["a"]["nodeName"] == "n1" and eps["a"]["zone"] == "zone-a"
        assert eputil.LAST_CHANGE_TRIGGER_TIME in s["metadata"].get("annotations", {})
        # Readiness: the same slice is updated.
        later = time.time() + 10
        await set_ready(cp, "c", True, later)
        slices = await slices_where(cp, lambda s: by_pod(s)["c"]["conditions"]["ready"], "c ready")
        assert [x["metadata"]["name"] for x in slices] == [s["metadata"]["name"]]
        assert slices[0]["metadata"]["annotations"][eputil.LAST_CHANGE_TRIGGER_TIME] == now_rfc3339(later)
        # Terminating: kept, not ready, still serving.
        await cp.client.delete(PODS, "default", "a")
        slices = await slices_where(cp, lambda s: by_pod(s)["a"]["conditions"]["terminating"], "a terminating")
        assert by_pod(slices)["a"]["conditions"] == conditions(False, True, True)
        # publishNotReadyAddresses: everything ready.
        await cp.client.patch(SERVICES, "default", "web", {"spec": {"publishNotReadyAddresses": True}})
        await slices_where(cp, lambda s: by_pod(s)["a"]["conditions"] == conditions(True, True, True),
                           "published as ready")
        # Nothing changed: no write on a resync.
        before = await slices_of(cp)
        await ctrl.sync("default/web")
        assert await slices_of(cp) == before


async def test_controller_named_ports_give_separate_slices(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _ctrl):
        await make_service(cp, ports=[{"name": "http", "port": 80, "targetPort": "web"}])
        await make_pod(cp, "a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080}])
        await make_pod(cp, "b", "10.0.0.2", ports=[{"name": "web", "containerPort": 9090}])
        await make_pod(cp, "c", "10.0.0.3")
        slices = await slices_where(cp, lambda s: len(by_pod(s)) == 3, "3 endpoints")
        got = {s["metadata"]["name"]: (tuple(p["port"] for p in s["ports"] or []), sorted(by_pod([s])))
               for s in slices}
        assert sorted(got.values()) == [((), ["c"]), ((8080,), ["a"]), ((9090,), ["b"])]
        assert all(p["name"] == "http" for s in slices for p in s["ports"] or [])


async def test_controller_spreads_over_slices_and_gc_deletes_them(tmp_path: Path) -> None:
    async with running(tmp_path, max_per_slice=10) as (cp, _ctrl):
        for i in range(25):
            await make_pod(cp, f"p{i:02d}", f"10.0.1.{i + 1}")
        await make_service(cp)
        slices = await slices_where(cp, lambda s: len(by_pod(s)) == 25, "25 endpoints")
        assert ep_count(slices) == [5, 10, 10]
        # Scale down: slices shrink or go, none is created.
        names_before = {s["metadata"]["name"] for s in slices}
        for i in range(12, 25):
            await cp.client.delete(PODS, "default", f"p{i:02d}", grace_period=0)
        slices = await slices_where(cp, lambda s: len(by_pod(s)) == 12, "12 endpoints")
        assert {s["metadata"]["name"] for s in slices} <= names_before
        # A slice deleted by hand comes back.
        await cp.client.delete(ENDPOINTSLICES, "default", slices[0]["metadata"]["name"])
        await slices_where(cp, lambda s: len(by_pod(s)) == 12, "12 endpoints again")
        await cp.client.delete(SERVICES, "default", "web")
        async def none_left() -> bool:
            return not await slices_of(cp)
        await eventually(none_left, what="slices collected with the service")


async def test_controller_leaves_selectorless_services_alone(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, ctrl):
        await make_pod(cp, "a", "10.0.0.1")
        await make_service(cp, "manual", selector=None)
        mine = await cp.client.create(ENDPOINTSLICES, "default", {
            "metadata": {"name": "manual-1", "labels": {util.LABEL_SERVICE_NAME: "manual",
                                                        util.LABEL_MANAGED_BY: "me"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["192.168.0.1"]}], "ports": [{"port": 80}]})
        await make_service(cp, "ext", type="ExternalName", externalName="example.com")
        await make_service(cp, "web")
        await slices_where(cp, lambda s: len(by_pod(s)) == 1, "web slice")
        # A service that loses its selector keeps its slices as they were.
        await cp.client.patch(SERVICES, "default", "web", {"spec": {"selector": None}})
        before = await slices_of(cp)
        await set_ready(cp, "a", False, time.time() + 10)
        await eventually(lambda: (p := ctrl.pod_informer.get("default", "a")) is not None
                         and p["status"]["conditions"][0]["status"] == "False", what="cache has the change")
        await eventually(lambda: (svc := ctrl.service_informer.get("default", "web")) is not None
                         and eputil.selector_of(svc) is None, what="selector gone from the cache")
        for key in ("default/web", "default/manual", "default/ext"):
            await ctrl.sync(key)
        assert await slices_of(cp) == before
        assert await slices_of(cp, "manual") == [mine]
        assert await slices_of(cp, "ext") == []
