"""The API server's pod stream subresources, proxied to a fake agent on 127.0.0.1 that a Node object points at.

The API server is the real ASGI app over a real store, served by uvicorn (plain HTTP here); the agent is the
real kubelet API over the fake runtime of the agent tests. The SPDY client below is written from the protocol
(frame layouts, header blocks), not from the module under test, apart from the shared header dictionary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from tests.unit.agent.test_server import TOKEN as AGENT_TOKEN
from tests.unit.agent.test_server import FakeRuntime, collect, echo_server
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from tinykube.agent.server import KubeletServer, start_server
from tinykube.api.resources import NODES, PODS
from tinykube.apiserver import discovery
from tinykube.apiserver.http import ApiServer
from tinykube.apiserver.registry import Registry
from tinykube.apiserver.streams import SPDY_DICTIONARY, KubeletConfig, ensure_kubelet_token, websocket_protocol
from tinykube.client.local import LocalClient
from tinykube.server.cluster import bootstrap, open_store

ADMIN = "admin-token"


@dataclass
class Env:
    base: str  # http://127.0.0.1:PORT of the API server
    runtime: FakeRuntime
    client: LocalClient
    agent_port: int

    def headers(self, token: str = ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def ws(self, path: str, **query: Any) -> str:
        return "ws" + self.base[4:] + path + ("?" + urlencode(query, doseq=True) if query else "")


async def _serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", ws=websocket_protocol(),
                                           ws_per_message_deflate=False, loop="none"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.005)
    return server, task, sock.getsockname()[1]


def _pod(name: str, node: str | None, containers: list[str], annotations: dict[str, str] | None = None) -> Any:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
    if node:
        spec["nodeName"] = node
    md: dict[str, Any] = {"name": name}
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


async def _node(c: LocalClient, name: str, port: int, labels: dict[str, str] | None = None) -> None:
    await c.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}})
    await c.patch(NODES, None, name, {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                                 "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}},
                  "merge", "status")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = open_store(tmp_path / "store")
    reg = Registry(store)
    await bootstrap(reg, 6443)
    rt = FakeRuntime(tmp_path / "node")
    agent = await start_server(KubeletServer(rt, AGENT_TOKEN, poll=0.05), "127.0.0.1", 0)
    app = ApiServer(reg, ADMIN, kubelet=KubeletConfig(token=AGENT_TOKEN, scheme="http", connect_timeout=5))
    server, task, port = await _serve(app)
    c = LocalClient(reg)
    await _node(c, "node-1", agent.port)
    await _node(c, "sim-node-0", agent.port, {"node.tinykube.io/simulated": "true"})
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    await _node(c, "dead-node", dead_port)
    await c.create(PODS, "default", _pod("web", "node-1", ["app"]))
    await c.create(PODS, "default", _pod("multi", "node-1", ["a", "b"]))
    await c.create(PODS, "default", _pod("annotated", "node-1", ["a", "b"],
                                         {"kubectl.kubernetes.io/default-container": "b"}))
    await c.create(PODS, "default", _pod("pending", None, ["app"]))
    await c.create(PODS, "default", _pod("simulated", "sim-node-0", ["app"]))
    await c.create(PODS, "default", _pod("lost", "dead-node", ["app"]))
    web = rt.add("default", "web", "app")
    web.writer.write("stdout", b"hello\nworld\n")
    rt.add("default", "annotated", "b").writer.write("stdout", b"from b\n")
    try:
        yield Env(f"http://127.0.0.1:{port}", rt, c, agent.port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)
        await agent.stop()
        store.close()


LOG = "/api/v1/namespaces/default/pods/{}/log"


async def test_logs_are_proxied_with_the_apis_checks(env: Env) -> None:
    async with httpx.AsyncClient(base_url=env.base, headers=env.headers()) as h:
        r = await h.get(LOG.format("web"))
        assert (r.status_code, r.text) == (200, "hello\nworld\n")
        r = await h.get(LOG.format("web"), params={"tailLines": "1", "container": "app"})
        assert r.text == "world\n"
        assert (await h.get(LOG.format("annotated"))).text == "from b\n"
        r = await h.get(LOG.format("multi"))
        assert r.status_code == 400
        assert r.json()["message"] == "a container name must be specified for pod multi, choose one of: [a b]"
        r = await h.get(LOG.format("web"), params={"container": "nope"})
        assert (r.status_code, r.json()["message"]) == (400, "container nope is not valid for pod web")
        r = await h.get(LOG.format("web"), params={"tailLines": "-2", "sinceSeconds": "5", "sinceTime": "2024-01-01T00:00:00Z"})
        assert r.status_code == 422 and r.json()["reason"] == "Invalid"
        assert r.json()["message"] == ('PodLogOptions "web" is invalid: [: Forbidden: at most one of `sinceTime` or '
                                       '`sinceSeconds` may be specified, tailLines: Invalid value: -2: must be greater '
                                       'than or equal to 0]')
        r = await h.get(LOG.format("pending"))
        assert (r.status_code, r.text) == (200, "")
        r = await h.get(LOG.format("simulated"))
        assert r.status_code == 400 and 'runs on simulated node "sim-node-0"' in r.json()["message"]
        r = await h.get(LOG.format("nope"))
        assert (r.status_code, r.json()["message"]) == (404, 'pods "nope" not found')
        r = await h.get(LOG.format("web"), params={"previous": "true"})
        assert r.status_code == 400
        assert r.json()["message"] == 'previous terminated container "app" in pod "web" not found'
        r = await h.get(LOG.format("lost"))
        assert r.status_code == 500 and r.json()["message"].startswith("error dialing backend")
    async with httpx.AsyncClient(base_url=env.base) as h:
        assert (await h.get(LOG.format("web"))).status_code == 401


async def test_discovery_lists_the_stream_subresources() -> None:
    doc = json.loads(discovery.resource_list("", "v1") or b"{}")
    subs = {r["name"]: r for r in doc["resources"] if r["name"].startswith("pods/")}
    assert subs["pods/log"]["verbs"] == ["get"]
    assert subs["pods/exec"]["kind"] == "PodExecOptions" and subs["pods/portforward"]["verbs"] == ["create", "get"]
    assert "pods/attach" in subs


async def test_log_follow_is_relayed_as_it_is_written(env: Env) -> None:
    box = env.runtime.containers[("default", "web", "app")]
    async with httpx.AsyncClient(base_url=env.base, headers=env.headers()) as h, \
            h.stream("GET", LOG.format("web"), params={"follow": "true", "tailLines": "0"}) as r:
        assert r.status_code == 200
        chunks = r.aiter_raw()
        box.writer.write("stdout", b"live 1\n")
        assert await asyncio.wait_for(chunks.__anext__(), 5) == b"live 1\n"
        box.writer.write("stdout", b"live 2\n")
        assert await asyncio.wait_for(chunks.__anext__(), 5) == b"live 2\n"
        box.running = False
        rest = b""
        async with asyncio.timeout(5):
            async for chunk in chunks:
                rest += chunk
        assert rest == b""


EXEC = "/api/v1/namespaces/default/pods/{}/exec"


async def test_exec_is_relayed_over_websockets(env: Env) -> None:
    url = env.ws(EXEC.format("web"), command=["sh", "-c", "read x; echo got $x; echo oops >&2; exit 4"],
                 stdin="true", stdout="true", stderr="true")
    async with connect(url, subprotocols=[Subprotocol("v5.channel.k8s.io")], additional_headers=env.headers()) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        await ws.send(b"\x00value\n")
        out, status = await collect(ws)
    assert out == {1: b"got value\n", 2: b"oops\n"}
    assert status is not None and status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]

    # Refusals are Status answers to the upgrade: ours (authentication, the pod) and the agent's.
    env.runtime.containers[("default", "web", "app")].running = False
    cases = [(EXEC.format("web"), ADMIN, 400, 'container "app" is not running'),
             (EXEC.format("web"), "wrong", 401, "Unauthorized"),
             (EXEC.format("pending"), ADMIN, 400, "pod pending does not have a host assigned"),
             (EXEC.format("multi"), ADMIN, 400, "a container name must be specified for pod multi, choose one of: [a b]"),
             ("/api/v1/namespaces/default/configmaps/x/exec", ADMIN, 404, "the server could not find the requested resource")]
    for path, token, code, message in cases:
        with pytest.raises(InvalidStatus) as ei:
            async with connect(env.ws(path, command="true", stdout="true"),
                               subprotocols=[Subprotocol("v5.channel.k8s.io")],
                               additional_headers=env.headers(token)):
                pass
        assert ei.value.response.status_code == code
        assert json.loads(ei.value.response.body or b"{}")["message"] == message

    # Without an upgrade (kubectl's SPDY fallback): the same refusal, else "Upgrade request required".
    async with httpx.AsyncClient(base_url=env.base, headers=env.headers()) as h:
        r = await h.post(EXEC.format("web"), params={"command": "true", "stdout": "true"})
        assert (r.status_code, r.json()["message"]) == (400, 'container "app" is not running')
        env.runtime.containers[("default", "web", "app")].running = True
        r = await h.post(EXEC.format("web"), params={"command": "true", "stdout": "true"})
        assert (r.status_code, r.json()["message"]) == (400, "Upgrade request required")


class _LenientClient(ClientProtocol):
    """The ``websockets`` client refuses ``SPDY/3.1+portforward.k8s.io`` in the handshake answer, as its server
    side does (``/`` is no token character); kubectl's Go client does not mind."""

    def process_subprotocol(self, headers: Headers) -> Subprotocol | None:
        values = headers.get_all("Sec-WebSocket-Protocol")
        return Subprotocol(values[0]) if values else None


class SpdyClient:
    """Just enough SPDY/3.1 to play kubectl's port-forward."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.deflate = zlib.compressobj(zdict=SPDY_DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=SPDY_DICTIONARY)
        self.buf = b""
        self.next_id = 1

    def _headers(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode() for k, v in headers.items())
        return self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    async def control(self, ftype: int, flags: int, payload: bytes) -> None:
        await self.ws.send(struct.pack(">HHI", 0x8003, ftype, (flags << 24) | len(payload)) + payload)

    async def syn_stream(self, headers: dict[str, str], fin: bool = False) -> int:
        sid = self.next_id
        self.next_id += 2
        await self.control(1, 1 if fin else 0, struct.pack(">IIH", sid, 0, 0) + self._headers(headers))
        return sid

    async def data(self, sid: int, data: bytes, fin: bool = False) -> None:
        await self.ws.send(struct.pack(">II", sid, ((1 if fin else 0) << 24) | len(data)) + data)

    async def frame(self) -> tuple[str, int, int, bytes]:
        """The next frame: ("control", type, flags, payload) or ("data", stream id, flags, payload)."""
        while True:
            if len(self.buf) >= 8:
                length = int.from_bytes(self.buf[5:8], "big")
                if len(self.buf) >= 8 + length:
                    head, payload = self.buf[:8], self.buf[8:8 + length]
                    self.buf = self.buf[8 + length:]
                    if head[0] & 0x80:
                        ftype = int.from_bytes(head[2:4], "big")
                        if ftype == 2:  # SYN_REPLY: keep the header context in step
                            self.inflate.decompress(payload[4:])
                        return "control", ftype, head[4], payload
                    return "data", int.from_bytes(head[0:4], "big"), head[4], payload
            msg = await asyncio.wait_for(self.ws.recv(), 5)
            assert isinstance(msg, bytes)
            self.buf += msg


async def _streams_until_fin(spdy: SpdyClient, sids: set[int]) -> tuple[dict[int, bytes], set[int]]:
    """Data per stream until every stream in ``sids`` is finished; also the streams answered with SYN_REPLY."""
    data: dict[int, bytes] = {sid: b"" for sid in sids}
    replied: set[int] = set()
    open_ = set(sids)
    while open_:
        kind, a, flags, payload = await spdy.frame()
        if kind == "control" and a == 2:
            replied.add(int.from_bytes(payload[:4], "big"))
        elif kind == "data":
            data[a] += payload
            if flags & 1:
                open_.discard(a)
    return data, replied


async def test_port_forward_through_the_spdy_tunnel(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("websockets.asyncio.client.ClientProtocol", _LenientClient)
    url = env.ws("/api/v1/namespaces/default/pods/web/portforward")
    async with echo_server() as echo_port:
        env.runtime.ports[8080] = echo_port
        # Offered by hand: the client library also refuses to send it.
        headers = {**env.headers(), "Sec-WebSocket-Protocol": "SPDY/3.1+portforward.k8s.io"}
        async with connect(url, additional_headers=headers) as ws:
            assert ws.subprotocol == "SPDY/3.1+portforward.k8s.io"
            spdy = SpdyClient(ws)
            await spdy.control(6, 0, struct.pack(">I", 1))  # PING, answered in kind
            assert await spdy.frame() == ("control", 6, 0, struct.pack(">I", 1))
            # Two connections at once, as kubectl opens them: an error stream (closed by the client at once), then a
            # data stream, sharing a request ID.
            payload = os.urandom(200_000)
            pairs = []
            for rid in ("0", "1"):
                err = await spdy.syn_stream({"streamtype": "error", "port": "8080", "requestid": rid})
                await spdy.data(err, b"", fin=True)
                dat = await spdy.syn_stream({"streamtype": "data", "port": "8080", "requestid": rid})
                pairs.append((err, dat))
            for _, dat in pairs:
                await spdy.data(dat, payload[:100_000])
                await spdy.data(dat, payload[100_000:], fin=True)  # half-close: the echo server answers "bye"
            sids = {sid for pair in pairs for sid in pair}
            data, replied = await _streams_until_fin(spdy, sids)
            assert replied == sids
            for err, dat in pairs:
                assert data[dat] == payload + b"bye\n" and data[err] == b""
            # A port nothing listens on: the node's error on the error stream, both streams finished.
            err = await spdy.syn_stream({"streamtype": "error", "port": "9999", "requestid": "2"})
            dat = await spdy.syn_stream({"streamtype": "data", "port": "9999", "requestid": "2"})
            data, _ = await _streams_until_fin(spdy, {err, dat})
            assert data[dat] == b""
            assert data[err].decode() == ("error forwarding port 9999 to pod default/web: "
                                          "dial tcp 127.0.0.1:9999: connect: connection refused")


async def test_port_forward_websocket_clients_are_relayed(env: Env) -> None:
    """Clients speaking the kubelet's WebSocket port-forward protocol (the Python client does) go straight through."""
    async with echo_server() as echo_port:
        env.runtime.ports[80] = echo_port
        url = env.ws("/api/v1/namespaces/default/pods/web/portforward", ports="80")
        async with connect(url, subprotocols=[Subprotocol("v4.channel.k8s.io")], additional_headers=env.headers()) as ws:
            assert ws.subprotocol == "v4.channel.k8s.io"
            assert await ws.recv() == b"\x00" + struct.pack("<H", 80)
            assert await ws.recv() == b"\x01" + struct.pack("<H", 80)
            await ws.send(b"\x00relayed")
            assert await asyncio.wait_for(ws.recv(), 5) == b"\x00relayed"


async def test_agent_refusing_our_token_is_reported(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    reg = Registry(store)
    await bootstrap(reg, 6443)
    rt = FakeRuntime(tmp_path / "node")
    rt.add("default", "web", "app")
    agent = await start_server(KubeletServer(rt, AGENT_TOKEN), "127.0.0.1", 0)
    server, task, port = await _serve(ApiServer(reg, ADMIN, kubelet=KubeletConfig(token="not-the-agents",
                                                                                   scheme="http")))
    try:
        c = LocalClient(reg)
        await _node(c, "node-1", agent.port)
        await c.create(PODS, "default", _pod("web", "node-1", ["app"]))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ADMIN}"}) as h:
            r = await h.get(LOG.format("web"))
            assert (r.status_code, r.json()["message"]) == (401, "Unauthorized")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)
        await agent.stop()
        store.close()


def test_kubelet_token_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "kubelet-token"
    token = ensure_kubelet_token(path)
    assert len(token) >= 32 and ensure_kubelet_token(path) == token
    assert path.stat().st_mode & 0o777 == 0o600
    assert KubeletConfig(token, ca_pem=None).ssl_context is not None
    assert KubeletConfig(token, scheme="http").ssl_context is None
