"""Endpoints and EndpointSlices of an exposed Deployment on simulated nodes, read back with the real kubectl.

Each test uses its own namespace in the module's cluster with three simulated nodes (whose pods become
Running and Ready with pod IPs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Cluster, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def ns(sim_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "ep-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    sim_cluster.kubectl("create", "namespace", name)
    yield name
    sim_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _ready(p: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])


def ready_pod_ips(c: Cluster, ns: str, n: int) -> list[str] | None:
    """The IPs of the app's pods once exactly ``n`` exist, none terminating, all Ready with an IP."""
    pods = c.kjson("get", "pods", "-n", ns, "-l", "app=web")["items"]
    if len(pods) != n or any(p["metadata"].get("deletionTimestamp") for p in pods):
        return None
    if not all(_ready(p) and p["status"].get("podIP") for p in pods):
        return None
    return sorted(p["status"]["podIP"] for p in pods)


def endpoint_ips(c: Cluster, ns: str) -> list[str]:
    ep = c.kjson("get", "endpoints", "web", "-n", ns)
    return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])


def ready_slice_ips(c: Cluster, ns: str) -> list[str]:
    slices = c.kjson("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web")["items"]
    return sorted(a for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready")
                  for a in e["addresses"])


def test_exposed_deployment_endpoints_follow_its_pods(sim_cluster: Cluster, ns: str) -> None:
    c = sim_cluster
    c.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3", "-n", ns)
    c.kubectl("expose", "deployment", "web", "--port=80", "-n", ns)
    ips = wait_for(lambda: ready_pod_ips(c, ns, 3), what="3 ready pods with IPs")

    wait_for(lambda: endpoint_ips(c, ns) == ips, what="endpoints listing the 3 pod IPs")
    table = c.kubectl("get", "endpoints", "web", "-n", ns).stdout
    row = table.splitlines()[1].split()
    assert row[0] == "web"
    assert sorted(row[1].split(",")) == sorted(f"{ip}:80" for ip in ips)

    ep = c.kjson("get", "endpoints", "web", "-n", ns)
    assert ep["metadata"]["labels"] == {"app": "web"}  # the service's labels (kubectl expose copies them)
    assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]
    assert [s["ports"] for s in ep["subsets"]] == [[{"port": 80, "protocol": "TCP"}]]
    pods = {p["metadata"]["name"]: p for p in c.kjson("get", "pods", "-n", ns, "-l", "app=web")["items"]}
    for a in ep["subsets"][0]["addresses"]:
        p = pods[a["targetRef"]["name"]]
        assert a["ip"] == p["status"]["podIP"] and a["nodeName"] == p["spec"]["nodeName"]
        assert a["targetRef"] == {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"],
                                  "uid": p["metadata"]["uid"]}

    described = c.kubectl("describe", "service", "web", "-n", ns).stdout
    line = next(ln for ln in described.splitlines() if ln.startswith("Endpoints:"))
    assert sorted(line.split()[1].split(",")) == sorted(f"{ip}:80" for ip in ips), described

    wait_for(lambda: ready_slice_ips(c, ns) == ips, what="a slice with the 3 pod IPs ready")
    slices = c.kjson("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web")["items"]
    assert len(slices) == 1
    s = slices[0]
    assert s["metadata"]["name"].startswith("web-") and s["addressType"] == "IPv4"
    assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert s["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert s["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]
    table = c.kubectl("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web").stdout
    header, row_text = table.splitlines()[:2]
    assert header.split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    row = row_text.split()
    assert row[0] == s["metadata"]["name"] and row[1:3] == ["IPv4", "80"]
    assert sorted(row[3].split(",")) == ips

    c.kubectl("scale", "deployment", "web", "--replicas=1", "-n", ns)
    left = wait_for(lambda: ready_pod_ips(c, ns, 1), what="1 pod left")
    wait_for(lambda: endpoint_ips(c, ns) == left, what="endpoints down to the remaining pod")
    wait_for(lambda: ready_slice_ips(c, ns) == left, what="slice down to the remaining pod")
    line = next(ln for ln in c.kubectl("describe", "service", "web", "-n", ns).stdout.splitlines()
                if ln.startswith("Endpoints:"))
    assert line.split()[1:] == [f"{left[0]}:80"]

    c.kubectl("delete", "service", "web", "-n", ns)
    wait_for(lambda: c.kubectl("get", "endpoints", "web", "-n", ns, check=False).returncode != 0,
             what="endpoints deleted with the service")
    wait_for(lambda: not c.kjson("get", "endpointslices", "-n", ns)["items"], what="slices collected")
