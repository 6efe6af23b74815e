"""The service proxy loop over a real registry: what it hands its data path, coalescing, and the unroute wait.

The data path here records every list of service ports it is given (the nftables one is exercised end to end
by tests/e2e/test_services.py); one test loads the real ruleset with ``nft`` into a private table.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.harness import eventually, make_pod, started

from tinykube.api.resources import must
from tinykube.proxy.nftrules import ServicePort
from tinykube.proxy.proxier import NftablesDataPath, ServiceProxy

SERVICES = must("", "v1", "services")
ENDPOINTS = must("", "v1", "endpoints")
SLICES = must("discovery.k8s.io", "v1", "endpointslices")
PODS = must("", "v1", "pods")


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.applied: list[list[ServicePort]] = []
        self.delay = delay
        self.closed = False
        self.fail_next = 0

    async def apply(self, ports: list[ServicePort]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("data path refused")
        await asyncio.sleep(self.delay)
        self.applied.append(ports)

    async def close(self) -> None:
        self.closed = True


def service(name: str, selector: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}
    if selector is not None:
        s["selector"] = selector
    return {"metadata": {"name": name, "namespace": "default"}, "spec": s}


def slice_(svc: str, name: str, ips: dict[str, bool]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": r, "serving": r, "terminating": not r}}
                          for ip, r in ips.items()]}


def last_targets(rec: Recorder, name: str) -> list[str] | None:
    for sp in rec.applied[-1] if rec.applied else []:
        if sp.service == name:
            return [b.ip for b in sp.targets]
    return None


async def test_follows_services_and_slices_and_waits_for_unroute(tmp_path: Path) -> None:
    rec = Recorder()
    async with started(tmp_path, lambda cp: ServiceProxy(cp.informers, rec)) as (cp, (proxy,)):
        await cp.client.create(SERVICES, "default", service("web", {"app": "web"}))
        await cp.client.create(SLICES, "default", slice_("web", "web-1", {"10.244.0.2": True, "10.244.0.3": True}))
        await eventually(lambda: last_targets(rec, "web") == ["10.244.0.2", "10.244.0.3"])
        assert proxy.applied_ready >= {"10.244.0.2", "10.244.0.3"}
        # The pod at .2 starts terminating: its endpoint goes not-ready; the wait ends once that is applied.
        waiter = asyncio.create_task(proxy.wait_unrouted("10.244.0.2", 5))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        s = await cp.client.get(SLICES, "default", "web-1")
        s["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
        await cp.client.update(SLICES, "default", s)
        assert await waiter is True
        assert last_targets(rec, "web") == ["10.244.0.3"]
        # An address never routed is unrouted at once; one that stays routed times out.
        assert await proxy.wait_unrouted("10.9.9.9", 0.01) is True
        assert await proxy.wait_unrouted("10.244.0.3", 0.05) is False
        # Deleting the service removes its port.
        await cp.client.delete(SERVICES, "default", "web")
        await eventually(lambda: last_targets(rec, "web") is None)
    assert rec.closed


async def test_a_terminating_pod_is_never_a_ready_endpoint_even_if_its_slice_lags(tmp_path: Path) -> None:
    rec = Recorder()
    async with started(tmp_path, lambda cp: ServiceProxy(cp.informers, rec)) as (cp, (proxy,)):
        await make_pod(cp, "a", "10.244.0.2")
        await make_pod(cp, "b", "10.244.0.3")
        await cp.client.create(SERVICES, "default", service("web", {"app": "web"}))
        # No EndpointSlice controller runs here: this slice keeps saying "ready" whatever happens to the pods.
        await cp.client.create(SLICES, "default", slice_("web", "web-1", {"10.244.0.2": True, "10.244.0.3": True}))
        await eventually(lambda: last_targets(rec, "web") == ["10.244.0.2", "10.244.0.3"])
        await cp.client.delete(PODS, "default", "a")  # graceful: the pod stays, with a deletionTimestamp
        assert (await cp.client.get(PODS, "default", "a"))["metadata"].get("deletionTimestamp")
        assert await proxy.wait_unrouted("10.244.0.2", 5) is True
        assert last_targets(rec, "web") == ["10.244.0.3"]
        [sp] = [sp for sp in rec.applied[-1] if sp.service == "web"]
        assert [(b.ip, b.ready, b.terminating) for b in sp.backends] == [("10.244.0.2", False, True),
                                                                          ("10.244.0.3", True, False)]
        # The pod gone for good while the slice still says "ready": it stays out of the data path...
        await cp.client.delete(PODS, "default", "a", grace_period=0)
        await eventually(lambda: "10.244.0.2" not in proxy.terminating and "10.244.0.2" in proxy.gone)
        await cp.client.create(SERVICES, "default", service("poke"))  # any change: another sync
        await eventually(lambda: last_targets(rec, "poke") == [])
        assert last_targets(rec, "web") == ["10.244.0.3"]
        # ... until the slice drops it, when the address is forgotten (a new pod may get it).
        s = await cp.client.get(SLICES, "default", "web-1")
        s["endpoints"] = s["endpoints"][1:]
        await cp.client.update(SLICES, "default", s)
        await eventually(lambda: "10.244.0.2" not in proxy.gone)
        # A new pod with a once-gone address is routed normally.
        await make_pod(cp, "c", "10.244.0.2")
        await cp.client.create(SLICES, "default", slice_("web", "web-2", {"10.244.0.2": True}))
        await eventually(lambda: last_targets(rec, "web") == ["10.244.0.2", "10.244.0.3"])


async def test_selectorless_service_uses_its_hand_made_endpoints(tmp_path: Path) -> None:
    rec = Recorder()
    async with started(tmp_path, lambda cp: ServiceProxy(cp.informers, rec)) as (cp, _):
        await cp.client.create(SERVICES, "default", service("db"))
        await cp.client.create(ENDPOINTS, "default", {
            "metadata": {"name": "db", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "192.0.2.7"}], "ports": [{"name": "http", "port": 5432}]}]})
        await eventually(lambda: last_targets(rec, "db") == ["192.0.2.7"])
        # Endpoints of a service with a selector are the endpoints controller's: the slices alone count there.
        await cp.client.create(SERVICES, "default", service("web", {"app": "web"}))
        await cp.client.create(ENDPOINTS, "default", {
            "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "192.0.2.8"}], "ports": [{"name": "http", "port": 8080}]}]})
        await eventually(lambda: last_targets(rec, "web") == [])


async def test_bursts_coalesce_and_failures_retry(tmp_path: Path) -> None:
    rec = Recorder(delay=0.05)
    async with started(tmp_path, lambda cp: ServiceProxy(cp.informers, rec)) as (cp, (proxy,)):
        await eventually(lambda: rec.applied)
        before = len(rec.applied)
        for i in range(30):
            await cp.client.create(SERVICES, "default", service(f"s{i}", {"app": f"s{i}"}))
        await eventually(lambda: sum(1 for sp in rec.applied[-1] if sp.service.startswith("s")) == 30)
        # 30 changes while each sync takes 50 ms: far fewer syncs than changes.
        assert len(rec.applied) - before < 10
        rec.fail_next = 2
        await cp.client.delete(SERVICES, "default", "s0")
        await eventually(lambda: all(sp.service != "s0" for sp in rec.applied[-1]), timeout=5)
        assert rec.fail_next == 0 and proxy.generation >= 3


async def test_nftables_data_path_loads_and_removes_its_table(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.fail("nft and root are required (scripts/install-system-deps.sh; CI runs as root)")
    path = NftablesDataPath("ut" + os.urandom(3).hex(), ["10.250.0.1"], "10.250.0.0/16")
    async with started(tmp_path, lambda cp: ServiceProxy(cp.informers, path)) as (cp, _):
        await cp.client.create(SERVICES, "default", service("web", {"app": "web"}, type="NodePort"))
        await cp.client.create(SLICES, "default", slice_("web", "web-1", {"10.250.0.9": True}))

        def listed() -> str:
            return subprocess.run(["nft", "list", "table", "ip", path.table], capture_output=True, text=True).stdout

        svc = await cp.client.get(SERVICES, "default", "web")
        await eventually(lambda: "10.250.0.9" in listed())
        text = listed()
        assert svc["spec"]["clusterIP"] in text and str(svc["spec"]["ports"][0]["nodePort"]) in text
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert path.table not in tables
