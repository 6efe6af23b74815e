"""Endpoints controller: the pure rules (tables) and the controller over a real registry.

The harness has no kubelet: pods get their IPs and Ready conditions by hand, through the status subresource.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.harness import ControlPlane, control_plane, eventually, make_pod, set_ready, started

from tinykube.api import errors
from tinykube.api.meta import now_rfc3339
from tinykube.api.resources import PODS, must
from tinykube.client.local import LocalClient
from tinykube.controllers.endpoints import util
from tinykube.controllers.endpoints.controller import CacheBehind, EndpointsController

SERVICES = must("", "v1", "services")
ENDPOINTS = must("", "v1", "endpoints")
NOW = 1_700_000_000.0
Obj = dict[str, Any]


# -- builders -----------------------------------------------------------------------------------------------------
def pod(name: str, ip: str | None = "10.0.0.1", ready: bool | None = True, phase: str = "Running",
        node: str = "n1", labels: dict[str, str] | None = None, ports: list[Obj] | None = None,
        terminating: bool = False, ns: str = "default", ready_at: float = NOW - 60, **spec: Any) -> Obj:
    p: Obj = {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels or {"app": "web"}},
              "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx", "ports": ports or []}],
                       **spec},
              "status": {"phase": phase}}
    if ip:
        p["status"]["podIP"] = ip
        p["status"]["podIPs"] = [{"ip": ip}]
    if ready is not None:
        p["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                      "lastTransitionTime": now_rfc3339(ready_at)}]
    if terminating:
        p["metadata"]["deletionTimestamp"] = now_rfc3339(NOW)
    return p


def service(name: str = "web", selector: dict[str, str] | None = None, ports: list[Obj] | None = None,
            ns: str = "default", **spec: Any) -> Obj:
    s: Obj = {"metadata": {"name": name, "namespace": ns, "uid": f"uid-svc-{name}",
                           "creationTimestamp": now_rfc3339(NOW - 3600)},
              "spec": {"selector": {"app": "web"} if selector is None else selector,
                       "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}] if ports is None else ports,
                       "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], **spec}}
    return s


def ref(name: str, ns: str = "default") -> Obj:
    return {"kind": "Pod", "namespace": ns, "name": name, "uid": f"uid-{name}"}


# -- which pods count ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "p", "include_terminating", "want"), [
    ("running with an IP", pod("a"), False, True),
    ("not ready still counts", pod("a", ready=False), False, True),
    ("no IP", pod("a", ip=None), False, False),
    ("podIP without podIPs", {**pod("a", ip=None), "status": {"phase": "Running", "podIP": "10.0.0.9"}}, False, True),
    ("succeeded", pod("a", phase="Succeeded"), True, False),
    ("failed", pod("a", phase="Failed"), True, False),
    ("terminating, not tolerated", pod("a", terminating=True), False, False),
    ("terminating, tolerated", pod("a", terminating=True), True, True),
    ("pending with an IP", pod("a", phase="Pending", ready=None), False, True),
])
def test_should_be_endpoint(case: str, p: Obj, include_terminating: bool, want: bool) -> None:
    assert util.should_be_endpoint(p, include_terminating) is want, case


# -- ports --------------------------------------------------------------------------------------------------------
NAMED = [{"name": "web", "containerPort": 8080, "protocol": "TCP"}, {"name": "dns", "containerPort": 53,
                                                                     "protocol": "UDP"}]


@pytest.mark.parametrize(("case", "p", "sp", "want"), [
    ("numeric targetPort", pod("a"), {"port": 80, "targetPort": 9376, "protocol": "TCP"}, 9376),
    ("no targetPort: the port", pod("a"), {"port": 80, "protocol": "TCP"}, 80),
    ("named, found", pod("a", ports=NAMED), {"port": 80, "targetPort": "web", "protocol": "TCP"}, 8080),
    ("named, protocol defaults to TCP", pod("a", ports=[{"name": "web", "containerPort": 81}]),
     {"port": 80, "targetPort": "web"}, 81),
    ("named, other protocol", pod("a", ports=NAMED), {"port": 53, "targetPort": "dns", "protocol": "TCP"}, None),
    ("named, UDP", pod("a", ports=NAMED), {"port": 53, "targetPort": "dns", "protocol": "UDP"}, 53),
    ("named, missing", pod("a", ports=NAMED), {"port": 80, "targetPort": "metrics", "protocol": "TCP"}, None),
    ("named, in a sidecar", pod("a", initContainers=[{"name": "s", "image": "x", "restartPolicy": "Always",
                                                      "ports": [{"name": "side", "containerPort": 7000}]}]),
     {"port": 80, "targetPort": "side", "protocol": "TCP"}, 7000),
    ("named, in a plain init container", pod("a", initContainers=[{"name": "s", "image": "x",
                                                                   "ports": [{"name": "side", "containerPort": 7000}]}]),
     {"port": 80, "targetPort": "side", "protocol": "TCP"}, None),
])
def test_find_port(case: str, p: Obj, sp: Obj, want: int | None) -> None:
    assert util.find_port(p, sp) == want, case


# -- addresses ----------------------------------------------------------------------------------------------------
def test_endpoint_address_fields_and_hostname_rule() -> None:
    svc = service()
    assert util.endpoint_address(svc, pod("a")) == {"ip": "10.0.0.1", "nodeName": "n1", "targetRef": ref("a")}
    named = pod("a", hostname="a0", subdomain="web")
    assert util.endpoint_address(svc, named) == {"ip": "10.0.0.1", "hostname": "a0", "nodeName": "n1",
                                                 "targetRef": ref("a")}
    assert "hostname" not in (util.endpoint_address(svc, pod("a", hostname="a0", subdomain="other")) or {})
    assert "hostname" not in (util.endpoint_address(svc, pod("a", subdomain="web")) or {})
    assert "hostname" not in (util.endpoint_address(service(ns="other"), pod("a", hostname="a0", subdomain="web"))
                              or {})


def test_endpoint_address_picks_the_service_family() -> None:
    dual = pod("a")
    dual["status"]["podIPs"] = [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]
    assert (util.endpoint_address(service(ipFamilies=["IPv6"]), dual) or {})["ip"] == "fd00::1"
    assert (util.endpoint_address(service(), dual) or {})["ip"] == "10.0.0.1"
    assert util.endpoint_address(service(ipFamilies=["IPv6"]), pod("b")) is None
    legacy = service(ipFamilies=[], clusterIP="fd00:96::1")
    assert (util.endpoint_address(legacy, dual) or {})["ip"] == "fd00::1"
    headless = service(ipFamilies=[], clusterIP="None")
    assert (util.endpoint_address(headless, dual) or {})["ip"] == "10.0.0.1"


# -- subsets ------------------------------------------------------------------------------------------------------
def addr(name: str, ip: str) -> Obj:
    return {"ip": ip, "nodeName": "n1", "targetRef": ref(name)}


def test_subsets_split_ready_and_not_ready_and_skip_what_does_not_count() -> None:
    pods = [pod("b", "10.0.0.2"), pod("a", "10.0.0.1"), pod("c", "10.0.0.3", ready=False),
            pod("d", "10.0.0.4", terminating=True), pod("e", None), pod("f", "10.0.0.6", phase="Succeeded"),
            pod("g", "10.0.0.7", ready=None)]
    assert util.endpoint_subsets(service(), pods) == [{
        "addresses": [addr("a", "10.0.0.1"), addr("b", "10.0.0.2")],
        "notReadyAddresses": [addr("c", "10.0.0.3"), addr("g", "10.0.0.7")],
        "ports": [{"port": 8080, "protocol": "TCP"}]}]


def test_subsets_publish_not_ready_addresses() -> None:
    pods = [pod("a", "10.0.0.1"), pod("c", "10.0.0.3", ready=False), pod("d", "10.0.0.4", terminating=True)]
    got = util.endpoint_subsets(service(publishNotReadyAddresses=True), pods)
    assert got == [{"addresses": [addr("a", "10.0.0.1"), addr("c", "10.0.0.3"), addr("d", "10.0.0.4")],
                    "ports": [{"port": 8080, "protocol": "TCP"}]}]


def test_subsets_named_target_port_resolves_per_pod() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP", "appProtocol": "http"},
                         {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"}])
    pods = [pod("a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", "10.0.0.2", ports=[{"name": "web", "containerPort": 9090}]),
            pod("c", "10.0.0.3")]
    got = util.endpoint_subsets(svc, pods)
    metrics = {"name": "metrics", "port": 9100, "protocol": "TCP"}
    assert got == [
        {"addresses": [addr("a", "10.0.0.1")],
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]},
        {"addresses": [addr("b", "10.0.0.2")],
         "ports": [{"name": "http", "port": 9090, "protocol": "TCP", "appProtocol": "http"}]},
        {"addresses": [addr("a", "10.0.0.1"), addr("b", "10.0.0.2"), addr("c", "10.0.0.3")], "ports": [metrics]},
    ]


def test_subsets_without_ports() -> None:
    pods = [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False)]
    assert util.endpoint_subsets(service(ports=[]), pods) == []  # a cluster IP and no ports: nothing to reach
    assert util.endpoint_subsets(service(ports=[], clusterIP="None"), pods) == [
        {"addresses": [addr("a", "10.0.0.1")], "notReadyAddresses": [addr("b", "10.0.0.2")]}]


@pytest.mark.parametrize(("case", "subsets", "want"), [
    ("one port per piece, same addresses: one subset, ports sorted",
     [{"addresses": [addr("a", "1.1.1.1")], "ports": [{"name": "b", "port": 2, "protocol": "TCP"}]},
      {"addresses": [addr("a", "1.1.1.1")], "ports": [{"name": "a", "port": 1, "protocol": "TCP"}]}],
     [{"addresses": [addr("a", "1.1.1.1")], "ports": [{"name": "a", "port": 1, "protocol": "TCP"},
                                                      {"name": "b", "port": 2, "protocol": "TCP"}]}]),
    ("ready anywhere wins for that port",
     [{"notReadyAddresses": [addr("a", "1.1.1.1")], "ports": [{"port": 1, "protocol": "TCP"}]},
      {"addresses": [addr("a", "1.1.1.1")], "ports": [{"port": 1, "protocol": "TCP"}]}],
     [{"addresses": [addr("a", "1.1.1.1")], "ports": [{"port": 1, "protocol": "TCP"}]}]),
    ("different address sets stay apart, addresses sorted by IP",
     [{"addresses": [addr("b", "1.1.1.2"), addr("a", "1.1.1.1")], "ports": [{"port": 1, "protocol": "TCP"}]},
      {"addresses": [addr("a", "1.1.1.1")], "ports": [{"port": 2, "protocol": "TCP"}]}],
     [{"addresses": [addr("a", "1.1.1.1"), addr("b", "1.1.1.2")], "ports": [{"port": 1, "protocol": "TCP"}]},
      {"addresses": [addr("a", "1.1.1.1")], "ports": [{"port": 2, "protocol": "TCP"}]}]),
    ("port-less pieces join the ported subset with the same addresses",
     [{"addresses": [addr("a", "1.1.1.1")]},
      {"addresses": [addr("a", "1.1.1.1")], "ports": [{"port": 1, "protocol": "TCP"}]}],
     [{"addresses": [addr("a", "1.1.1.1")], "ports": [{"port": 1, "protocol": "TCP"}]}]),
    ("same ports, other protocol: separate ports", [
        {"addresses": [addr("a", "1.1.1.1")], "ports": [{"port": 53, "protocol": "UDP"}]},
        {"addresses": [addr("a", "1.1.1.1")], "ports": [{"port": 53, "protocol": "TCP"}]}],
     [{"addresses": [addr("a", "1.1.1.1")], "ports": [{"port": 53, "protocol": "TCP"},
                                                      {"port": 53, "protocol": "UDP"}]}]),
    ("nothing", [], []),
])
def test_repack_subsets(case: str, subsets: list[Obj], want: list[Obj]) -> None:
    assert util.repack_subsets(subsets) == want, case
    assert util.repack_subsets(want) == want, f"{case}: canonical form is a fixed point"


def _many(prefix: str, n: int) -> list[Obj]:
    return [addr(f"{prefix}{i}", f"10.{ord(prefix[0]) % 250}.{i // 250}.{i % 250}") for i in range(n)]


def test_truncate_keeps_ready_first_and_shares_in_proportion() -> None:
    small = [{"addresses": _many("a", 10), "ports": [{"port": 1, "protocol": "TCP"}]}]
    assert util.truncate_subsets(small) == (small, False)
    one = [{"addresses": _many("a", 900), "notReadyAddresses": _many("n", 300),
            "ports": [{"port": 1, "protocol": "TCP"}]}]
    got, cut = util.truncate_subsets(one)
    assert cut and len(got[0]["addresses"]) == 900 and len(got[0]["notReadyAddresses"]) == 100
    two = [{"addresses": _many("a", 1500), "ports": [{"port": 1, "protocol": "TCP"}]},
           {"addresses": _many("b", 500), "notReadyAddresses": _many("n", 500),
            "ports": [{"port": 2, "protocol": "TCP"}]}]
    got, cut = util.truncate_subsets(two)
    counts = sorted((len(s.get("addresses") or []), len(s.get("notReadyAddresses") or [])) for s in got)
    assert cut and counts == [(400, 0), (600, 0)]  # 1000/2500 and 1500/2500 of 1000, ready only
    assert sum(a + b for a, b in counts) == util.MAX_ADDRESSES


# -- the Endpoints object -----------------------------------------------------------------------------------------
def test_desired_endpoints_new_same_and_changed() -> None:
    svc = service()
    svc["metadata"]["labels"] = {"team": "a"}
    subsets = util.endpoint_subsets(svc, [pod("a")])
    new = util.desired_endpoints(svc, None, subsets, NOW)
    assert new == {"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"},
                                "annotations": {util.LAST_CHANGE_TRIGGER_TIME: now_rfc3339(NOW)}},
                   "subsets": subsets}
    stored = copy.deepcopy(new)
    stored["metadata"]["resourceVersion"] = "7"
    assert util.desired_endpoints(svc, stored, subsets, NOW + 5) is None  # a trigger time alone writes nothing
    changed = util.desired_endpoints(svc, stored, util.endpoint_subsets(svc, [pod("a"), pod("b", "10.0.0.2")]), None)
    assert changed is not None and changed["metadata"]["resourceVersion"] == "7"
    assert util.LAST_CHANGE_TRIGGER_TIME not in changed["metadata"].get("annotations", {})
    assert len(changed["subsets"][0]["addresses"]) == 2
    svc["metadata"]["labels"] = {"team": "b"}
    relabelled = util.desired_endpoints(svc, stored, subsets, None)
    assert relabelled is not None and relabelled["metadata"]["labels"] == {"team": "b"}
    emptied = util.desired_endpoints(svc, stored, [], None)
    assert emptied is not None and "subsets" not in emptied


def test_desired_endpoints_headless_label_and_over_capacity() -> None:
    svc = service(clusterIP="None")
    pods = [pod(f"p{i}", f"10.1.{i // 250}.{i % 250}") for i in range(1001)]
    new = util.desired_endpoints(svc, None, util.endpoint_subsets(svc, pods), None)
    assert new is not None
    assert new["metadata"]["labels"] == {util.HEADLESS_LABEL: ""}
    assert new["metadata"]["annotations"] == {util.OVER_CAPACITY: "truncated"}
    assert sum(len(s["addresses"]) for s in new["subsets"]) == 1000
    new["metadata"]["resourceVersion"] = "3"
    assert util.desired_endpoints(svc, new, util.endpoint_subsets(svc, pods), None) is None
    fewer = util.desired_endpoints(svc, new, util.endpoint_subsets(svc, pods[:10]), None)
    assert fewer is not None and util.OVER_CAPACITY not in fewer["metadata"].get("annotations", {})


def test_trigger_time_tracker() -> None:
    t = util.TriggerTimeTracker()
    svc = service()
    created = NOW - 3600
    a, b = pod("a", ready_at=NOW - 100), pod("b", ready_at=NOW - 90)
    assert t.compute("default/web", svc, [a, b]) == created  # first sight: the service's creation
    assert t.compute("default/web", svc, [a, b]) is None  # nothing moved
    a2, b2 = pod("a", ready=False, ready_at=NOW - 10), pod("b", ready=False, ready_at=NOW - 20)
    assert t.compute("default/web", svc, [a2, b2]) == NOW - 20  # the earliest change
    assert t.compute("default/web", svc, [a2]) is None  # a pod gone is no trigger time
    c = pod("c", ready_at=NOW - 5)
    assert t.compute("default/web", svc, [a2, c]) == NOW - 5  # a new pod's transition
    t.forget("default/web")
    assert t.compute("default/web", svc, [a2, c]) == created


# -- pod changes --------------------------------------------------------------------------------------------------
def _with(p: Obj, **changes: Any) -> Obj:
    q = copy.deepcopy(p)
    for path, value in changes.items():
        *parents, last = path.split("__")
        d = q
        for k in parents:
            d = d.setdefault(k, {})
        d[last] = value
    return q


BASE = pod("a")


@pytest.mark.parametrize(("case", "new", "want"), [
    ("annotation only", _with(BASE, metadata__annotations={"x": "y"}), (False, False)),
    ("readiness", pod("a", ready=False), (True, False)),
    ("deletion started", pod("a", terminating=True), (True, False)),
    ("new IP", pod("a", ip="10.0.0.99"), (True, False)),
    ("terminal phase", pod("a", phase="Failed"), (True, False)),
    ("labels", _with(BASE, metadata__labels={"app": "api"}), (False, True)),
    ("hostname", _with(BASE, spec__hostname="h"), (False, True)),
    ("labels and readiness", _with(pod("a", ready=False), metadata__labels={"app": "api"}), (True, True)),
])
def test_pod_change(case: str, new: Obj, want: tuple[bool, bool]) -> None:
    assert util.pod_change(BASE, new) == want, case


@pytest.mark.parametrize(("old", "new", "endpoint", "membership", "want"), [
    ({"a"}, {"a"}, False, False, set()),
    ({"a"}, {"a"}, True, False, {"a"}),
    ({"a", "b"}, {"b", "c"}, False, True, {"a", "c"}),
    ({"a", "b"}, {"b", "c"}, True, True, {"a", "b", "c"}),
])
def test_services_to_sync(old: set[str], new: set[str], endpoint: bool, membership: bool, want: set[str]) -> None:
    assert util.services_to_sync(old, new, endpoint, membership) == want


# -- the controller over a real registry --------------------------------------------------------------------------
@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, EndpointsController]]:
    async with started(tmp_path, lambda cp: EndpointsController(cp.client, cp.informers)) as (cp, comps):
        yield cp, comps[0]


async def get_endpoints(cp: ControlPlane, name: str = "web") -> Obj | None:
    try:
        ep: Obj = await cp.client.get(ENDPOINTS, "default", name)
        return ep
    except errors.ApiError as ex:
        if ex.code == 404:
            return None
        raise


def ips(ep: Obj | None, field: str = "addresses") -> list[str]:
    return sorted(a["ip"] for s in (ep or {}).get("subsets") or [] for a in s.get(field) or [])


async def endpoints_where(cp: ControlPlane, pred: Any, name: str = "web", what: str = "endpoints") -> Obj:
    async def check() -> Obj | None:
        ep = await get_endpoints(cp, name)
        return ep if ep is not None and pred(ep) else None
    result: Obj = await eventually(check, what=what)
    return result


async def test_controller_follows_readiness_termination_and_phase(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _ctrl):
        svc = await cp.client.create(SERVICES, "default", {
            "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        await make_pod(cp, "a", "10.0.0.1")
        await make_pod(cp, "b", "10.0.0.2")
        await make_pod(cp, "c", "10.0.0.3", ready=False)
        await make_pod(cp, "noip", None)
        await make_pod(cp, "other", "10.0.0.9", labels={"app": "other"})
        ep = await endpoints_where(cp, lambda e: ips(e) == ["10.0.0.1", "10.0.0.2"]
                                   and ips(e, "notReadyAddresses") == ["10.0.0.3"], what="2 ready, 1 not ready")
        assert ep["metadata"]["labels"] == {"team": "a"}
        assert ep["subsets"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
        a = next(x for x in ep["subsets"][0]["addresses"] if x["ip"] == "10.0.0.1")
        assert a["nodeName"] == "n1" and a["targetRef"]["kind"] == "Pod" and a["targetRef"]["name"] == "a"
        assert a["targetRef"]["uid"] == (await cp.client.get(PODS, "default", "a"))["metadata"]["uid"]
        assert ep["metadata"]["annotations"][util.LAST_CHANGE_TRIGGER_TIME] == svc["metadata"]["creationTimestamp"]
        # Readiness flips move addresses between the lists; the trigger time is the transition's (timestamps have
        # second precision: these transitions are stamped later than the pods' first ones).
        later = time.time() + 10
        await set_ready(cp, "c", True, later)
        await set_ready(cp, "a", False, later)
        ep = await endpoints_where(cp, lambda e: ips(e) == ["10.0.0.2", "10.0.0.3"]
                                   and ips(e, "notReadyAddresses") == ["10.0.0.1"], what="readiness followed")
        assert ep["metadata"]["annotations"][util.LAST_CHANGE_TRIGGER_TIME] == now_rfc3339(later)
        # A terminating pod leaves; a finished one too.
        await cp.client.delete(PODS, "default", "b")
        assert (await cp.client.get(PODS, "default", "b"))["metadata"].get("deletionTimestamp")
        await endpoints_where(cp, lambda e: ips(e) == ["10.0.0.3"], what="terminating pod gone")
        c = await cp.client.get(PODS, "default", "c")
        c["status"]["phase"] = "Succeeded"
        await cp.client.update(PODS, "default", c, subresource="status")
        await endpoints_where(cp, lambda e: ips(e) == [] and ips(e, "notReadyAddresses") == ["10.0.0.1"],
                              what="succeeded pod gone")
        # A pod relabelled out of the selector leaves too.
        await cp.client.patch(PODS, "default", "a", {"metadata": {"labels": {"app": "other"}}})
        await endpoints_where(cp, lambda e: not e.get("subsets"), what="no subsets")


async def test_controller_named_ports_and_publish_not_ready(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _ctrl):
        await cp.client.create(SERVICES, "default", {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}})
        await make_pod(cp, "a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080}])
        await make_pod(cp, "b", "10.0.0.2", ports=[{"name": "web", "containerPort": 9090}])
        await make_pod(cp, "c", "10.0.0.3")  # no port named web: left out
        await make_pod(cp, "d", "10.0.0.4", ready=False, ports=[{"name": "web", "containerPort": 8080}],
                       hostname="d0", subdomain="web")
        ep = await endpoints_where(cp, lambda e: ips(e, "notReadyAddresses") == ["10.0.0.4"], what="pod d in")
        by_port = {s["ports"][0]["port"]: s for s in ep["subsets"]}
        assert set(by_port) == {8080, 9090}
        assert all(s["ports"][0]["name"] == "http" for s in ep["subsets"])
        assert [a["ip"] for a in by_port[8080]["addresses"]] == ["10.0.0.1"]
        assert [a["ip"] for a in by_port[8080]["notReadyAddresses"]] == ["10.0.0.4"]
        assert by_port[8080]["notReadyAddresses"][0]["hostname"] == "d0"
        assert [a["ip"] for a in by_port[9090]["addresses"]] == ["10.0.0.2"]
        assert "10.0.0.3" not in ips(ep) + ips(ep, "notReadyAddresses")
        await cp.client.patch(SERVICES, "default", "web", {"spec": {"publishNotReadyAddresses": True}})
        await endpoints_where(cp, lambda e: ips(e) == ["10.0.0.1", "10.0.0.2", "10.0.0.4"]
                              and ips(e, "notReadyAddresses") == [], what="all published as ready")


async def test_controller_leaves_selectorless_and_external_name_alone(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, ctrl):
        await make_pod(cp, "a", "10.0.0.1")
        await cp.client.create(SERVICES, "default", {"metadata": {"name": "manual"},
                                                     "spec": {"ports": [{"port": 80}]}})
        mine = await cp.client.create(ENDPOINTS, "default", {
            "metadata": {"name": "manual"},
            "subsets": [{"addresses": [{"ip": "192.168.1.1"}], "ports": [{"port": 80}]}]})
        await cp.client.create(SERVICES, "default", {"metadata": {"name": "ext"},
                                                     "spec": {"type": "ExternalName", "externalName": "example.com",
                                                              "selector": {"app": "web"}}})
        # A service that loses its selector keeps the Endpoints it had.
        await cp.client.create(SERVICES, "default", {"metadata": {"name": "web"},
                                                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        before = await endpoints_where(cp, lambda e: ips(e) == ["10.0.0.1"], what="web endpoints")
        await cp.client.patch(SERVICES, "default", "web", {"spec": {"selector": None}})
        await make_pod(cp, "b", "10.0.0.2")
        await set_ready(cp, "a", False)
        await eventually(lambda: (p := ctrl.pod_informer.get("default", "a")) is not None
                         and p["status"]["conditions"][0]["status"] == "False", what="cache has the change")
        for key in ("default/web", "default/manual", "default/ext"):
            await ctrl.sync(key)
        assert await get_endpoints(cp, "web") == before
        assert await get_endpoints(cp, "manual") == mine
        assert await get_endpoints(cp, "ext") is None


async def test_controller_deletes_endpoints_with_the_service_and_recreates_deleted_ones(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, ctrl):
        await make_pod(cp, "a", "10.0.0.1")
        await cp.client.create(SERVICES, "default", {"metadata": {"name": "web"},
                                                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        first = await endpoints_where(cp, lambda e: ips(e) == ["10.0.0.1"], what="endpoints")
        await cp.client.delete(ENDPOINTS, "default", "web")
        again = await endpoints_where(cp, lambda e: ips(e) == ["10.0.0.1"], what="endpoints written again")
        assert again["metadata"]["uid"] != first["metadata"]["uid"]
        await cp.client.delete(SERVICES, "default", "web")
        await eventually(lambda: _gone(cp, "web"), what="endpoints deleted with the service")
        assert "default/web" not in ctrl.triggers._states


async def _gone(cp: ControlPlane, name: str) -> bool:
    return await get_endpoints(cp, name) is None


async def test_controller_writes_only_on_change(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, ctrl):
        await make_pod(cp, "a", "10.0.0.1")
        await cp.client.create(SERVICES, "default", {"metadata": {"name": "web"},
                                                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        ep = await endpoints_where(cp, lambda e: ips(e) == ["10.0.0.1"], what="endpoints")
        await cp.client.patch(PODS, "default", "a", {"metadata": {"annotations": {"note": "x"}}})
        await cp.client.patch(SERVICES, "default", "web", {"metadata": {"annotations": {"note": "x"}}})
        await eventually(lambda: (s := ctrl.service_informer.get("default", "web")) is not None
                         and (s["metadata"].get("annotations") or {}).get("note") == "x", what="cache")
        await ctrl.sync("default/web")
        await asyncio.sleep(0.1)
        assert await get_endpoints(cp) == ep
        # A label change on the service is a change.
        await cp.client.patch(SERVICES, "default", "web", {"metadata": {"labels": {"tier": "front"}}})
        await endpoints_where(cp, lambda e: e["metadata"].get("labels") == {"tier": "front"}, what="labels copied")


async def test_controller_removes_its_leftover_endpoints_at_start(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        # The harness client writes as the controller would (same field manager); a user writes as another.
        user = LocalClient(cp.registry, "kubectl-client-side-apply")
        await cp.client.create(ENDPOINTS, "default", {"metadata": {"name": "orphan"},
                                                      "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]})
        await cp.client.create(ENDPOINTS, "default", {"metadata": {"name": "lock", "annotations": {
            util.LEADER_ANNOTATION: "{}"}}})
        await user.create(ENDPOINTS, "default", {"metadata": {"name": "handmade"},
                                                 "subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]})
        ctrl = EndpointsController(cp.client, cp.informers)
        assert ctrl.field_manager == "test-controller-manager"
        cp.informers.start()
        await cp.informers.wait_synced()
        ctrl.start()
        try:
            await eventually(lambda: _gone(cp, "orphan"), what="leftover endpoints deleted")
            assert await get_endpoints(cp, "lock") is not None
            assert await get_endpoints(cp, "handmade") is not None
        finally:
            await ctrl.stop()


async def test_controller_waits_for_a_cache_behind_its_own_update(tmp_path: Path) -> None:
    """A pod flips not ready and back while the Endpoints cache still holds the version before the first flip's
    update: comparing against it would find nothing to do and leave the stored object wrong."""
    async with control_plane(tmp_path) as cp:
        ctrl = EndpointsController(cp.client, cp.informers)  # no workers: syncs are called here, one at a time
        cp.informers.start()
        await cp.informers.wait_synced()
        await make_pod(cp, "a", "10.0.0.1")
        await cp.client.create(SERVICES, "default", {"metadata": {"name": "web"},
                                                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})

        async def synced(ready: str) -> bool:
            await eventually(lambda: (p := ctrl.pod_informer.get("default", "a")) is not None
                             and p["status"]["conditions"][0]["status"] == ready, what="pod cache")
            return True

        await eventually(lambda: ctrl.service_informer.get("default", "web") is not None, what="service cache")
        await ctrl.sync("default/web")
        await eventually(lambda: ctrl.endpoints_informer.get("default", "web") is not None, what="endpoints cache")
        await ctrl.endpoints_informer.stop()  # the Endpoints cache stops here
        await set_ready(cp, "a", False)
        await synced("False")
        await ctrl.sync("default/web")
        assert ips(await get_endpoints(cp), "notReadyAddresses") == ["10.0.0.1"]
        await set_ready(cp, "a", True)
        await synced("True")
        with pytest.raises(CacheBehind):
            await ctrl.sync("default/web")
        assert ips(await get_endpoints(cp), "notReadyAddresses") == ["10.0.0.1"]
        ctrl.endpoints_informer.start()  # relists: the cache catches up
        await eventually(lambda: ips(ctrl.endpoints_informer.get("default", "web"), "notReadyAddresses"),
                         what="cache caught up")
        await ctrl.sync("default/web")
        assert ips(await get_endpoints(cp)) == ["10.0.0.1"]
        await ctrl.stop()
