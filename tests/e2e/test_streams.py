"""The real kubectl's streaming commands end to end: logs, exec (plain, stdin, TTY), cp, attach, port-forward.

The cluster runs without a real node (``--nodes 0``). The test process plays the node: it serves the agent's
kubelet API (:class:`~tinykube.agent.server.KubeletServer`) over TLS with the cluster's serving certificate and
the cluster's kubelet token, backed by the fake runtime of the agent's unit tests (commands run as local
processes, pod ports lead to a local echo server), and registers a Node whose daemon endpoint points at it.
So every byte goes kubectl → API server → agent server → process and back, over the real protocols:
WebSocket ``v5.channel.k8s.io`` for exec/attach/cp, SPDY tunnelled in a WebSocket for port-forward.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.test_server import FakeContainer, FakeRuntime, echo_server
from tinykube.agent.server import KubeletServer, start_server

from .conftest import Cluster, new_cluster, run_in_pty, stop, wait_for

KUBECTL = shutil.which("kubectl") or "kubectl"


@dataclass
class Node:
    cluster: Cluster
    runtime: FakeRuntime
    port: int
    web: FakeContainer


class _AgentThread:
    """The fake node's kubelet API, served from its own event loop in a thread."""

    def __init__(self, runtime: FakeRuntime, token: str, cert: Path, key: Path) -> None:
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(token, cert, key),),
                                       daemon=True)

    async def _main(self, token: str, cert: Path, key: Path) -> None:
        self.stop_event = asyncio.Event()
        serving = await start_server(KubeletServer(self.runtime, token, poll=0.05), "127.0.0.1", 0, str(cert),
                                     str(key))
        async with echo_server() as echo_port:
            self.runtime.ports[8080] = echo_port
            self.port = serving.port
            self.ready.set()
            await self.stop_event.wait()
        await serving.stop()

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(10), "the fake agent did not start"

    def stop(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)


def _apply(c: Cluster, obj: dict[str, Any]) -> None:
    c.kubectl("create", "-f", "-", input=json.dumps(obj))


def _status(c: Cluster, kind: str, name: str, status: dict[str, Any]) -> None:
    c.kubectl("patch", kind, name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))


def _pod(name: str, node: str | None, containers: list[str], **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": n, "image": "busybox"} for n in containers]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta}, "spec": spec}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("streams")
    c = new_cluster(tmp)
    c.up("--no-kubeconfig-merge", "--nodes", "0")
    rt = FakeRuntime(tmp / "node")
    agent = _AgentThread(rt, (c.data_dir / "kubelet-token").read_text().strip(), c.data_dir / "server.crt",
                         c.data_dir / "server.key")
    agent.start()
    try:
        _apply(c, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "fake-node"}})
        _status(c, "node", "fake-node", {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                         "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}}})
        _apply(c, {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "sim-x", "labels": {"node.tinykube.io/simulated": "true"}}})
        _apply(c, _pod("web", "fake-node", ["app"]))
        _apply(c, _pod("multi", "fake-node", ["a", "b"],
                       annotations={"kubectl.kubernetes.io/default-container": "b"}))
        _apply(c, _pod("simpod", "sim-x", ["app"]))
        _apply(c, _pod("unbound", None, ["app"]))
        for name in ("web", "multi", "simpod"):
            _status(c, "pod", name, {"phase": "Running"})
        web = rt.add("default", "web", "app")
        web.writer.write("stdout", b"line one\nline two\n")
        web.writer.write("stderr", b"an error line\n")
        rt.add("default", "multi", "a").writer.write("stdout", b"from a\n")
        rt.add("default", "multi", "b").writer.write("stdout", b"from b\n")
        yield Node(c, rt, agent.port, web)
    finally:
        agent.stop()
        stop(c)


def test_logs(node: Node) -> None:
    c = node.cluster
    assert c.kubectl("logs", "web").stdout == "line one\nline two\nan error line\n"
    assert c.kubectl("logs", "web", "--tail=1").stdout == "an error line\n"
    stamped = c.kubectl("logs", "web", "--timestamps", "--tail=2").stdout.splitlines()
    assert [ln.split(" ", 1)[1] for ln in stamped] == ["line two", "an error line"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", ln.split(" ", 1)[0]) for ln in stamped)
    assert c.kubectl("logs", "web", "--limit-bytes=6").stdout == "line o"
    # The default-container annotation (kubectl applies it; the API server too, for other clients).
    assert c.kubectl("logs", "multi").stdout == "from b\n"
    assert c.kubectl("logs", "multi", "-c", "a").stdout == "from a\n"
    p = c.kubectl("logs", "web", "-c", "nope", check=False)
    assert p.returncode == 1 and "container nope is not valid for pod web" in p.stderr
    p = c.kubectl("logs", "web", "--previous", check=False)
    assert p.returncode == 1
    assert 'previous terminated container "app" in pod "web" not found' in p.stderr, p.stderr
    p = c.kubectl("logs", "simpod", check=False)
    assert p.returncode == 1 and "BadRequest" in p.stderr and 'simulated node "sim-x"' in p.stderr
    assert c.kubectl("logs", "unbound").stdout == ""
    # The raw API: a multi-container pod without a container and without the annotation.
    c.kubectl("annotate", "pod", "multi", "kubectl.kubernetes.io/default-container-")
    p = c.kubectl("get", "--raw", "/api/v1/namespaces/default/pods/multi/log", check=False)
    assert p.returncode == 1
    assert "a container name must be specified for pod multi, choose one of: [a b]" in p.stderr
    c.kubectl("annotate", "pod", "multi", "kubectl.kubernetes.io/default-container=b")


def test_logs_follow(node: Node) -> None:
    c = node.cluster
    rt = node.runtime
    box = rt.add("default", "follow", "app")
    _apply(c, _pod("follow", "fake-node", ["app"]))
    box.writer.write("stdout", b"started\n")
    p = subprocess.Popen([KUBECTL, "logs", "-f", "follow"], env=c.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        assert p.stdout.readline() == "started\n"
        box.writer.write("stdout", b"later\n")
        assert p.stdout.readline() == "later\n"
        box.writer.write("stdout", b"the end\n")
        box.running = False  # the container exits: the stream ends and so does kubectl
        out, err = p.communicate(timeout=15)
        assert out == "the end\n" and p.returncode == 0, err
    finally:
        p.kill()


def test_exec(node: Node) -> None:
    c = node.cluster
    assert c.kubectl("exec", "web", "--", "echo", "hi").stdout == "hi\n"
    p = c.kubectl("exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (p.returncode, p.stdout) == (3, "out\n")
    assert p.stderr == "err\ncommand terminated with exit code 3\n"
    p = c.kubectl("exec", "-i", "web", "--", "sh", "-c", "tr a-z A-Z; echo done", input="piped stdin\n")
    assert p.stdout == "PIPED STDIN\ndone\n"
    big = "x" * 300_000 + "\n"
    assert c.kubectl("exec", "-i", "web", "--", "wc", "-c", input=big).stdout.strip() == str(len(big))
    # kubectl defaults the container from the annotation and says so.
    p = c.kubectl("exec", "multi", "--", "sh", "-c", "echo $POD_NAME")
    assert p.stdout == "multi\n"
    p = c.kubectl("exec", "simpod", "--", "true", check=False)
    assert p.returncode == 1 and 'simulated node "sim-x"' in p.stderr
    p = c.kubectl("exec", "unbound", "--", "true", check=False)
    assert p.returncode == 1 and "pod unbound does not have a host assigned" in p.stderr


def test_exec_refused_by_the_node(node: Node) -> None:
    c = node.cluster
    box = node.runtime.add("default", "stopped", "app", running=False)
    assert box.log
    _apply(c, _pod("stopped", "fake-node", ["app"]))
    p = c.kubectl("exec", "stopped", "--", "true", check=False)
    assert p.returncode == 1 and 'container "app" is not running' in p.stderr, p.stderr


def test_exec_tty(node: Node, tmp_path: Path) -> None:
    c = node.cluster
    code, text = run_in_pty([KUBECTL, "exec", "-ti", "web", "--", "sh"], c.env,
                            b"tty -s && echo IS-A-TTY; stty size; exit 5\n")
    assert code == 5, text
    assert "IS-A-TTY" in text and "33 101" in text, text


def test_cp_both_ways(node: Node, tmp_path: Path) -> None:
    c = node.cluster
    pod_dir = node.runtime.root / "cp-target"
    pod_dir.mkdir()
    src = tmp_path / "payload.bin"
    data = os.urandom(200_000)
    src.write_bytes(data)
    c.kubectl("cp", str(src), f"web:{pod_dir}/copied.bin")
    assert (pod_dir / "copied.bin").read_bytes() == data
    back = tmp_path / "back.bin"
    c.kubectl("cp", f"web:{pod_dir}/copied.bin", str(back))
    assert back.read_bytes() == data


def test_attach(node: Node) -> None:
    c = node.cluster
    box = node.runtime.add("default", "attached", "app")
    _apply(c, _pod("attached", "fake-node", ["app"]))
    _status(c, "pod", "attached", {"phase": "Running"})
    box.writer.write("stdout", b"old output, not shown\n")
    p = subprocess.Popen([KUBECTL, "attach", "attached"], env=c.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        time.sleep(1.0)  # attach shows output from the moment it is connected
        box.writer.write("stdout", b"new output\n")
        assert p.stdout.readline() == "new output\n"
        box.running = False  # the container ends: so does the attachment
        _, err = p.communicate(timeout=15)
        assert p.returncode == 0, err
    finally:
        p.kill()


def _recv_all(s: socket.socket) -> bytes:
    s.settimeout(10)
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def test_port_forward(node: Node) -> None:
    c = node.cluster
    p = subprocess.Popen([KUBECTL, "port-forward", "pod/web", ":8080", ":9999"], env=c.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        ports: dict[int, int] = {}
        while len(ports) < 2:
            line = p.stdout.readline()
            assert line, p.stderr.read() if p.stderr else ""
            m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
            if m:
                ports[int(m.group(2))] = int(m.group(1))
        local = ports[8080]
        # Several connections at once over the one SPDY session, each with its own half-close.
        conns = [socket.create_connection(("127.0.0.1", local)) for _ in range(3)]
        payloads = [os.urandom(100_000) for _ in conns]
        for s, payload in zip(conns, payloads, strict=True):
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        for s, payload in zip(conns, payloads, strict=True):
            assert _recv_all(s) == payload + b"bye\n"
            s.close()
        # Nothing listens on the pod's port 9999: kubectl reports the node's error and gives up, as upstream.
        s = socket.create_connection(("127.0.0.1", ports[9999]))
        assert _recv_all(s) == b""
        s.close()
        p.wait(15)
        err = p.stderr.read() if p.stderr else ""
        assert "error forwarding port 9999" in err and "connection refused" in err, err
    finally:
        p.kill()
        p.wait()


def test_kubectl_proxy(node: Node) -> None:
    c = node.cluster
    p = subprocess.Popen([KUBECTL, "proxy", "--port=0"], env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert m, line
        base = f"http://127.0.0.1:{m.group(1)}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        pods = json.load(opener.open(f"{base}/api/v1/namespaces/default/pods", timeout=10))
        assert "web" in {i["metadata"]["name"] for i in pods["items"]}
        text = opener.open(f"{base}/api/v1/namespaces/default/pods/web/log?tailLines=1", timeout=10).read()
        assert text == b"an error line\n"
    finally:
        p.kill()
        p.wait()


def test_api_server_log_is_clean(node: Node) -> None:
    """Everything above went through without a traceback in the server's log."""
    log = node.cluster.data_dir / "server.log"
    text = wait_for(lambda: log.read_text(errors="replace") if log.exists() else "x", what="server log")
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]
