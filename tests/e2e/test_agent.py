"""Real pods on the local node, driven by the real kubectl as the seeds drive them (root mode).

One cluster for the module (``tinykube up``: one real node). The seed apps are built from their
Dockerfiles with ``tinykube image build`` (pip installs Flask from PyPI into the image's venv), deployed,
and reached on their pod IPs from the host.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Cluster, new_cluster, run_in_pty, stop, wait_for

pytestmark = pytest.mark.e2e

SEED001_APP = '''from flask import Flask
import os
import socket

app = Flask(__name__)

@app.route("/")
def hello():
    html = "<h3>Hello {name}! - application version VERSION</h3>" \\
           "<b>Hostname:</b> {hostname}<br/>"
    return html.format(name=os.getenv("NAME", "world"), hostname=socket.gethostname())

if __name__ == "__main__":
    app.run(host='0.0.0.0', port=80)
'''

SEED001_DOCKERFILE = '''# Use an official Python runtime as a parent image
FROM python:3.6
# Set the working directory to /app
WORKDIR /app
# Copy the current directory contents into the container at /app
ADD . /app
# Install any needed packages specified in requirements.txt
RUN pip install --trusted-host pypi.python.org -r requirements.txt
# Make port 80 available to the world outside this container
EXPOSE 80
# Define environment variable
ENV NAME World
# Run app.py when the container launches
CMD ["python", "app-part3-VERSION.py"]
'''

SEED000_APP = '''from flask import Flask

APP = Flask(__name__)


@APP.route('/')
def handle_request():
    return "Hello World!"

@APP.route('/_health')
def check_health():
    return "OK"

# create_app returns the flask app
#            can be consumed by wsgi server
def create_app():
    return APP


if __name__ == '__main__':
    APP.run(debug=True, host='0.0.0.0')
'''

# The same app, with its dependencies installed before the app is copied: editing the app keeps pip cached.
SEED000_DOCKERFILE = '''FROM python:3.8-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY app.py .
EXPOSE 5000
CMD ["python", "app.py"]
'''


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("real pods need root (network namespaces, bridge): CI runs as root")
    for tool in ("bwrap", "ip", "setpriv", "nsenter", "nft", "conntrack"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required: run scripts/install-system-deps.sh")


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_root()
    c = new_cluster(tmp_path_factory.mktemp("nodecluster"))
    c.up("--no-kubeconfig-merge")
    try:
        yield c
    finally:
        stop(c)  # also checks that no bridge, pod namespace or supervisor is left


@pytest.fixture(scope="module")
def flask_image(node_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 000's app built as ``oe-tools/dummy-flask-app`` (and tagged as in the seed); its build context."""
    ctx = tmp_path_factory.mktemp("dummy-flask-app")
    (ctx / "app.py").write_text(SEED000_APP)
    (ctx / "requirements.txt").write_text("Flask\n")
    (ctx / "Dockerfile").write_text(SEED000_DOCKERFILE)
    _build(node_cluster, ctx, "oe-tools/dummy-flask-app")
    node_cluster.tinykube("image", "tag", "oe-tools/dummy-flask-app",
                          "registry-qcc.quantil.com/oe-tools/dummy-flask-app:1.5.0")
    return ctx


def _build(c: Cluster, ctx: Path, tag: str, timeout: float = 240) -> str:
    return c.tinykube("image", "build", "-t", tag, str(ctx), timeout=timeout).stdout


def _seed001_context(tmp: Path, version: str) -> Path:
    d = tmp / f"app-part3-{version}"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"app-part3-{version}.py").write_text(SEED001_APP.replace("VERSION", version.lstrip("v")))
    (d / "requirements.txt").write_text("Flask\n")
    (d / "Dockerfile").write_text(SEED001_DOCKERFILE.replace("VERSION", version))
    return d


def _pods(c: Cluster, selector: str, ns: str = "default") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = c.kjson("get", "pods", "-n", ns, "-l", selector)["items"]
    return items


def _ready_pods(c: Cluster, selector: str, n: int, ns: str = "default") -> list[dict[str, Any]] | None:
    pods = [p for p in _pods(c, selector, ns) if not p["metadata"].get("deletionTimestamp")]
    ready = [p for p in pods if any(cd["type"] == "Ready" and cd["status"] == "True"
                                    for cd in (p.get("status") or {}).get("conditions") or [])]
    return ready if len(ready) == n and len(pods) == n else None


def _get(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=3).text
    except httpx.HTTPError:
        return None


def test_seed001_deploy_logs_exec_update_and_bad_tag_undo(node_cluster: Cluster, tmp_path: Path) -> None:
    c = node_cluster
    out = _build(c, _seed001_context(tmp_path, "v1"), "tsouche/learn-kubernetes:part3v1")
    assert "naming to docker.io/tsouche/learn-kubernetes:part3v1" in out
    _build(c, _seed001_context(tmp_path, "v2"), "tsouche/learn-kubernetes:part3v2")
    c.kubectl("create", "deployment", "hello-part3", "--image=tsouche/learn-kubernetes:part3v1", "--replicas=3")
    c.kubectl("rollout", "status", "deployment/hello-part3", "--timeout=90s", timeout=100)
    pods = wait_for(lambda: _ready_pods(c, "app=hello-part3", 3), timeout=30, what="3 ready pods")
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 3, "each pod has its own IP"
    node = c.kjson("get", "nodes")["items"][0]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("tinykube://")
    for p in pods:
        name, ip = p["metadata"]["name"], p["status"]["podIP"]
        body = wait_for(lambda ip=ip: _get(f"http://{ip}:80/"), timeout=20, what=f"{name} answers")
        assert "Hello World! - application version 1" in body
        assert f"<b>Hostname:</b> {name}<br/>" in body, "the reply names the pod's own hostname"
        cs = p["status"]["containerStatuses"][0]
        assert cs["imageID"].startswith("docker.io/tsouche/learn-kubernetes@sha256:")
    first = pods[0]["metadata"]["name"]
    logs = wait_for(lambda: (lambda t: t if "Serving Flask app" in t else None)(
        c.kubectl("logs", first).stdout), timeout=10, what="Flask's banner in the logs")
    assert "Running on http://" in c.kubectl("logs", first).stdout + c.kubectl("logs", first).stderr + logs
    env = c.kubectl("exec", first, "--", "env").stdout.splitlines()
    assert f"HOSTNAME={first}" in env and "NAME=World" in env
    # From inside the pod, the app answers on localhost (seed 001 §3.4 uses curl; the image has Python).
    inside = c.kubectl("exec", first, "--", "python", "-c",
                       "import urllib.request; print(urllib.request.urlopen('http://localhost:80').read().decode())")
    assert f"Hostname:</b> {first}" in inside.stdout
    # An interactive shell in the pod, on a terminal (seed 001: kubectl exec -ti $POD_NAME -- bash).
    code, text = run_in_pty([c.kubectl_path, "exec", "-ti", first, "--", "bash"], c.env,
                            b"hostname; pwd; id -u; ls; exit 7\n")
    assert code == 7, text
    assert first in text and "/app" in text and "app-part3-v1.py" in text, text
    # kubectl cp both ways (tar in the container) and port-forward to the pod's port 80.
    local = tmp_path / "copied.py"
    c.kubectl("cp", f"{first}:/app/app-part3-v1.py", str(local))
    assert "application version" in local.read_text()
    (tmp_path / "note.txt").write_text("from the host\n")
    c.kubectl("cp", str(tmp_path / "note.txt"), f"{first}:/tmp/note.txt")
    assert c.kubectl("exec", first, "--", "cat", "/tmp/note.txt").stdout == "from the host\n"
    pf = subprocess.Popen([c.kubectl_path, "port-forward", f"pod/{first}", ":80"], env=c.env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        assert pf.stdout is not None
        line = pf.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        body = wait_for(lambda: _get(f"http://127.0.0.1:{port}/"), timeout=10, what="the port-forwarded answer")
        assert f"Hostname:</b> {first}" in body
    finally:
        pf.kill()
        pf.wait()
    # Update to version 2, then to a tag that does not exist, then undo.
    c.kubectl("set", "image", "deployment/hello-part3", "learn-kubernetes=tsouche/learn-kubernetes:part3v2")
    c.kubectl("rollout", "status", "deployment/hello-part3", "--timeout=90s", timeout=100)
    pods = wait_for(lambda: _ready_pods(c, "app=hello-part3", 3), timeout=30, what="3 ready v2 pods")
    for p in pods:
        body = wait_for(lambda ip=p["status"]["podIP"]: _get(f"http://{ip}:80/"), timeout=20, what="v2 answers")
        assert "application version 2" in body
    c.kubectl("set", "image", "deployment/hello-part3", "learn-kubernetes=tsouche/learn-kubernetes:part3v10")

    def pull_failing() -> str | None:
        for p in _pods(c, "app=hello-part3"):
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
                if reason in ("ErrImagePull", "ImagePullBackOff"):
                    return str(p["metadata"]["name"])
        return None

    bad = wait_for(pull_failing, timeout=30, what="ErrImagePull for the missing tag")
    events = c.kubectl("get", "events", "--field-selector", f"involvedObject.name={bad}").stdout
    assert 'Failed to pull image "tsouche/learn-kubernetes:part3v10"' in events
    c.kubectl("rollout", "undo", "deployments/hello-part3")
    c.kubectl("rollout", "status", "deployment/hello-part3", "--timeout=90s", timeout=100)
    pods = wait_for(lambda: _ready_pods(c, "app=hello-part3", 3), timeout=30, what="healed after undo")
    assert all(p["spec"]["containers"][0]["image"].endswith(":part3v2") for p in pods)
    c.kubectl("delete", "deployment", "hello-part3")


SEED000_MANIFEST = """
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, namespace: opseng}
data: {GREETING: hello-from-configmap}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret, namespace: opseng}
stringData: {API_TOKEN: s3cr3t}
---
apiVersion: apps/v1
kind: Deployment
metadata:
    name: dummy-flask-app
    namespace: opseng
spec:
    replicas: 2
    selector:
        matchLabels:
            app: dummy-flask-app
    template:
        metadata:
            labels:
                app: dummy-flask-app
            annotations:
                quantil.com/externalIP: 203.0.113.7
        spec:
            containers:
            - image: registry-qcc.quantil.com/oe-tools/dummy-flask-app:1.5.0
              name: dummy-flask-app
              env:
              - name: PUBLIC_IP
                valueFrom:
                    fieldRef:
                        fieldPath: metadata.annotations['quantil.com/externalIP']
              - name: MY_POD
                valueFrom:
                    fieldRef:
                        fieldPath: metadata.name
              - name: GREETING
                valueFrom:
                    configMapKeyRef: {name: app-config, key: GREETING}
              - name: API_TOKEN
                valueFrom:
                    secretKeyRef: {name: app-secret, key: API_TOKEN}
              readinessProbe:
                  httpGet: {path: /_health, port: 5000}
                  periodSeconds: 1
              resources:
                  requests:
                      memory: "64Mi"
                      cpu: "100m"
                  limits:
                      memory: "256Mi"
                      cpu: "500m"
"""


def test_seed000_health_probe_env_and_cached_rebuild(node_cluster: Cluster, flask_image: Path,
                                                     tmp_path: Path) -> None:
    c = node_cluster
    ctx = tmp_path / "edited"
    shutil.copytree(flask_image, ctx)
    # An app edit rebuilds without running pip again.
    (ctx / "app.py").write_text(SEED000_APP.replace("Hello World!", "Hello again!"))
    out = _build(c, ctx, "oe-tools/dummy-flask-app:edited")
    pip_step = [ln for ln in out.splitlines() if "RUN pip install" in ln]
    assert pip_step, out
    step_id = pip_step[0].split()[0]
    assert f"{step_id} CACHED" in out, f"the pip step was not reused:\n{out}"

    c.kubectl("create", "namespace", "opseng")
    c.kubectl("apply", "-f", "-", input=SEED000_MANIFEST)
    c.kubectl("rollout", "status", "deployment/dummy-flask-app", "-n", "opseng", "--timeout=90s", timeout=100)
    pods = wait_for(lambda: _ready_pods(c, "app=dummy-flask-app", 2, "opseng"), timeout=30, what="2 ready pods")
    # Ready came from the readiness probe on /_health, which answers.
    for p in pods:
        ip = p["status"]["podIP"]
        assert _get(f"http://{ip}:5000/_health") == "OK"
        cs = p["status"]["containerStatuses"][0]
        assert cs["ready"] is True and cs["started"] is True
    assert pods[0]["status"]["qosClass"] == "Burstable"
    name = pods[0]["metadata"]["name"]
    env = c.kubectl("exec", "-n", "opseng", name, "--", "env").stdout.splitlines()
    for want in ("PUBLIC_IP=203.0.113.7", f"MY_POD={name}", "GREETING=hello-from-configmap", "API_TOKEN=s3cr3t",
                 f"HOSTNAME={name}"):
        assert want in env, (want, env)
    c.kubectl("delete", "namespace", "opseng", "--wait=false")


LIFECYCLE_MANIFEST = """
apiVersion: v1
kind: Pod
metadata: {name: liveness, namespace: default}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: oe-tools/dummy-flask-app
    livenessProbe:
      httpGet: {path: /does-not-exist, port: 5000}
      initialDelaySeconds: 3  # past the Flask debug reloader's restart: the failures are the 404s
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: unready, namespace: default}
spec:
  containers:
  - name: web
    image: oe-tools/dummy-flask-app
    readinessProbe:
      httpGet: {path: /missing, port: 5000}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: crasher, namespace: default}
spec:
  containers:
  - name: crash
    image: busybox
    command: ["sh", "-c", "echo about to fail; exit 2"]
---
apiVersion: v1
kind: Pod
metadata: {name: duo, namespace: default}
spec:
  volumes:
  - {name: shared, emptyDir: {}}
  initContainers:
  - name: prepare
    image: busybox
    command: ["sh", "-c", "echo prepared-by-init > /data/index.html"]
    volumeMounts: [{name: shared, mountPath: /data}]
  containers:
  - name: server
    image: oe-tools/dummy-flask-app
    command: ["python", "-m", "http.server", "8080", "--directory", "/data"]
    volumeMounts: [{name: shared, mountPath: /data}]
  - name: client
    image: oe-tools/dummy-flask-app
    command: ["python", "-c", "import time, urllib.request\\nwhile True:\\n    try:\\n        print(urllib.request.urlopen('http://localhost:8080/index.html').read().decode().strip(), flush=True)\\n    except OSError as e:\\n        print('waiting', e, flush=True)\\n    time.sleep(0.5)"]
"""


def test_liveness_restart_crash_backoff_init_and_localhost(node_cluster: Cluster, flask_image: Path) -> None:
    c = node_cluster
    busy = c.data_dir.parent / "busyctx"
    busy.mkdir(exist_ok=True)
    (busy / "Dockerfile").write_text('FROM busybox\nCMD ["sh"]\n')
    _build(c, busy, "busybox")
    c.kubectl("apply", "-f", "-", input=LIFECYCLE_MANIFEST)

    def restarted() -> dict[str, Any] | None:
        cs = (c.kjson("get", "pod", "liveness").get("status") or {}).get("containerStatuses") or [{}]
        return cs[0] if cs[0].get("restartCount", 0) >= 1 else None

    cs = wait_for(restarted, timeout=60, what="a restart after liveness failures")
    assert "terminated" in cs["lastState"]

    def probe_events() -> str | None:
        # (Under load the app may still be starting at the first probes: then those failures read "connection
        # refused"; the restarted container keeps failing with the 404.)
        ev = c.kubectl("get", "events", "--field-selector", "involvedObject.name=liveness").stdout
        ok = "failed liveness probe, will be restarted" in ev and \
            "Liveness probe failed: HTTP probe failed with statuscode: 404" in ev
        return ev if ok else None

    wait_for(probe_events, timeout=40, what="the liveness events")

    # A readiness probe that fails keeps a running pod out of Ready (it would get no service traffic).
    def unready_running() -> dict[str, Any] | None:
        st = c.kjson("get", "pod", "unready").get("status") or {}
        cs = (st.get("containerStatuses") or [{}])[0]
        ev = c.kubectl("get", "events", "--field-selector", "involvedObject.name=unready").stdout
        return st if "running" in (cs.get("state") or {}) and "Readiness probe failed" in ev else None

    st = wait_for(unready_running, timeout=30, what="a running pod failing its readiness probe")
    conds = {cd["type"]: cd["status"] for cd in st["conditions"]}
    assert conds["Ready"] == "False" and conds["ContainersReady"] == "False"
    assert st["containerStatuses"][0]["ready"] is False

    def backing_off() -> dict[str, Any] | None:
        cs = (c.kjson("get", "pod", "crasher").get("status") or {}).get("containerStatuses") or [{}]
        w = (cs[0].get("state") or {}).get("waiting") or {}
        return cs[0] if w.get("reason") == "CrashLoopBackOff" else None

    cs = wait_for(backing_off, timeout=60, what="CrashLoopBackOff")
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert "back-off 10s restarting failed container=crash" in cs["state"]["waiting"]["message"]
    assert "about to fail" in c.kubectl("logs", "crasher", "--previous").stdout

    def talking() -> str | None:
        out = c.kubectl("logs", "duo", "-c", "client", check=False).stdout
        return out if "prepared-by-init" in out else None

    wait_for(talking, timeout=60, what="the client container reading the server container over localhost")
    duo = c.kjson("get", "pod", "duo")["status"]
    assert duo["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    c.kubectl("delete", "pod", "liveness", "unready", "crasher", "duo", "--wait=true", timeout=90)
    gone = c.kubectl("get", "pods", "-o", "name").stdout
    assert "liveness" not in gone and "duo" not in gone


def test_pods_outlive_a_server_crash_and_are_adopted(node_cluster: Cluster, flask_image: Path) -> None:
    c = node_cluster
    c.kubectl("create", "deployment", "survivor", "--image=oe-tools/dummy-flask-app", "--replicas=2")
    c.kubectl("rollout", "status", "deployment/survivor", "--timeout=60s", timeout=70)
    before = wait_for(lambda: _ready_pods(c, "app=survivor", 2), timeout=30, what="2 ready pods")
    ids = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["containerID"] for p in before}
    pid = c.pid()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1],
             timeout=10, what="the server gone")
    # The pods did not notice: they still answer while no control plane runs. (Seed 000's app runs Flask's
    # debug reloader, which restarts the app once just after it first answers: hence the wait.)
    for p in before:
        url = f"http://{p['status']['podIP']}:5000/_health"
        assert wait_for(lambda url=url: _get(url), timeout=10, what="the pod answers") == "OK"
    c.up("--no-kubeconfig-merge")
    after = wait_for(lambda: _ready_pods(c, "app=survivor", 2), timeout=30, what="the pods adopted, still ready")
    for p in after:
        cs = p["status"]["containerStatuses"][0]
        assert cs["containerID"] == ids[p["metadata"]["name"]], "the same container, not a new one"
        assert cs["restartCount"] == 0
    # Adopted pods are fully managed again: logs, exec and deletion work.
    name = after[0]["metadata"]["name"]
    assert "Running on" in c.kubectl("logs", name).stdout + c.kubectl("logs", name).stderr
    assert c.kubectl("exec", name, "--", "hostname").stdout.strip() == name
    c.kubectl("delete", "deployment", "survivor")
    wait_for(lambda: not _pods(c, "app=survivor"), timeout=60, what="the adopted pods deleted")


def test_pods_resolve_services_through_cluster_dns(node_cluster: Cluster, flask_image: Path) -> None:
    c = node_cluster
    c.kubectl("create", "deployment", "named", "--image=oe-tools/dummy-flask-app")
    c.kubectl("expose", "deployment", "named", "--port=5000")
    cluster_ip = c.kjson("get", "service", "named")["spec"]["clusterIP"]
    c.kubectl("rollout", "status", "deployment/named", "--timeout=60s", timeout=70)
    pod = wait_for(lambda: _ready_pods(c, "app=named", 1), timeout=30, what="a ready pod")[0]["metadata"]["name"]
    resolv = c.kubectl("exec", pod, "--", "cat", "/etc/resolv.conf").stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    script = ("import socket\n"
              "for n in ('named', 'named.default', 'named.default.svc.cluster.local', 'kubernetes.default', "
              "'localhost'):\n"
              "    print(n, socket.gethostbyname(n))\n")
    out = dict(ln.split() for ln in c.kubectl("exec", pod, "--", "python", "-c", script).stdout.splitlines())
    assert out["named"] == out["named.default"] == out["named.default.svc.cluster.local"] == cluster_ip
    assert out["kubernetes.default"] == c.kjson("get", "service", "kubernetes")["spec"]["clusterIP"]
    assert out["localhost"] == "127.0.0.1"
    # The service's endpoints are the ready pod (the Endpoints controller), as describe shows them.
    ip = c.kjson("get", "pod", pod)["status"]["podIP"]
    assert f"{ip}:5000" in c.kubectl("describe", "service", "named").stdout
    c.kubectl("delete", "service", "named")
    c.kubectl("delete", "deployment", "named")
