"""Blue/green and canary releases with the example manifests of docs/release-strategies.md, on a real node.

The test applies the files of ``docs/examples/`` exactly as they are on disk (the doc and the test cannot
drift apart): the images ``myapp:v1`` and ``myapp:v2`` are built with ``tinykube image build`` from
``docs/examples/app`` as the doc says, so the manifests' image names need no substitution. Each example runs in
its own namespace. Requests go from the host to ``127.0.0.1:NODEPORT``, one new connection per request, so each
one is routed afresh by the service data path.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Cluster, new_cluster, stop, wait_for
from .test_agent import _require_root

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
BLUE_GREEN = EXAMPLES / "blue-green"
CANARY = EXAMPLES / "canary"
LOADGEN = ROOT / "tests" / "loadgen.py"


@pytest.fixture(scope="module")
def rs_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_root()
    c = new_cluster(tmp_path_factory.mktemp("releases"))
    c.up("--no-kubeconfig-merge")
    try:
        for version in ("v1", "v2"):
            c.tinykube("image", "build", "-t", f"myapp:{version}", "--build-arg", f"VERSION={version}",
                       str(EXAMPLES / "app"), timeout=240)
        yield c
    finally:
        stop(c)  # also checks that no nftables table, route, bridge or namespace is left


def _manifest(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _get(host: str, port: int) -> tuple[str, str]:
    """One GET on a new connection: the answer's (version, hostname)."""
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        r = conn.getresponse()
        body = r.read().decode()
        assert r.status == 200, (r.status, body)
    finally:
        conn.close()
    version, hostname = body.split()
    return version, hostname


def _replies(port: int, n: int) -> list[tuple[str, str]]:
    return [_get("127.0.0.1", port) for _ in range(n)]


def _pods(c: Cluster, ns: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = c.kjson("get", "pods", "-n", ns, "-l", selector)["items"]
    return items


def _ready_names(c: Cluster, ns: str, selector: str, n: int) -> set[str] | None:
    """The names of the pods matching ``selector`` if there are exactly ``n``, all Ready and none terminating."""
    pods = _pods(c, ns, selector)
    ready = {p["metadata"]["name"] for p in pods
             if not p["metadata"].get("deletionTimestamp")
             and any(cd["type"] == "Ready" and cd["status"] == "True"
                     for cd in (p.get("status") or {}).get("conditions") or [])}
    return ready if len(ready) == n == len(pods) else None


def _wait_ready(c: Cluster, ns: str, selector: str, n: int) -> set[str]:
    if n == 0:
        wait_for(lambda: not _pods(c, ns, selector), timeout=60, what=f"no pods left for {selector}")
        return set()
    names: set[str] = wait_for(lambda: _ready_names(c, ns, selector, n), timeout=90,
                               what=f"{n} ready pods for {selector}")
    return names


def _node_port(c: Cluster, ns: str) -> int:
    return int(c.kjson("get", "service", "myapp", "-n", ns)["spec"]["ports"][0]["nodePort"])


def _serving(port: int, names: set[str], n: int = 40) -> Counter[str] | None:
    """``n`` answers if every one came from ``names`` and every name answered at least once, else None."""
    seen = Counter(h for _, h in _replies(port, n))
    return seen if set(seen) == names else None


def _start_load(port: int) -> subprocess.Popen[str]:
    # 2 keep-alive and 2 new-connection clients, 300 requests/s in all, until stdin closes.
    return subprocess.Popen([sys.executable, str(LOADGEN), f"http://127.0.0.1:{port}/", "--rate", "300",
                             "--keepalive", "2", "--new-conn", "2", "--duration", "600", "--until-stdin-closes"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _stop_load(load: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = load.communicate("", timeout=60)
    stats: dict[str, Any] = json.loads(out)
    print(json.dumps({k: v for k, v in stats.items() if k != "bodies"}))
    return stats


def test_blue_green_switches_all_traffic_by_the_service_selector(rs_cluster: Cluster) -> None:
    c, ns = rs_cluster, "blue-green"
    files = {name: BLUE_GREEN / f"{name}.yaml" for name in ("myapp-blue", "myapp-green", "service-blue",
                                                              "service-green")}
    blue, green = _manifest(files["myapp-blue"]), _manifest(files["myapp-green"])
    svc_blue, svc_green = _manifest(files["service-blue"]), _manifest(files["service-green"])
    # What the doc promises of its manifests: one image per colour, and two Service files that differ only in
    # the version they select.
    assert blue["spec"]["template"]["spec"]["containers"][0]["image"] == "myapp:v1"
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == "myapp:v2"
    assert svc_blue["spec"]["selector"] == {"app": "myapp", "version": "blue"}
    assert svc_green["spec"]["selector"] == {"app": "myapp", "version": "green"}
    assert {**svc_blue["spec"], "selector": None} == {**svc_green["spec"], "selector": None}
    replicas = int(blue["spec"]["replicas"])
    assert int(green["spec"]["replicas"]) == replicas

    c.kubectl("create", "namespace", ns)
    c.kubectl("apply", "-n", ns, "-f", str(files["myapp-blue"]), "-f", str(files["myapp-green"]),
              "-f", str(files["service-blue"]))
    for name in ("myapp-blue", "myapp-green"):
        c.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=90s", timeout=100)
    blue_pods = _wait_ready(c, ns, "app=myapp,version=blue", replicas)
    green_pods = _wait_ready(c, ns, "app=myapp,version=green", replicas)
    port = _node_port(c, ns)

    # Blue serves everything: every blue pod answers, v1, and no green pod does.
    wait_for(lambda: _serving(port, blue_pods), timeout=20, what="all blue pods answering")
    answers = _replies(port, 60)
    assert {v for v, _ in answers} == {"v1"} and {h for _, h in answers} <= blue_pods, answers

    load = _start_load(port)
    started = time.monotonic()
    try:
        time.sleep(1.5)  # traffic flows before the first switch
        # Switch to green by applying the second Service file.
        c.kubectl("apply", "-n", ns, "-f", str(files["service-green"]))
        t0 = time.monotonic()
        wait_for(lambda: {v for v, _ in _replies(port, 20)} == {"v2"}, timeout=10,
                 what="all answers from green (v2) after the switch")
        to_green = time.monotonic() - t0
        assert c.kjson("get", "service", "myapp", "-n", ns)["spec"]["selector"] == {"app": "myapp",
                                                                                    "version": "green"}
        answers = _replies(port, 60)
        assert {v for v, _ in answers} == {"v2"} and {h for _, h in answers} <= green_pods, answers
        ep = c.kjson("get", "endpoints", "myapp", "-n", ns)
        assert {a["targetRef"]["name"] for s in ep["subsets"] for a in s["addresses"]} == green_pods
        time.sleep(1.5)
        # And back to blue with kubectl patch.
        c.kubectl("patch", "service", "myapp", "-n", ns, "-p", '{"spec":{"selector":{"version":"blue"}}}')
        t0 = time.monotonic()
        wait_for(lambda: {v for v, _ in _replies(port, 20)} == {"v1"}, timeout=10,
                 what="all answers from blue (v1) after switching back")
        to_blue = time.monotonic() - t0
        answers = _replies(port, 60)
        assert {v for v, _ in answers} == {"v1"} and {h for _, h in answers} <= blue_pods, answers
        time.sleep(max(1.5, 7.0 - (time.monotonic() - started)))  # traffic goes on after the second switch
    finally:
        stats = _stop_load(load)
    print(f"switch to green seen in {to_green:.2f}s, back to blue in {to_blue:.2f}s")
    assert stats["failed"] == 0, stats["errors"]
    assert stats["sent"] > 500, stats
    assert stats["ok"] == stats["sent"], stats
    versions = Counter(body.split()[0] for body, n in stats["bodies"].items() for _ in range(n))
    assert versions["v1"] > 0 and versions["v2"] > 0, versions
    # The switch moved traffic only: both colours kept their pods throughout.
    assert _ready_names(c, ns, "app=myapp,version=blue", replicas) == blue_pods
    assert _ready_names(c, ns, "app=myapp,version=green", replicas) == green_pods
    c.kubectl("delete", "namespace", ns, "--wait=false")


def _v2_share(port: int, n: int = 400) -> float:
    answers = _replies(port, n)
    return sum(1 for v, _ in answers if v == "v2") / n


def test_canary_gets_its_share_of_ready_replicas_and_is_promoted_by_scaling(rs_cluster: Cluster) -> None:
    c, ns = rs_cluster, "canary"
    stable, canary = _manifest(CANARY / "myapp-stable.yaml"), _manifest(CANARY / "myapp-canary.yaml")
    svc = _manifest(CANARY / "service.yaml")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "myapp:v1"
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == "myapp:v2"
    assert (stable["spec"]["replicas"], canary["spec"]["replicas"]) == (3, 1)
    assert svc["spec"]["selector"] == {"app": "myapp"}

    c.kubectl("create", "namespace", ns)
    c.kubectl("apply", "-n", ns, "-f", str(CANARY))
    for name in ("myapp-stable", "myapp-canary"):
        c.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=90s", timeout=100)
    stable_pods = _wait_ready(c, ns, "app=myapp,track=stable", 3)
    canary_pods = _wait_ready(c, ns, "app=myapp,track=canary", 1)
    port = _node_port(c, ns)
    wait_for(lambda: _serving(port, stable_pods | canary_pods), timeout=20, what="all 4 pods answering")

    # 1 canary of 4 ready replicas: about a quarter of new connections.
    share = _v2_share(port)
    print(f"v2 share with 3 stable + 1 canary: {share:.3f}")
    assert 0.10 <= share <= 0.45, share

    # Promote by scaling, under load: canary up to 3, then stable down to 1.
    load = _start_load(port)
    try:
        time.sleep(1.0)
        c.kubectl("scale", "deployment", "myapp-canary", "-n", ns, "--replicas=3")
        canary_pods = _wait_ready(c, ns, "app=myapp,track=canary", 3)
        c.kubectl("scale", "deployment", "myapp-stable", "-n", ns, "--replicas=1")
        stable_pods = _wait_ready(c, ns, "app=myapp,track=stable", 1)
        wait_for(lambda: _serving(port, stable_pods | canary_pods), timeout=20,
                 what="3 canary pods and 1 stable pod answering")
        share = _v2_share(port)
        print(f"v2 share with 1 stable + 3 canary: {share:.3f}")
        assert share > 0.55, share
        # Finish: no stable replica left, so every answer is v2.
        c.kubectl("scale", "deployment", "myapp-stable", "-n", ns, "--replicas=0")
        _wait_ready(c, ns, "app=myapp,track=stable", 0)
        wait_for(lambda: {v for v, _ in _replies(port, 20)} == {"v2"}, timeout=10, what="only v2 answering")
        answers = _replies(port, 100)
        assert {v for v, _ in answers} == {"v2"} and {h for _, h in answers} <= canary_pods, answers
        time.sleep(1.0)
    finally:
        stats = _stop_load(load)
    # Scaling the tracks up and down dropped no request either.
    assert stats["failed"] == 0, stats["errors"]
    assert stats["sent"] > 300 and stats["ok"] == stats["sent"], stats
    c.kubectl("delete", "namespace", ns, "--wait=false")
