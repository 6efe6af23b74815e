"""Deployments on simulated nodes, driven by the real kubectl as the seeds drive them.

Each test uses its own namespace in one module-scoped cluster with three simulated
nodes. Invariants of rolling updates are checked on the pod watch stream itself:
a watcher thread applies every event to its own copy of the pods and records the
counts after each one.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import Cluster, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def ns(sim_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    sim_cluster.kubectl("create", "namespace", name)
    yield name
    sim_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def deployment_manifest(name: str, image: str, replicas: int, *, surge: Any = 1, unavailable: Any = 1,
                        annotations: dict[str, str] | None = None, strategy: str = "RollingUpdate",
                        progress_deadline: int | None = None) -> str:
    spec: dict[str, Any] = {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                     "spec": {"containers": [{"name": name, "image": image}]}}}
    if strategy == "RollingUpdate":
        spec["strategy"] = {"type": strategy, "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    else:
        spec["strategy"] = {"type": strategy}
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec})


class PodWatcher(threading.Thread):
    """Lists then watches a namespace's pods; after every event records (active pods, available pods, images)."""

    def __init__(self, c: Cluster, ns: str, selector: str) -> None:
        super().__init__(daemon=True)
        ctx = ssl.create_default_context(cadata=(c.data_dir / "ca.crt").read_text())
        token = (c.data_dir / "token").read_text().strip()
        self.http = httpx.Client(base_url=c.state["url"], verify=ctx, headers={"Authorization": f"Bearer {token}"},
                                 timeout=httpx.Timeout(10, read=None))
        self.path = f"/api/v1/namespaces/{ns}/pods"
        self.selector = selector
        self.pods: dict[str, dict[str, Any]] = {}
        self.samples: list[tuple[int, int, frozenset[str]]] = []
        self.all_images: list[frozenset[str]] = []  # images of every existing pod, terminating ones included
        self.ready = threading.Event()
        self.stopped = False
        self.error: BaseException | None = None

    def _record(self) -> None:
        active = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]
        available = [p for p in active if any(c["type"] == "Ready" and c["status"] == "True"
                                              for c in (p.get("status") or {}).get("conditions") or [])]
        images = frozenset(p["spec"]["containers"][0]["image"] for p in active)
        self.samples.append((len(active), len(available), images))
        self.all_images.append(frozenset(p["spec"]["containers"][0]["image"] for p in self.pods.values()))

    def run(self) -> None:
        try:
            body = self.http.get(self.path, params={"labelSelector": self.selector}).json()
            for p in body["items"]:
                self.pods[p["metadata"]["name"]] = p
            self._record()
            params = {"labelSelector": self.selector, "watch": "1", "resourceVersion": body["metadata"]["resourceVersion"]}
            with self.http.stream("GET", self.path, params=params) as r:
                self.ready.set()
                for line in r.iter_lines():
                    if self.stopped:
                        return
                    if not line:
                        continue
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        raise AssertionError(f"watch error: {ev}")
                    name = ev["object"]["metadata"]["name"]
                    if ev["type"] == "DELETED":
                        self.pods.pop(name, None)
                    elif ev["type"] in ("ADDED", "MODIFIED"):
                        self.pods[name] = ev["object"]
                    self._record()
        except BaseException as ex:  # surfaced by the test through .error
            if not self.stopped:
                self.error = ex
            self.ready.set()

    def stop(self) -> None:
        self.stopped = True
        self.http.close()


def deploy_status(c: Cluster, ns: str, name: str) -> dict[str, Any]:
    st: dict[str, Any] = c.kjson("-n", ns, "get", "deployment", name).get("status") or {}
    return st


def rolled_out(c: Cluster, ns: str, name: str, replicas: int, image: str | None = None) -> bool:
    d = c.kjson("-n", ns, "get", "deployment", name)
    st = d.get("status") or {}
    if image is not None and d["spec"]["template"]["spec"]["containers"][0]["image"] != image:
        return False
    return bool(st.get("observedGeneration") == d["metadata"]["generation"] and st.get("updatedReplicas") == replicas
                and st.get("availableReplicas") == replicas and st.get("replicas") == replicas)


def rs_list(c: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = c.kjson("-n", ns, "get", "rs")["items"]
    return items


# -- seed 003: the storefront rolling update ---------------------------------------------------------------------
def test_storefront_rollout_respects_surge_and_unavailable(sim_cluster: Cluster, ns: str) -> None:
    c = sim_cluster
    ann = {"sim.tinykube.io/ready-seconds": "0.4"}
    m = deployment_manifest("storefront", "storefront:0.0.1", 4, annotations=ann)
    c.kubectl("-n", ns, "apply", "-f", "-", "--record", input=m)
    out = c.kubectl("-n", ns, "rollout", "status", "deployment", "storefront", "--timeout=60s").stdout
    assert out.strip().endswith('deployment "storefront" successfully rolled out')
    w = PodWatcher(c, ns, "app=storefront")
    w.start()
    assert w.ready.wait(10)
    try:
        c.kubectl("-n", ns, "set", "image", "deployment", "storefront", "storefront=storefront:0.0.2", "--record")
        st = c.kubectl("-n", ns, "rollout", "status", "deployment", "storefront", "--timeout=90s")
        lines = st.stdout.strip().splitlines()
        assert lines[-1] == 'deployment "storefront" successfully rolled out'
        for line in lines[:-1]:
            assert re.fullmatch(r'Waiting for deployment "storefront" rollout to finish: (\d+ out of 4 new replicas have '
                                r'been updated|\d+ old replicas are pending termination|\d+ of 4 updated replicas are '
                                r'available)\.\.\.', line), line
        wait_for(lambda: w.samples and w.samples[-1][0] == 4 and w.samples[-1][2] == {"storefront:0.0.2"},
                 what="4 new pods seen by the watcher")
    finally:
        w.stop()
    assert w.error is None, w.error
    assert len(w.samples) > 10
    assert max(s[0] for s in w.samples) <= 5, "more than replicas + maxSurge pods"
    assert min(s[1] for s in w.samples) >= 3, "fewer than replicas - maxUnavailable available pods"
    assert any(len(s[2]) == 2 for s in w.samples), "old and new pods never coexisted: not a rolling update"
    hist = c.kubectl("-n", ns, "rollout", "history", "deployment", "storefront").stdout
    rows = [r.split(None, 1) for r in hist.strip().splitlines()[2:]]
    assert [r[0] for r in rows] == ["1", "2"]
    assert rows[0][1].startswith("kubectl apply") and "--record=true" in rows[0][1]
    assert rows[1][1].startswith("kubectl set image deployment storefront storefront=storefront:0.0.2")
    # The new RS carries the deployment's annotations as seed 003's `describe replicaset` shows.
    new_rs = next(r for r in rs_list(c, ns) if r["spec"]["replicas"] == 4)
    ann_rs = new_rs["metadata"]["annotations"]
    assert ann_rs["deployment.kubernetes.io/desired-replicas"] == "4"
    assert ann_rs["deployment.kubernetes.io/max-replicas"] == "5"
    assert ann_rs["deployment.kubernetes.io/revision"] == "2"
    desc = c.kubectl("-n", ns, "describe", "replicaset", new_rs["metadata"]["name"]).stdout
    assert "deployment.kubernetes.io/max-replicas: 5" in desc and "Controlled By:  Deployment/storefront" in desc
    assert re.search(r"Pods Status:\s+4 Running / 0 Waiting / 0 Succeeded / 0 Failed", desc), desc
    # Undo restores the first template as revision 3.
    assert "rolled back" in c.kubectl("-n", ns, "rollout", "undo", "deployment", "storefront").stdout
    c.kubectl("-n", ns, "rollout", "status", "deployment", "storefront", "--timeout=90s")
    d = c.kjson("-n", ns, "get", "deployment", "storefront")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "storefront:0.0.1"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    hist = c.kubectl("-n", ns, "rollout", "history", "deployment", "storefront").stdout
    assert [r.split()[0] for r in hist.strip().splitlines()[2:]] == ["2", "3"]
    rev2 = c.kubectl("-n", ns, "rollout", "history", "deployment", "storefront", "--revision=2").stdout
    assert "storefront:0.0.2" in rev2 and "pod-template-hash=" in rev2


# -- seed 001: create, scale, set image, a bad image, undo --------------------------------------------------------
def test_seed001_scale_update_bad_image_and_undo(sim_cluster: Cluster, ns: str) -> None:
    c = sim_cluster
    out = c.kubectl("-n", ns, "create", "deployment", "hello-part3", "--image=learn-kubernetes:part3v1").stdout
    assert out.strip() == "deployment.apps/hello-part3 created"
    c.kubectl("-n", ns, "rollout", "status", "deployment", "hello-part3", "--timeout=60s")
    pods = c.kubectl("-n", ns, "get", "pods").stdout.splitlines()
    assert len(pods) == 2 and re.match(r"hello-part3-[a-z0-9]{8,10}-[a-z0-9]{5}\s+1/1\s+Running\s+0\s", pods[1]), pods
    c.kubectl("-n", ns, "scale", "deployments/hello-part3", "--replicas=4")
    wait_for(lambda: rolled_out(c, ns, "hello-part3", 4), what="4 replicas")
    table = c.kubectl("-n", ns, "get", "deployments").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["hello-part3", "4/4", "4", "4"]
    wide = c.kubectl("-n", ns, "get", "pods", "-o", "wide").stdout.splitlines()[1:]
    assert len(wide) == 4 and all(re.search(r"\s1/1\s+Running\s.*\s\d+\.\d+\.\d+\.\d+\s+sim-node-\d", r) for r in wide)
    assert len({r.split()[6] for r in wide}) == 3, "pods are not spread over the 3 nodes"
    c.kubectl("-n", ns, "scale", "deployments/hello-part3", "--replicas=2")
    wait_for(lambda: rolled_out(c, ns, "hello-part3", 2), what="2 replicas")
    c.kubectl("-n", ns, "set", "image", "deployment/hello-part3", "learn-kubernetes=learn-kubernetes:part3v2")
    c.kubectl("-n", ns, "rollout", "status", "deployments/hello-part3", "--timeout=60s")
    desc = c.kubectl("-n", ns, "describe", "deployment/hello-part3").stdout
    for expected in ("deployment.kubernetes.io/revision: 2",
                     "Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable",
                     "StrategyType:           RollingUpdate",
                     "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
                     "Image:         learn-kubernetes:part3v2"):
        assert expected in desc, (expected, desc)
    assert re.search(r"Available\s+True\s+MinimumReplicasAvailable", desc)
    assert re.search(r"Progressing\s+True\s+NewReplicaSetAvailable", desc)
    assert re.search(r"OldReplicaSets:\s+hello-part3-\w+ \(0/0 replicas created\)", desc), desc
    assert re.search(r"NewReplicaSet:\s+hello-part3-\w+ \(2/2 replicas created\)", desc), desc
    assert re.search(r"Normal\s+ScalingReplicaSet\s+.*deployment-controller\s+Scaled up replica set hello-part3-\w+ "
                     r"(from \d+ )?to 1", desc), desc
    # A missing image: the new pod never pulls; the rollout stalls at 2/2 READY, 1 UP-TO-DATE, 2 AVAILABLE.
    c.kubectl("-n", ns, "patch", "deployment", "hello-part3", "--type=merge", "-p",
              json.dumps({"spec": {"template": {"metadata": {"annotations": {
                  "sim.tinykube.io/missing-images": "*:part3v10"}}}}}))
    c.kubectl("-n", ns, "rollout", "status", "deployments/hello-part3", "--timeout=60s")
    c.kubectl("-n", ns, "set", "image", "deployment/hello-part3", "learn-kubernetes=learn-kubernetes:part3v10")

    def stalled() -> bool:
        row = c.kubectl("-n", ns, "get", "deployments").stdout.splitlines()[1].split()
        if row[1:4] != ["2/2", "1", "2"]:
            return False
        pods = c.kubectl("-n", ns, "get", "pods").stdout
        return bool(re.search(r"0/1\s+(ErrImagePull|ImagePullBackOff)", pods))
    wait_for(stalled, what="stalled rollout with ErrImagePull")
    # Undo heals it: back to the part3v2 template (as a new revision), two available pods, nothing pulling.
    out = c.kubectl("-n", ns, "rollout", "undo", "deployment", "hello-part3").stdout
    assert out.strip() == "deployment.apps/hello-part3 rolled back"
    c.kubectl("-n", ns, "rollout", "status", "deployments/hello-part3", "--timeout=60s")
    d = c.kjson("-n", ns, "get", "deployment", "hello-part3")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "learn-kubernetes:part3v2"
    wait_for(lambda: "ImagePull" not in c.kubectl("-n", ns, "get", "pods").stdout and
             len(c.kubectl("-n", ns, "get", "pods", "--no-headers").stdout.splitlines()) == 2, what="bad pod gone")


def test_progress_deadline_exceeded(sim_cluster: Cluster, ns: str) -> None:
    c = sim_cluster
    m = deployment_manifest("stuck", "app:1", 3, surge="25%", unavailable="25%", progress_deadline=3)
    c.kubectl("-n", ns, "apply", "-f", "-", input=m)
    c.kubectl("-n", ns, "rollout", "status", "deployment", "stuck", "--timeout=60s")
    never = deployment_manifest("stuck", "app:2", 3, surge="25%", unavailable="25%", progress_deadline=3,
                                annotations={"sim.tinykube.io/never-ready": "true"})
    c.kubectl("-n", ns, "apply", "-f", "-", input=never)
    p = c.kubectl("-n", ns, "rollout", "status", "deployment", "stuck", "--timeout=60s", check=False)
    assert p.returncode != 0
    assert 'error: deployment "stuck" exceeded its progress deadline' in p.stderr
    st = deploy_status(c, ns, "stuck")
    prog = next(x for x in st["conditions"] if x["type"] == "Progressing")
    assert prog["status"] == "False" and prog["reason"] == "ProgressDeadlineExceeded"
    assert re.fullmatch(r'ReplicaSet "stuck-\w+" has timed out progressing\.', prog["message"])
    # Where upstream settles: surge 1 (ceil 0.75), unavailable 0 (floor 0.75): 1 new never-ready pod, 3 old ones.
    assert st["replicas"] == 4 and st["updatedReplicas"] == 1 and st["availableReplicas"] == 3
    assert st["unavailableReplicas"] == 1
    sizes = sorted((r["spec"]["replicas"], r["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                   for r in rs_list(c, ns))
    assert sizes == [(1, "2"), (3, "1")]


def test_update_during_rollout_creates_third_replicaset(sim_cluster: Cluster, ns: str) -> None:
    c = sim_cluster
    slow = {"sim.tinykube.io/ready-seconds": "1"}
    c.kubectl("-n", ns, "apply", "-f", "-", input=deployment_manifest("web", "web:1", 4, annotations=slow))
    c.kubectl("-n", ns, "rollout", "status", "deployment", "web", "--timeout=60s")
    c.kubectl("-n", ns, "set", "image", "deployment/web", "web=web:2")
    wait_for(lambda: len(rs_list(c, ns)) == 2, what="second RS")
    c.kubectl("-n", ns, "set", "image", "deployment/web", "web=web:3")
    c.kubectl("-n", ns, "rollout", "status", "deployment", "web", "--timeout=90s")
    rss = rs_list(c, ns)
    assert len(rss) == 3
    by_image = {r["spec"]["template"]["spec"]["containers"][0]["image"]: r for r in rss}
    assert by_image["web:3"]["spec"]["replicas"] == 4 and by_image["web:3"]["status"]["availableReplicas"] == 4
    assert by_image["web:1"]["spec"]["replicas"] == 0 and by_image["web:2"]["spec"]["replicas"] == 0
    assert by_image["web:3"]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    wait_for(lambda: {p["spec"]["containers"][0]["image"] for p in c.kjson("-n", ns, "get", "pods")["items"]}
             == {"web:3"}, what="only web:3 pods")


def test_recreate_never_mixes_old_and_new(sim_cluster: Cluster, ns: str) -> None:
    c = sim_cluster
    ann = {"sim.tinykube.io/ready-seconds": "0.3", "sim.tinykube.io/terminate-seconds": "0.5"}
    c.kubectl("-n", ns, "apply", "-f", "-",
              input=deployment_manifest("batch", "batch:1", 3, strategy="Recreate", annotations=ann))
    c.kubectl("-n", ns, "rollout", "status", "deployment", "batch", "--timeout=60s")
    w = PodWatcher(c, ns, "app=batch")
    w.start()
    assert w.ready.wait(10)
    try:
        c.kubectl("-n", ns, "set", "image", "deployment/batch", "batch=batch:2")
        c.kubectl("-n", ns, "rollout", "status", "deployment", "batch", "--timeout=60s")
        wait_for(lambda: w.samples and w.samples[-1][2] == {"batch:2"} and w.samples[-1][1] == 3, what="3 new pods")
    finally:
        w.stop()
    assert w.error is None, w.error
    # Terminating pods count too: Recreate waits until old pods are gone, not merely deleted.
    mixed = [names for names in w.all_images if len(names) > 1]
    assert not mixed, f"old and new pods existed at once: {mixed[:3]}"
    assert any(s[0] == 0 for s in w.samples), "never went through zero pods"


def test_scaling_mid_rollout_is_proportional(sim_cluster: Cluster, ns: str) -> None:
    c = sim_cluster
    # Seed-style numbers from the Kubernetes docs: 10 replicas, surge 3, unavailable 2, then scale to 15 mid-rollout.
    c.kubectl("-n", ns, "apply", "-f", "-", input=deployment_manifest("prop", "p:1", 10, surge=3, unavailable=2))
    c.kubectl("-n", ns, "rollout", "status", "deployment", "prop", "--timeout=60s")
    c.kubectl("-n", ns, "patch", "deployment", "prop", "--type=merge", "-p", json.dumps({"spec": {"template": {
        "metadata": {"annotations": {"sim.tinykube.io/missing-images": "*:2"}}, "spec": {"containers": [
            {"name": "prop", "image": "p:2"}]}}}}))

    def stalled() -> list[dict[str, Any]] | None:
        rss = rs_list(c, ns)
        sizes = sorted(r["spec"]["replicas"] for r in rss)
        return rss if sizes == [5, 8] else None
    wait_for(stalled, what="rollout stuck at old 8 / new 5")
    c.kubectl("-n", ns, "scale", "deployment", "prop", "--replicas=15")

    def scaled() -> bool:
        rss = rs_list(c, ns)
        by_image = {r["spec"]["template"]["spec"]["containers"][0]["image"]: r["spec"]["replicas"] for r in rss}
        return by_image == {"p:1": 11, "p:2": 7}
    wait_for(scaled, what="proportional split 11/7 of 18 = 15 + surge 3")
    for r in rs_list(c, ns):
        assert r["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "15"
        assert r["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "18"


def test_delete_cascades_and_orphan_keeps(sim_cluster: Cluster, ns: str) -> None:
    c = sim_cluster
    c.kubectl("-n", ns, "create", "deployment", "gone", "--image=x:1", "--replicas=3")
    c.kubectl("-n", ns, "create", "deployment", "kept", "--image=x:1", "--replicas=2")
    wait_for(lambda: rolled_out(c, ns, "gone", 3) and rolled_out(c, ns, "kept", 2), what="both deployments")
    c.kubectl("-n", ns, "delete", "deployment", "gone")
    wait_for(lambda: not c.kubectl("-n", ns, "get", "rs,pods", "-l", "app=gone", "--no-headers").stdout.strip(),
             what="RS and pods of the deleted deployment gone")
    c.kubectl("-n", ns, "delete", "deployment", "kept", "--cascade=orphan")
    wait_for(lambda: "kept" not in c.kubectl("-n", ns, "get", "deployments", "--no-headers").stdout,
             what="deployment deleted")
    rss = c.kjson("-n", ns, "get", "rs", "-l", "app=kept")["items"]
    assert len(rss) == 1 and not rss[0]["metadata"].get("ownerReferences")
    pods = c.kjson("-n", ns, "get", "pods", "-l", "app=kept")["items"]
    assert len(pods) == 2 and all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in pods)
    c.kubectl("-n", ns, "delete", "rs", "-l", "app=kept", "--cascade=foreground")
    wait_for(lambda: not c.kubectl("-n", ns, "get", "rs,pods", "-l", "app=kept", "--no-headers").stdout.strip(),
             what="foreground delete of the RS and its pods")
