"""ServiceLB controller: the pure allocation rules (tables) and the controller over a real registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.harness import ControlPlane, control_plane, eventually, started

from tinykube.api.resources import EVENTS, must
from tinykube.controllers.servicelb import ServiceLBController, util
from tinykube.controllers.servicelb.controller import NoAddress

SERVICES = must("", "v1", "services")
Obj = dict[str, Any]
POOL = util.Pool.parse("10.96.255.0/24")
SMALL = util.Pool.parse("10.96.255.0/30")  # two usable addresses: .1 and .2


# -- builders -----------------------------------------------------------------------------------------------------
def svc(name: str = "web", ips: list[str] | None = None, created: str = "2024-01-01T00:00:00Z",
        ingress: list[Obj] | None = None, **spec: Any) -> Obj:
    s: Obj = {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
              "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], **spec},
              "status": {"loadBalancer": {}}}
    entries = [*(ingress or []), *({"ip": ip, "ipMode": "VIP"} for ip in ips or [])]
    if entries:
        s["status"]["loadBalancer"]["ingress"] = entries
    return s


def decide(target: Obj, *others: Obj, pool: util.Pool = POOL) -> util.Decision:
    return util.decide(target, pool, util.holders([target, *others], pool))


def ingress_of(lb: Obj | None) -> list[str]:
    return [e["ip"] for e in (lb or {}).get("ingress") or []]


# -- the pool -----------------------------------------------------------------------------------------------------
def test_pool_usable_addresses() -> None:
    assert POOL.size == 254 and SMALL.size == 2
    assert str(SMALL) == "10.96.255.0/30"
    assert not POOL.contains("10.96.255.0") and not POOL.contains("10.96.255.255")  # network, broadcast
    assert POOL.contains("10.96.255.1") and POOL.contains("10.96.255.254")
    assert not POOL.contains("10.96.254.7") and not POOL.contains("fd00::1") and not POOL.contains("nope")
    assert not POOL.contains(None)
    assert SMALL.first_free([]) == "10.96.255.1"
    assert SMALL.first_free(["10.96.255.1"]) == "10.96.255.2"
    assert SMALL.first_free(["10.96.255.2", "garbage"]) == "10.96.255.1"
    assert SMALL.first_free(["10.96.255.1", "10.96.255.2"]) is None
    assert util.Pool.parse("10.0.0.4/31").size == 2  # no network/broadcast pair in a /31


@pytest.mark.parametrize("bad", ["fd00::/64", "10.96.255.1/24", "10.96.255.0/33", "pool", ""])
def test_pool_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid load balancer pool"):
        util.Pool.parse(bad)


# -- which services ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "s", "want"), [
    ("LoadBalancer", svc(), True),
    ("LoadBalancer with a class", svc(loadBalancerClass="example.com/lb"), False),
    ("ClusterIP", svc(type="ClusterIP"), False),
    ("NodePort", svc(type="NodePort"), False),
    ("no type", {"metadata": {"name": "x"}, "spec": {}}, False),
])
def test_handles(case: str, s: Obj, want: bool) -> None:
    assert util.handles(s) is want, case


def test_is_ours_needs_our_shape_and_pool() -> None:
    assert util.is_ours({"ip": "10.96.255.3", "ipMode": "VIP"}, POOL)
    assert util.is_ours({"ip": "10.96.255.3"}, POOL)
    assert not util.is_ours({"ip": "10.96.255.3", "ipMode": "Proxy"}, POOL)
    assert not util.is_ours({"ip": "10.96.255.3", "ports": [{"port": 80}]}, POOL)
    assert not util.is_ours({"hostname": "lb.example.com"}, POOL)
    assert not util.is_ours({"ip": "192.0.2.1", "ipMode": "VIP"}, POOL)


# -- allocation ---------------------------------------------------------------------------------------------------
def test_new_service_gets_the_lowest_free_address() -> None:
    d = decide(svc("c"), svc("a", ["10.96.255.1"]), svc("b", ["10.96.255.3"]))
    assert d.ip == "10.96.255.2" and d.assigns and d.failure is None
    assert d.load_balancer == {"ingress": [{"ip": "10.96.255.2", "ipMode": "VIP"}]}


def test_addresses_shown_by_any_service_are_taken() -> None:
    # A service of another class showing a pool address (another implementation, or ours before release) holds it.
    other = svc("other", ["10.96.255.1"], loadBalancerClass="example.com/lb")
    assert decide(svc("c"), other).ip == "10.96.255.2"


def test_keeps_its_address_without_a_write() -> None:
    d = decide(svc("a", ["10.96.255.9"]), svc("b", ["10.96.255.1"]))
    assert d.ip == "10.96.255.9" and d.load_balancer is None and not d.assigns and d.failure is None


def test_keeps_its_address_and_drops_stray_entries() -> None:
    d = decide(svc("a", ["10.96.255.9"], ingress=[{"hostname": "x.example.com"}]))
    assert d.ip == "10.96.255.9" and d.load_balancer == {"ingress": [{"ip": "10.96.255.9", "ipMode": "VIP"}]}


def test_address_outside_the_pool_is_replaced() -> None:
    d = decide(svc("a", ["192.0.2.5"]))
    assert d.ip == "10.96.255.1" and ingress_of(d.load_balancer) == ["10.96.255.1"]


def test_duplicate_address_goes_to_the_older_service() -> None:
    older = svc("z", ["10.96.255.1"], created="2024-01-01T00:00:00Z")
    newer = svc("a", ["10.96.255.1"], created="2024-02-01T00:00:00Z")
    assert util.holders([newer, older], POOL) == {"10.96.255.1": "default/z"}
    assert decide(older, newer).load_balancer is None
    d = decide(newer, older)
    assert d.ip == "10.96.255.2" and ingress_of(d.load_balancer) == ["10.96.255.2"]


def test_duplicate_address_goes_to_the_handled_service_first() -> None:
    stale = svc("old", ["10.96.255.1"], created="2023-01-01T00:00:00Z", type="ClusterIP")
    lb = svc("lb", ["10.96.255.1"], created="2024-01-01T00:00:00Z")
    assert util.holders([stale, lb], POOL) == {"10.96.255.1": "default/lb"}
    assert decide(lb, stale).load_balancer is None


def test_exhausted_pool_fails_and_names_the_pool() -> None:
    d = decide(svc("c"), svc("a", ["10.96.255.1"]), svc("b", ["10.96.255.2"]), pool=SMALL)
    assert d.ip is None and d.load_balancer is None
    assert d.failure is not None and d.failure.problem is util.Problem.EXHAUSTED and d.failure.retry
    assert "exhausted" in d.failure.message and "10.96.255.0/30" in d.failure.message


def test_exhausted_pool_takes_away_an_address_lost_to_the_holder() -> None:
    older = svc("a", ["10.96.255.1"], created="2024-01-01T00:00:00Z")
    loser = svc("c", ["10.96.255.1"], created="2024-03-01T00:00:00Z")
    d = decide(loser, older, svc("b", ["10.96.255.2"]), pool=SMALL)
    assert d.failure is not None and d.failure.problem is util.Problem.EXHAUSTED
    assert d.load_balancer == {} and d.ip is None


def test_requested_load_balancer_ip_is_honoured() -> None:
    d = decide(svc("a", loadBalancerIP="10.96.255.50"), svc("b", ["10.96.255.1"]))
    assert d.ip == "10.96.255.50" and ingress_of(d.load_balancer) == ["10.96.255.50"]
    # Already there: nothing to write.
    assert decide(svc("a", ["10.96.255.50"], loadBalancerIP="10.96.255.50")).load_balancer is None
    # Changed: moves to the requested address.
    moved = decide(svc("a", ["10.96.255.1"], loadBalancerIP="10.96.255.60"))
    assert ingress_of(moved.load_balancer) == ["10.96.255.60"]


@pytest.mark.parametrize(("case", "requested", "problem", "retry"), [
    ("held by another service", "10.96.255.1", util.Problem.REQUESTED_IN_USE, True),
    ("outside the pool", "192.0.2.1", util.Problem.REQUESTED_OUTSIDE_POOL, False),
    ("the network address", "10.96.255.0", util.Problem.REQUESTED_OUTSIDE_POOL, False),
    ("not an address", "ten", util.Problem.REQUESTED_INVALID, False),
    ("IPv6", "fd00::1", util.Problem.REQUESTED_INVALID, False),
])
def test_requested_load_balancer_ip_unavailable(case: str, requested: str, problem: util.Problem,
                                                retry: bool) -> None:
    d = decide(svc("a", ["10.96.255.7"], loadBalancerIP=requested), svc("b", ["10.96.255.1"]))
    assert d.failure is not None and d.failure.problem is problem and d.failure.retry is retry, case
    assert d.ip is None and d.load_balancer == {}, case  # no address: the old one goes too
    assert requested in d.failure.message, case


def test_service_without_ipv4_family_gets_nothing() -> None:
    d = decide(svc("a", ipFamilies=["IPv6"]))
    assert d.failure is not None and d.failure.problem is util.Problem.FAMILY and not d.failure.retry
    assert d.ip is None and d.load_balancer is None
    assert decide(svc("a", ipFamilies=["IPv6", "IPv4"])).ip == "10.96.255.1"


def test_not_handled_releases_only_our_entries() -> None:
    # Type changed: our entry goes, status.loadBalancer becomes {}.
    assert decide(svc("a", ["10.96.255.4"], type="ClusterIP")).load_balancer == {}
    # Class set after we assigned: same.
    d = decide(svc("a", ["10.96.255.4"], loadBalancerClass="example.com/lb"))
    assert d.load_balancer == {} and d.ip is None and d.failure is None
    # Another implementation's entries stay (not our shape, or not our pool): no write at all.
    foreign = [{"ip": "192.0.2.1", "ipMode": "VIP"}, {"ip": "10.96.255.5", "ipMode": "Proxy"},
               {"hostname": "lb.example.com"}]
    assert decide(svc("a", ingress=foreign, loadBalancerClass="example.com/lb")).load_balancer is None
    # Mixed: only ours goes.
    mixed = decide(svc("a", ["10.96.255.4"], ingress=foreign[:1], loadBalancerClass="example.com/lb"))
    assert mixed.load_balancer == {"ingress": foreign[:1]}
    # Nothing to release: no write.
    assert decide(svc("a", type="ClusterIP")).load_balancer is None


# -- the controller over a real registry --------------------------------------------------------------------------
@asynccontextmanager
async def running(tmp_path: Path, pool: str = "10.96.255.0/24") -> AsyncIterator[tuple[ControlPlane,
                                                                                          ServiceLBController]]:
    async with started(tmp_path, lambda cp: ServiceLBController(cp.client, cp.informers, pool)) as (cp, comps):
        yield cp, comps[0]


async def create(cp: ControlPlane, name: str, **spec: Any) -> Obj:
    body: Obj = {"metadata": {"name": name},
                 "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}], **spec}}
    created: Obj = await cp.client.create(SERVICES, "default", body)
    return created


async def lb_ips(cp: ControlPlane, name: str) -> list[str]:
    s = await cp.client.get(SERVICES, "default", name)
    return ingress_of((s.get("status") or {}).get("loadBalancer"))


async def wait_ips(cp: ControlPlane, name: str, want: list[str] | None = None) -> list[str]:
    """Wait until the service shows ``want`` (None: any one address) and return what it shows."""
    async def check() -> tuple[list[str]] | None:  # (a tuple: an empty list is a wanted value too)
        got = await lb_ips(cp, name)
        ok = len(got) == 1 if want is None else got == want
        return (got,) if ok else None
    result: tuple[list[str]] = await eventually(check, what=f"{name} shows {want if want is not None else 'an IP'}")
    return result[0]


async def events_for(cp: ControlPlane, name: str) -> list[Obj]:
    items, _ = await cp.client.list(EVENTS, "default")
    return [e for e in items if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "Service"]


async def wait_event(cp: ControlPlane, name: str, reason: str) -> Obj:
    async def check() -> Obj | None:
        return next((e for e in await events_for(cp, name) if e["reason"] == reason), None)
    result: Obj = await eventually(check, what=f"{reason} event on {name}")
    return result


async def test_controller_assigns_an_address_with_events(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _ctrl):
        await create(cp, "web")
        assert await wait_ips(cp, "web") == ["10.96.255.1"]
        s = await cp.client.get(SERVICES, "default", "web")
        assert s["status"]["loadBalancer"] == {"ingress": [{"ip": "10.96.255.1", "ipMode": "VIP"}]}
        ensuring = await wait_event(cp, "web", "EnsuringLoadBalancer")
        ensured = await wait_event(cp, "web", "EnsuredLoadBalancer")
        assert ensuring["type"] == ensured["type"] == "Normal"
        assert ensuring["message"] == "Ensuring load balancer" and ensured["message"] == "Ensured load balancer"
        assert ensured["source"]["component"] == "service-lb-controller"
        # A service that is not LoadBalancer, or has a class, is left alone; the queue is FIFO with one worker,
        # so by the time "late" has its address the two before it have been synced.
        await cp.client.create(SERVICES, "default", {"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 80}]}})
        await create(cp, "classy", loadBalancerClass="example.com/lb")
        await create(cp, "late")
        assert await wait_ips(cp, "late") == ["10.96.255.2"]
        assert await lb_ips(cp, "plain") == [] and await lb_ips(cp, "classy") == []
        assert await lb_ips(cp, "web") == ["10.96.255.1"]


async def test_controller_gives_back_to_back_services_distinct_addresses(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _ctrl):
        names = [f"s{i}" for i in range(8)]
        for n in names:
            await create(cp, n)
        got = [(await wait_ips(cp, n))[0] for n in names]
        assert sorted(got) == sorted({f"10.96.255.{i}" for i in range(1, 9)})


async def test_controller_remembers_its_writes_while_the_cache_lags(tmp_path: Path) -> None:
    """Two services synced while the service cache is frozen before the first one's status write: the second
    must not be given the first one's address."""
    async with control_plane(tmp_path) as cp:
        ctrl = ServiceLBController(cp.client, cp.informers, "10.96.255.0/24")  # no workers: syncs called here
        cp.informers.start()
        await cp.informers.wait_synced()
        await create(cp, "a")
        await create(cp, "b")
        await eventually(lambda: ctrl.service_informer.get("default", "b") is not None, what="service cache")
        await ctrl.service_informer.stop()  # the cache stops here
        await ctrl.sync("default/a")
        await ctrl.sync("default/b")
        assert await lb_ips(cp, "a") == ["10.96.255.1"]
        assert await lb_ips(cp, "b") == ["10.96.255.2"]
        cached_a = ctrl.service_informer.get("default", "a")
        assert cached_a is not None and not util.ingress(cached_a)  # the cache really was behind
        # A repeated sync acts on our own newer version: no write, no conflict.
        before = (await cp.client.get(SERVICES, "default", "a"))["metadata"]["resourceVersion"]
        await ctrl.sync("default/a")
        assert (await cp.client.get(SERVICES, "default", "a"))["metadata"]["resourceVersion"] == before
        await ctrl.stop()


async def test_controller_type_change_and_class_release_the_address(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, _ctrl):
        await create(cp, "web")
        await create(cp, "other")
        assert await wait_ips(cp, "web") == ["10.96.255.1"]
        assert await wait_ips(cp, "other") == ["10.96.255.2"]
        await cp.client.patch(SERVICES, "default", "web", {"spec": {
            "type": "ClusterIP", "allocateLoadBalancerNodePorts": None, "externalTrafficPolicy": None,
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}})
        await wait_ips(cp, "web", [])
        s = await cp.client.get(SERVICES, "default", "web")
        assert s["status"]["loadBalancer"] == {}
        await wait_event(cp, "web", "DeletedLoadBalancer")
        # The address is free again: the next service gets it.
        await create(cp, "next")
        assert await wait_ips(cp, "next") == ["10.96.255.1"]
        # A class set on a service we gave an address: the address is released too.
        await cp.client.patch(SERVICES, "default", "other", {"spec": {"loadBalancerClass": "example.com/lb"}})
        await wait_ips(cp, "other", [])
        assert (await cp.client.get(SERVICES, "default", "other"))["status"]["loadBalancer"] == {}


async def test_controller_deletion_frees_the_address(tmp_path: Path) -> None:
    async with running(tmp_path, "10.96.255.0/30") as (cp, _ctrl):
        await create(cp, "a")
        await create(cp, "b")
        assert await wait_ips(cp, "a") == ["10.96.255.1"]
        assert await wait_ips(cp, "b") == ["10.96.255.2"]
        await cp.client.delete(SERVICES, "default", "a")
        await create(cp, "c")
        assert await wait_ips(cp, "c") == ["10.96.255.1"]
        assert await lb_ips(cp, "b") == ["10.96.255.2"]


async def test_controller_exhausted_pool_warns_and_recovers(tmp_path: Path) -> None:
    async with running(tmp_path, "10.96.255.0/30") as (cp, ctrl):
        await create(cp, "a")
        await create(cp, "b")
        await wait_ips(cp, "a")
        await wait_ips(cp, "b")
        await create(cp, "c")
        ev = await wait_event(cp, "c", "SyncLoadBalancerFailed")
        assert ev["type"] == "Warning"
        assert "exhausted" in ev["message"] and "10.96.255.0/30" in ev["message"]
        assert await lb_ips(cp, "c") == []
        assert not any(e["reason"] == "EnsuredLoadBalancer" for e in await events_for(cp, "c"))
        await eventually(lambda: ctrl.queue.retries("default/c") >= 2, what="retries with backoff")
        # b goes: c, waiting, gets its address.
        await cp.client.delete(SERVICES, "default", "b")
        assert await wait_ips(cp, "c") == ["10.96.255.2"]
        assert await lb_ips(cp, "a") == ["10.96.255.1"]


async def test_controller_requested_ip(tmp_path: Path) -> None:
    async with running(tmp_path) as (cp, ctrl):
        await create(cp, "a", loadBalancerIP="10.96.255.77")
        assert await wait_ips(cp, "a") == ["10.96.255.77"]
        await create(cp, "b", loadBalancerIP="10.96.255.77")
        ev = await wait_event(cp, "b", "SyncLoadBalancerFailed")
        assert ev["type"] == "Warning" and "10.96.255.77" in ev["message"] and "default/a" in ev["message"]
        await create(cp, "far", loadBalancerIP="192.0.2.1")
        ev = await wait_event(cp, "far", "SyncLoadBalancerFailed")
        assert "not in the load balancer pool" in ev["message"]
        assert await lb_ips(cp, "b") == [] and await lb_ips(cp, "far") == []
        # The holder lets go: b gets the address it asked for.
        await cp.client.delete(SERVICES, "default", "a")
        assert await wait_ips(cp, "b") == ["10.96.255.77"]
        assert "default/far" not in ctrl._waiting  # only retryable failures wait


async def test_sync_raises_no_address_for_retry(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        ctrl = ServiceLBController(cp.client, cp.informers, "10.96.255.0/31")  # two addresses
        cp.informers.start()
        await cp.informers.wait_synced()
        for n in ("a", "b", "c"):
            await create(cp, n)
        await eventually(lambda: ctrl.service_informer.get("default", "c") is not None, what="service cache")
        await ctrl.sync("default/a")
        await ctrl.sync("default/b")
        with pytest.raises(NoAddress, match="exhausted"):
            await ctrl.sync("default/c")
        assert "default/c" in ctrl._waiting
        assert await lb_ips(cp, "a") == ["10.96.255.0"] and await lb_ips(cp, "b") == ["10.96.255.1"]
        assert await lb_ips(cp, "c") == []
        await ctrl.stop()
