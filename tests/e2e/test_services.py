"""Services on a real node: the kernel data path, cluster DNS and zero-drop rollouts, driven by the real kubectl.

One cluster for the module (``tinykube up``, one real node, root). The app is a stdlib HTTP server that answers
its hostname and version, built with ``tinykube image build`` in two versions. Requests go from the host to
``127.0.0.1:NODEPORT``, ``NODE-IP:NODEPORT``, ``CLUSTER-IP:PORT`` and LoadBalancer addresses, and from pods to
service names.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import Cluster, new_cluster, stop, wait_for
from .test_agent import _ready_pods, _require_root

pytestmark = pytest.mark.e2e

LOADGEN = Path(__file__).resolve().parent.parent / "loadgen.py"

APP = '''import http.server, os, socket
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = f"{socket.gethostname()} v{os.environ.get('VERSION', '?')}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "80"))), Handler).serve_forever()
'''


def _dockerfile(version: str) -> str:
    return f"FROM python:3.11-slim\nWORKDIR /app\nCOPY app.py .\nENV VERSION={version}\nEXPOSE 80\nCMD [\"python\", \"app.py\"]\n"


@pytest.fixture(scope="module")
def svc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_root()
    c = new_cluster(tmp_path_factory.mktemp("svccluster"))
    c.up("--no-kubeconfig-merge")
    try:
        for version in ("1", "2"):
            ctx = tmp_path_factory.mktemp(f"hello-v{version}")
            (ctx / "app.py").write_text(APP)
            (ctx / "Dockerfile").write_text(_dockerfile(version))
            c.tinykube("image", "build", "-t", f"hello:v{version}", str(ctx), timeout=240)
        yield c
    finally:
        stop(c)  # also checks that no nftables table, route, bridge or namespace is left


def _deploy(c: Cluster, name: str, replicas: int, ns: str = "default", image: str = "hello:v1",
            *extra: str) -> list[dict[str, Any]]:
    c.kubectl("create", "deployment", name, f"--image={image}", f"--replicas={replicas}", "-n", ns, *extra)
    c.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=60s", timeout=70)
    pods: list[dict[str, Any]] = wait_for(lambda: _ready_pods(c, f"app={name}", replicas, ns), timeout=30,
                                          what=f"{replicas} ready pods")
    return pods


def _node_ip(c: Cluster) -> str:
    node = c.kjson("get", "nodes")["items"][0]
    return next(str(a["address"]) for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def _hosts(url: str, n: int) -> Counter[str]:
    """The first word of ``n`` answers (the pod's hostname), each on a new connection."""
    got: Counter[str] = Counter()
    for _ in range(n):
        r = httpx.get(url, timeout=3, headers={"Connection": "close"})
        assert r.status_code == 200, r.text
        got[r.text.split()[0]] += 1
    return got


def test_nodeport_clusterip_and_names_reach_every_ready_pod(svc_cluster: Cluster) -> None:
    c = svc_cluster
    pods = _deploy(c, "hello", 3)
    names = {p["metadata"]["name"] for p in pods}
    c.kubectl("expose", "deployment", "hello", "--port=80", "--type=NodePort")
    svc = c.kjson("get", "service", "hello")
    node_port, cluster_ip = svc["spec"]["ports"][0]["nodePort"], svc["spec"]["clusterIP"]
    # kubectl describe lists the ready pods' addresses.
    ips = sorted(p["status"]["podIP"] for p in pods)
    wait_for(lambda: all(f"{ip}:80" in c.kubectl("describe", "service", "hello").stdout for ip in ips),
             what="describe listing the 3 endpoints")
    for url in (f"http://127.0.0.1:{node_port}/", f"http://{_node_ip(c)}:{node_port}/", f"http://{cluster_ip}/"):
        seen = wait_for(lambda u=url: (lambda h: h if set(h) == names else None)(_hosts(u, 30)), timeout=20,
                        what=f"answers from all 3 pods through {url}")
        assert sum(seen.values()) == 30 and all(v > 0 for v in seen.values())
    # From a pod: the service by its short name, with its namespace, and fully qualified.
    pod = sorted(names)[0]
    script = ("import urllib.request\n"
              "for u in ('hello', 'hello.default', 'hello.default.svc.cluster.local'):\n"
              "    for _ in range(12):\n"
              "        print(u, urllib.request.urlopen('http://' + u + '/', timeout=3).read().decode().split()[0])\n")
    lines = [ln.split() for ln in c.kubectl("exec", pod, "--", "python", "-c", script).stdout.splitlines()]
    assert len(lines) == 36 and {h for _, h in lines} <= names and len({h for _, h in lines}) >= 2, lines
    # Scaling changes the endpoints, and the data path follows.
    c.kubectl("scale", "deployment", "hello", "--replicas=1")
    one = wait_for(lambda: _ready_pods(c, "app=hello", 1), timeout=60, what="one pod left")[0]["metadata"]["name"]
    wait_for(lambda: set(_hosts(f"http://127.0.0.1:{node_port}/", 10)) == {one}, timeout=20,
             what="only the remaining pod answering")
    ep = c.kjson("get", "endpoints", "hello")
    assert [a["targetRef"]["name"] for s in ep["subsets"] for a in s["addresses"]] == [one]
    c.kubectl("delete", "service", "hello")
    c.kubectl("delete", "deployment", "hello")


def test_zero_failed_requests_through_a_rolling_update_and_a_rollback(svc_cluster: Cluster) -> None:
    c = svc_cluster
    c.kubectl("create", "namespace", "zero")
    # The container declares its port (as seed 003's manifests do) and has no readiness probe: it becomes Ready
    # once it listens there, so no request reaches a process that is still starting.
    _deploy(c, "web", 4, "zero", "hello:v1", "--port=80")
    c.kubectl("expose", "deployment", "web", "--port=80", "--type=NodePort", "-n", "zero")
    node_port = c.kjson("get", "service", "web", "-n", "zero")["spec"]["ports"][0]["nodePort"]
    url = f"http://127.0.0.1:{node_port}/"
    wait_for(lambda: len(_hosts(url, 20)) > 1, timeout=20, what="the service answering from several pods")
    # Constant load: 2 keep-alive and 2 new-connection clients, 300 requests/s in all, no preStop hook anywhere.
    load = subprocess.Popen([sys.executable, str(LOADGEN), url, "--rate", "300", "--keepalive", "2",
                             "--new-conn", "2", "--duration", "600", "--until-stdin-closes"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    started = time.monotonic()
    try:
        time.sleep(1.0)  # traffic flows before the update starts
        c.kubectl("set", "image", "deployment/web", "hello=hello:v2", "-n", "zero")
        c.kubectl("rollout", "status", "deployment/web", "-n", "zero", "--timeout=120s", timeout=130)
        wait_for(lambda: _ready_pods(c, "app=web", 4, "zero"), timeout=60, what="4 v2 pods, old ones gone")
        c.kubectl("rollout", "undo", "deployment/web", "-n", "zero")
        c.kubectl("rollout", "status", "deployment/web", "-n", "zero", "--timeout=120s", timeout=130)
        wait_for(lambda: _ready_pods(c, "app=web", 4, "zero"), timeout=60, what="4 v1 pods, v2 ones gone")
        time.sleep(max(1.0, 6.0 - (time.monotonic() - started)))  # and goes on after the rollback
    finally:
        out, _ = load.communicate("", timeout=60)
    stats = json.loads(out)
    versions = Counter(body.split()[-1] for body, n in stats["bodies"].items() for _ in range(n))
    print(json.dumps({k: v for k, v in stats.items() if k != "bodies"}))
    assert stats["sent"] > 1000, stats
    assert stats["failed"] == 0, stats["errors"]
    assert stats["ok"] == stats["sent"]
    # Both versions answered, from more than 8 pods in all (4 v1, 4 v2, 4 v1 again).
    assert versions["v1"] > 0 and versions["v2"] > 0, versions
    assert len(stats["bodies"]) >= 8, stats["bodies"]
    c.kubectl("delete", "namespace", "zero", "--wait=false")


def test_session_affinity_keeps_a_client_on_one_pod(svc_cluster: Cluster) -> None:
    c = svc_cluster
    c.kubectl("create", "namespace", "sticky")
    _deploy(c, "st", 3, "sticky")
    c.kubectl("expose", "deployment", "st", "--port=80", "--type=NodePort", "--session-affinity=ClientIP",
              "-n", "sticky")
    svc = c.kjson("get", "service", "st", "-n", "sticky")
    assert svc["spec"]["sessionAffinity"] == "ClientIP"
    url = f"http://127.0.0.1:{svc['spec']['ports'][0]['nodePort']}/"
    wait_for(lambda: sum(_hosts(url, 1).values()) == 1, timeout=20, what="the service answering")
    assert len(_hosts(url, 25)) == 1
    c.kubectl("delete", "namespace", "sticky", "--wait=false")


def test_selectorless_service_with_hand_made_endpoints_and_taken_node_port(svc_cluster: Cluster) -> None:
    c = svc_cluster
    c.kubectl("create", "namespace", "manual")
    pod = _deploy(c, "backend", 1, "manual")[0]
    docs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "external-db", "namespace": "manual"},
             "spec": {"type": "NodePort", "ports": [{"port": 8080, "targetPort": 80}]}},
            {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external-db", "namespace": "manual"},
             "subsets": [{"addresses": [{"ip": pod["status"]["podIP"]}], "ports": [{"port": 80}]}]}]
    c.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    svc = c.kjson("get", "service", "external-db", "-n", "manual")
    # The EndpointSlice mirroring of hand-made Endpoints is what the data path reads.
    seen = wait_for(lambda: _hosts(f"http://{svc['spec']['clusterIP']}:8080/", 3), timeout=20,
                    what="the selector-less service answering")
    assert set(seen) == {pod["metadata"]["name"]}
    taken = svc["spec"]["ports"][0]["nodePort"]
    r = c.kubectl("create", "service", "nodeport", "dup", "--tcp=81:80", f"--node-port={taken}", "-n", "manual",
                  check=False)
    assert r.returncode != 0 and "provided port is already allocated" in r.stderr, r.stderr
    assert re.search(r"spec\.ports\[0\]\.nodePort", r.stderr)
    c.kubectl("delete", "namespace", "manual", "--wait=false")


def test_load_balancer_gets_a_local_external_ip(svc_cluster: Cluster) -> None:
    c = svc_cluster
    c.kubectl("create", "namespace", "lbs")
    pods = _deploy(c, "front", 2, "lbs")
    c.kubectl("expose", "deployment", "front", "--port=8080", "--target-port=80", "--type=LoadBalancer", "-n", "lbs")
    ip = wait_for(lambda: (c.kjson("get", "service", "front", "-n", "lbs")["status"].get("loadBalancer") or {})
                  .get("ingress"), timeout=20, what="a LoadBalancer address")[0]["ip"]
    row = c.kubectl("get", "service", "front", "-n", "lbs").stdout.splitlines()[1].split()
    assert row[1] == "LoadBalancer" and row[3] == ip, row
    names = {p["metadata"]["name"] for p in pods}
    seen = wait_for(lambda: (lambda h: h if set(h) == names else None)(_hosts(f"http://{ip}:8080/", 30)), timeout=20,
                    what="both pods answering on the LoadBalancer address")
    assert sum(seen.values()) == 30
    # A second LoadBalancer gets another address; the first keeps its own.
    c.kubectl("create", "service", "loadbalancer", "second", "--tcp=8080:80", "-n", "lbs")
    ip2 = wait_for(lambda: (c.kjson("get", "service", "second", "-n", "lbs")["status"].get("loadBalancer") or {})
                   .get("ingress"), timeout=20, what="a second address")[0]["ip"]
    assert ip2 != ip
    events = c.kubectl("get", "events", "-n", "lbs", "--field-selector", "involvedObject.name=front").stdout
    assert "EnsuredLoadBalancer" in events
    c.kubectl("delete", "namespace", "lbs", "--wait=false")


def test_expose_pod_and_service_headless_and_external_name(svc_cluster: Cluster) -> None:
    c = svc_cluster
    c.kubectl("create", "namespace", "kinds")
    pods = _deploy(c, "api", 2, "kinds", "hello:v1", "--port=80")
    one = pods[0]["metadata"]["name"]
    c.kubectl("label", "pod", one, "solo=yes", "-n", "kinds")
    # kubectl expose of a pod (selector from its labels) and of a service (a second service, same selector).
    c.kubectl("expose", "pod", one, "--name=solo", "--port=8080", "--target-port=80", "--selector=solo=yes",
              "-n", "kinds")
    c.kubectl("expose", "deployment", "api", "--port=80", "-n", "kinds")
    c.kubectl("expose", "service", "api", "--name=api-copy", "--port=81", "--target-port=80", "-n", "kinds")
    solo = c.kjson("get", "service", "solo", "-n", "kinds")["spec"]["clusterIP"]
    copy = c.kjson("get", "service", "api-copy", "-n", "kinds")["spec"]
    assert copy["selector"] == {"app": "api"}
    assert set(wait_for(lambda: _hosts(f"http://{solo}:8080/", 6), what="the pod's own service")) == {one}
    names = {p["metadata"]["name"] for p in pods}
    seen = wait_for(lambda: (lambda h: h if set(h) == names else None)(_hosts(f"http://{copy['clusterIP']}:81/", 30)),
                    timeout=20, what="the copied service reaching both pods")
    assert sum(seen.values()) == 30
    # Headless: the name resolves to the pods' own addresses; ExternalName: a CNAME to another service's name.
    c.kubectl("create", "service", "clusterip", "api-headless", "--clusterip=None", "--tcp=80:80", "-n", "kinds")
    c.kubectl("patch", "service", "api-headless", "-n", "kinds", "-p", '{"spec":{"selector":{"app":"api"}}}')
    c.kubectl("create", "service", "externalname", "alias", "--external-name=api.kinds.svc.cluster.local",
              "-n", "kinds")
    ips = sorted(p["status"]["podIP"] for p in pods)
    script = ("import socket, urllib.request\n"
              "print(sorted({a[4][0] for a in socket.getaddrinfo('api-headless', 80, socket.AF_INET)}))\n"
              "print(socket.gethostbyname_ex('alias.kinds.svc.cluster.local'))\n"
              "print(urllib.request.urlopen('http://alias/', timeout=3).read().decode().split()[0])\n")
    out = wait_for(lambda: (lambda r: r.stdout.splitlines() if r.returncode == 0 and str(ips) in r.stdout else None)(
        c.kubectl("exec", one, "-n", "kinds", "--", "python", "-c", script, check=False)), timeout=20,
        what="headless and ExternalName names resolving")
    assert out[0] == str(ips)
    api_ip = c.kjson("get", "service", "api", "-n", "kinds")["spec"]["clusterIP"]
    assert "api.kinds.svc.cluster.local" in out[1] and api_ip in out[1], out[1]
    assert out[2] in names
    c.kubectl("delete", "namespace", "kinds", "--wait=false")
