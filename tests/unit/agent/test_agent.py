"""The node agent against a real in-process control plane, running real sandboxed processes (root + bubblewrap).

Images come from a minimal stand-in store (a directory and a config): the image
builder has its own tests; here the point is what the agent does with an image.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.harness import control_plane, eventually

from tinykube.agent import cgroups, network
from tinykube.agent.agent import AgentOptions, NodeAgent
from tinykube.api.resources import PODS, must
from tinykube.sim.lifecycle import Timing

SERVER = """
import socket, os, sys
print("serving as", socket.gethostname(), flush=True)
print("to stderr", file=sys.stderr, flush=True)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(16)
while True:
    c, _ = s.accept()
    c.recv(1024)
    body = (socket.gethostname() + " uid=" + str(os.getuid()) + " name=" + os.environ.get("NAME", "")).encode()
    c.sendall(b"HTTP/1.0 200 OK\\r\\ncontent-length: " + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)
    c.close()
"""


@dataclass(frozen=True)
class FakeImage:
    digest: str
    content: Path
    config: dict[str, Any]
    size: int = 1000
    names: tuple[str, ...] = ()


@dataclass
class FakeStore:
    root: Path
    images: dict[str, FakeImage] = field(default_factory=dict)

    def add(self, ref: str, files: dict[str, str], config: dict[str, Any]) -> FakeImage:
        content = self.root / hashlib.sha256(ref.encode()).hexdigest()[:12]
        for rel, text in files.items():
            p = content / rel.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        content.mkdir(parents=True, exist_ok=True)
        img = FakeImage("sha256:" + hashlib.sha256(ref.encode()).hexdigest(), content, config)
        self.images[ref] = img
        return img

    def resolve(self, ref: str) -> FakeImage | None:
        return self.images.get(ref)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the agent's isolation tests need root (CI runs as root)")
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap (bwrap) is required: apt-get install bubblewrap")


def _get(ip: str, port: int = 80) -> str:
    with socket.create_connection((ip, port), timeout=2) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode().split("\r\n\r\n", 1)[1]


def _pod(name: str, image: str, node: str, **spec: Any) -> dict[str, Any]:
    c = {"name": "app", "image": image, **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [c], **spec}}


@contextlib.asynccontextmanager
async def running_agent(tmp_path: Path, store: FakeStore, backoff: float = 0.3) -> Any:
    _require_root()
    tag = "t" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:5]
    with network.host_lock():
        cidr, services = network.choose_cluster_ranges()
        network.claim(cidr, services)
    net = network.NodeNetwork(tag, cidr, cidr.replace(".0.0/16", ".0.0/24"), services)
    async with control_plane(tmp_path / "cp") as cp:
        agent = NodeAgent(cp.client, cp.informers, AgentOptions(
            name="node-a", data_dir=tmp_path, net=net, images=store, kubelet_port=0,
            timing=Timing(backoff_base=backoff, backoff_max=max(1.0, backoff * 4))))
        cp.informers.start()
        agent.start()
        try:
            await asyncio.wait_for(agent.wait_registered(), 10)
            yield cp, agent
        finally:
            await agent.stop()
            for uid in agent.runtime.pod_uids():
                await agent._teardown_uid(uid, kill=True)
            network.teardown_node(tag, cidr, services)
            cgroups.remove_cluster(tag)


async def _status(cp: Any, name: str) -> dict[str, Any]:
    pod = await cp.client.get(PODS, "default", name)
    return pod.get("status") or {}


async def test_pod_runs_isolated_with_own_ip_and_hostname(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "images")
    store.add("web:1", {"/app/server.py": SERVER}, {"Cmd": ["python3", "/app/server.py"], "WorkingDir": "/app",
                                                    "Env": ["NAME=World", "PATH=/usr/local/bin:/usr/bin:/bin"]})
    async with running_agent(tmp_path, store) as (cp, agent):
        for n in ("web-a", "web-b"):
            await cp.client.create(PODS, "default", _pod(n, "web:1", "node-a"))

        async def running(name: str) -> dict[str, Any] | None:
            st = await _status(cp, name)
            ok = st.get("phase") == "Running" and all(c.get("ready") for c in st.get("containerStatuses") or [])
            return st if ok and st.get("podIP") else None

        a = await eventually(lambda: running("web-a"), timeout=15, what="web-a running")
        b = await eventually(lambda: running("web-b"), timeout=15, what="web-b running")
        assert a["podIP"] != b["podIP"]
        cs = a["containerStatuses"][0]
        assert cs["containerID"].startswith("tinykube://") and cs["imageID"].endswith(store.images["web:1"].digest)
        assert cs["restartCount"] == 0 and "running" in cs["state"]
        # Both bind port 80 side by side; each answers with its own hostname, as root inside its user namespace.
        body_a = await eventually(lambda: _try_get(a["podIP"]), timeout=10, what="web-a answers")
        body_b = await eventually(lambda: _try_get(b["podIP"]), timeout=10, what="web-b answers")
        assert body_a == "web-a uid=0 name=World"
        assert body_b == "web-b uid=0 name=World"
        # Logs: CRI records of stdout and stderr.
        uid = (await cp.client.get(PODS, "default", "web-a"))["metadata"]["uid"]
        log = agent.runtime.log_path(uid, "app", 0).read_text()
        assert " stdout F serving as web-a" in log and " stderr F to stderr" in log
        # Outside, the process runs as the unprivileged uid.
        run = agent.runtime.runs(uid, "app")[0]
        target = agent.runtime.exec_target(run)
        assert target is not None
        assert Path(f"/proc/{target}/status").read_text().split("Uid:")[1].split()[0] == "65534"
        # Deleting the pod stops its process and removes its network namespace.
        await cp.client.delete(PODS, "default", "web-a", grace_period=2)

        async def gone() -> bool:
            try:
                await cp.client.get(PODS, "default", "web-a")
                return False
            except Exception:
                return True

        await eventually(gone, timeout=10, what="web-a deleted")
        assert not Path(f"/proc/{target}").exists()
        assert not agent.opts.net.netns_path(uid).exists()  # type: ignore[union-attr]


def _try_get(ip: str) -> str | None:
    try:
        return _get(ip)
    except OSError:
        return None


async def test_crash_loop_missing_image_and_restart_counts(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "images")
    store.add("crash:1", {}, {"Cmd": ["sh", "-c", "echo dying; exit 3"]})
    async with running_agent(tmp_path, store, backoff=1.0) as (cp, _agent):
        await cp.client.create(PODS, "default", _pod("crash", "crash:1", "node-a"))
        await cp.client.create(PODS, "default", _pod("missing", "nope:9", "node-a"))

        seen: list[Any] = []

        async def crash_looping() -> dict[str, Any] | None:
            cs = ((await _status(cp, "crash")).get("containerStatuses") or [{}])[0]
            seen.append(cs)
            w = (cs.get("state") or {}).get("waiting") or {}
            return cs if w.get("reason") == "CrashLoopBackOff" and cs.get("restartCount", 0) >= 1 else None

        try:
            cs = await eventually(crash_looping, timeout=15, what="CrashLoopBackOff")
        except AssertionError:
            raise AssertionError(f"no CrashLoopBackOff; statuses seen: {seen[:3]} ... {seen[-3:]}") from None
        assert cs["lastState"]["terminated"]["exitCode"] == 3
        assert cs["lastState"]["terminated"]["reason"] == "Error"

        async def pull_backoff() -> dict[str, Any] | None:
            cs = ((await _status(cp, "missing")).get("containerStatuses") or [{}])[0]
            w = (cs.get("state") or {}).get("waiting") or {}
            return w if w.get("reason") in ("ErrImagePull", "ImagePullBackOff") else None

        w = await eventually(pull_backoff, timeout=10, what="image pull failure")
        assert "nope:9" in w.get("message", "")
        # The image appears: the next retry pulls it and the container starts.
        store.add("nope:9", {}, {"Cmd": ["sleep", "30"]})

        async def started() -> bool:
            cs = ((await _status(cp, "missing")).get("containerStatuses") or [{}])[0]
            return "running" in (cs.get("state") or {})

        await eventually(started, timeout=10, what="started after the image appeared")


async def test_readiness_gates_ready_and_liveness_failure_restarts(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "images")
    store.add("web:1", {"/app/server.py": SERVER}, {"Cmd": ["python3", "/app/server.py"], "WorkingDir": "/app"})
    async with running_agent(tmp_path, store) as (cp, _agent):
        # Ready only once the HTTP server answers; a liveness exec probe fails once /tmp/die exists.
        container = {
            "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1},
            "livenessProbe": {"exec": {"command": ["sh", "-c", "test ! -e /tmp/die"]}, "periodSeconds": 1,
                              "failureThreshold": 1},
        }
        await cp.client.create(PODS, "default", _pod("probed", "web:1", "node-a", container=container,
                                                     terminationGracePeriodSeconds=1))

        async def ready() -> dict[str, Any] | None:
            st = await _status(cp, "probed")
            conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
            return st if conds.get("Ready") == "True" and conds.get("ContainersReady") == "True" else None

        st = await eventually(ready, timeout=15, what="ready through the readiness probe")
        assert st["containerStatuses"][0]["ready"] is True
        # Make the liveness probe fail inside the container: it is killed and started again.
        from tinykube.agent.runtime import Runtime  # noqa: F401

        uid = (await cp.client.get(PODS, "default", "probed"))["metadata"]["uid"]
        run = _agent.runtime.runs(uid, "app")[-1]
        cmd = _agent.runtime.exec_command(run, ["sh", "-c", "touch /tmp/die && id -u && hostname"])
        assert cmd is not None
        proc = await asyncio.create_subprocess_exec(*cmd[0], env=cmd[1], stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert out.decode().split() == ["0", "probed"], err

        async def restarted() -> dict[str, Any] | None:
            cs = ((await _status(cp, "probed")).get("containerStatuses") or [{}])[0]
            return cs if cs.get("restartCount", 0) >= 1 and cs.get("ready") else None

        cs = await eventually(restarted, timeout=20, what="restarted after the liveness failure, ready again")
        assert "terminated" in cs["lastState"]
        events, _rv = await cp.client.list(must("", "v1", "events"), "default")
        reasons = {(e["reason"], e["message"]) for e in events}
        assert ("Killing", "Container app failed liveness probe, will be restarted") in reasons
        assert any(r == "Unhealthy" and m.startswith("Liveness probe failed") for r, m in reasons)


async def test_memory_limit_oom_kills_and_init_containers_run_first(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "images")
    hog = "b = []\nwhile True:\n    b.append(bytearray(8 << 20))\n"
    store.add("hog:1", {"/app/hog.py": hog}, {"Cmd": ["python3", "/app/hog.py"]})
    store.add("sh:1", {}, {"Cmd": ["sh"]})
    async with running_agent(tmp_path, store) as (cp, _agent):
        pod = _pod("hog", "hog:1", "node-a", restartPolicy="Never",
                   container={"resources": {"limits": {"memory": "64Mi"}}})
        await cp.client.create(PODS, "default", pod)
        # Init containers: each runs to completion, in order, before the app container starts; they share
        # the pod's emptyDir with it.
        vol = [{"name": "work", "mountPath": "/work"}]
        init = {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "init", "namespace": "default"},
            "spec": {"nodeName": "node-a", "volumes": [{"name": "work", "emptyDir": {}}],
                     "initContainers": [
                         {"name": "one", "image": "sh:1", "command": ["sh", "-c", "echo one >> /work/order"],
                          "volumeMounts": vol},
                         {"name": "two", "image": "sh:1", "command": ["sh", "-c", "echo two >> /work/order"],
                          "volumeMounts": vol}],
                     "containers": [{"name": "main", "image": "sh:1", "volumeMounts": vol,
                                     "command": ["sh", "-c", "echo main >> /work/order; cat /work/order; sleep 30"]}]}}
        await cp.client.create(PODS, "default", init)

        async def oom() -> dict[str, Any] | None:
            st = await _status(cp, "hog")
            cs = (st.get("containerStatuses") or [{}])[0]
            t = (cs.get("state") or {}).get("terminated") or {}
            return st if t else None

        st = await eventually(oom, timeout=20, what="the memory hog terminated")
        t = st["containerStatuses"][0]["state"]["terminated"]
        assert t["reason"] == "OOMKilled", t
        assert t["exitCode"] == 137
        assert st["phase"] == "Failed"

        async def main_running() -> dict[str, Any] | None:
            st = await _status(cp, "init")
            cs = (st.get("containerStatuses") or [{}])[0]
            return st if "running" in (cs.get("state") or {}) else None

        st = await eventually(main_running, timeout=15, what="the app container after its init containers")
        inits = st["initContainerStatuses"]
        assert [c["state"]["terminated"]["reason"] for c in inits] == ["Completed", "Completed"]
        conds = {c["type"]: c["status"] for c in st["conditions"]}
        assert conds["Initialized"] == "True"
        uid = (await cp.client.get(PODS, "default", "init"))["metadata"]["uid"]

        def logged() -> str | None:
            text = _agent.runtime.log_path(uid, "main", 0).read_text() if _agent.runtime.log_path(
                uid, "main", 0).exists() else ""
            return text if "main" in text else None

        text = await eventually(logged, timeout=5, what="the app container's output")
        assert [ln.split(" ", 3)[3] for ln in text.splitlines()] == ["one", "two", "main"]


async def test_lifecycle_hooks_run_around_sigterm(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "images")
    store.add("sh:1", {}, {"Cmd": ["sh"]})
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    async with running_agent(tmp_path, store) as (cp, _agent):
        container = {
            # The app records SIGTERM after whatever preStop wrote; postStart leaves its own mark.
            "command": ["sh", "-c", "trap 'echo term >> /out/order; exit 0' TERM; while true; do sleep 0.1; done"],
            "volumeMounts": [{"name": "out", "mountPath": "/out"}],
            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo started > /out/poststart"]}},
                          "preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /out/order"]}}},
        }
        pod = _pod("hooked", "sh:1", "node-a", container=container, terminationGracePeriodSeconds=5,
                   volumes=[{"name": "out", "hostPath": {"path": str(out)}}])
        await cp.client.create(PODS, "default", pod)
        await eventually(lambda: (out / "poststart").exists(), timeout=15, what="the postStart hook ran")
        assert (out / "poststart").read_text() == "started\n"
        await cp.client.delete(PODS, "default", "hooked", grace_period=5)

        async def gone() -> bool:
            try:
                await cp.client.get(PODS, "default", "hooked")
                return False
            except Exception:
                return True

        await eventually(gone, timeout=15, what="the pod deleted after its hooks")
        assert (out / "order").read_text().split() == ["prestop", "term"]


async def test_configmap_update_reaches_running_pod_and_env_from_it(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "images")
    store.add("sh:1", {}, {"Cmd": ["sh"]})
    cms = must("", "v1", "configmaps")
    async with running_agent(tmp_path, store) as (cp, agent):
        await cp.client.create(cms, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "cfg", "namespace": "default"},
                                                "data": {"greeting": "hello", "mode": "one"}})
        container = {"command": ["sh", "-c", "echo GREETING=$GREETING HOME=$HOME; sleep 30"],
                     "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}}],
                     "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}
        await cp.client.create(PODS, "default", _pod("cfgpod", "sh:1", "node-a", container=container,
                                                     volumes=[{"name": "cfg", "configMap": {"name": "cfg"}}]))
        uid = ""

        async def running() -> bool:
            nonlocal uid
            pod = await cp.client.get(PODS, "default", "cfgpod")
            uid = pod["metadata"]["uid"]
            cs = ((pod.get("status") or {}).get("containerStatuses") or [{}])[0]
            return "running" in (cs.get("state") or {})

        await eventually(running, timeout=15, what="the pod running")

        def read(path: str) -> str | None:
            run = agent.runtime.runs(uid, "app")[-1]
            cmd = agent.runtime.exec_command(run, ["cat", path])
            if cmd is None:
                return None
            r = subprocess.run(cmd[0], env=cmd[1], capture_output=True, text=True, timeout=10)
            return r.stdout if r.returncode == 0 else None

        assert await eventually(lambda: read("/etc/cfg/mode"), timeout=10, what="the mounted key") == "one"
        log = agent.runtime.log_path(uid, "app", 0)
        await eventually(lambda: log.exists() and "GREETING=hello HOME=/root" in log.read_text(), timeout=10,
                         what="env")
        cm = await cp.client.get(cms, "default", "cfg")
        cm["data"]["mode"] = "two"
        await cp.client.update(cms, "default", cm)
        # The running container sees the new content (atomically swapped), without a restart.
        await eventually(lambda: read("/etc/cfg/mode") == "two", timeout=10, what="the update in the volume")
        assert len(agent.runtime.runs(uid, "app")) == 1


async def test_sidecar_init_container_keeps_running_beside_the_app(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "images")
    store.add("sh:1", {}, {"Cmd": ["sh"]})
    async with running_agent(tmp_path, store) as (cp, agent):
        vol = [{"name": "shared", "mountPath": "/shared"}]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sidecar", "namespace": "default"},
               "spec": {"nodeName": "node-a", "volumes": [{"name": "shared", "emptyDir": {}}],
                        "initContainers": [{"name": "helper", "image": "sh:1", "restartPolicy": "Always",
                                            "command": ["sh", "-c", "while true; do date > /shared/beat; sleep 0.2; done"],
                                            "volumeMounts": vol}],
                        "containers": [{"name": "app", "image": "sh:1", "volumeMounts": vol,
                                        "command": ["sh", "-c", "while [ ! -e /shared/beat ]; do sleep 0.1; done; "
                                                                "echo saw-sidecar; sleep 30"]}]}}
        await cp.client.create(PODS, "default", pod)

        async def both_running() -> dict[str, Any] | None:
            st = await _status(cp, "sidecar")
            init = (st.get("initContainerStatuses") or [{}])[0]
            main = (st.get("containerStatuses") or [{}])[0]
            ok = "running" in (init.get("state") or {}) and "running" in (main.get("state") or {})
            return st if ok else None

        st = await eventually(both_running, timeout=15, what="the sidecar and the app both running")
        conds = {c["type"]: c["status"] for c in st["conditions"]}
        assert conds["Initialized"] == "True" and st["phase"] == "Running"
        uid = (await cp.client.get(PODS, "default", "sidecar"))["metadata"]["uid"]
        log = agent.runtime.log_path(uid, "app", 0)
        await eventually(lambda: log.exists() and "saw-sidecar" in log.read_text(), timeout=10, what="the app saw it")
