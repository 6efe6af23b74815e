"""The agent's kubelet API against a fake runtime: plain local processes and a local TCP echo server.

:class:`FakeRuntime` and :func:`echo_server` are shared with the API server's proxy tests and the end-to-end
test: the runtime "runs" containers as nothing more than log files written by the test, execs commands as
local processes and forwards pod ports to local ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tinykube.agent.logs import LogWriter
from tinykube.agent.server import (
    AttachTarget,
    ExecSpec,
    KubeletServer,
    LogSource,
    Serving,
    StreamError,
    start_server,
)

TOKEN = "agent-test-token"


@dataclass
class FakeContainer:
    log: str
    writer: LogWriter
    running: bool = True
    waiting: str = ""  # a waiting reason: the container has not started
    previous: str = ""  # the log of the previous (terminated) instance


@dataclass
class FakeRuntime:
    """A :class:`~tinykube.agent.server.Runtime` whose containers are log files and whose pods are this host."""

    root: Path
    containers: dict[tuple[str, str, str], FakeContainer] = field(default_factory=dict)
    ports: dict[int, int] = field(default_factory=dict)  # pod port -> local port

    def add(self, ns: str, pod: str, container: str, **kw: Any) -> FakeContainer:
        d = self.root / ns / pod / container
        d.mkdir(parents=True, exist_ok=True)
        path = str(d / "0.log")
        c = FakeContainer(path, LogWriter(path), **kw)
        self.containers[(ns, pod, container)] = c
        return c

    def _get(self, ns: str, pod: str, container: str) -> FakeContainer:
        c = self.containers.get((ns, pod, container))
        if c is None:
            raise StreamError(404, f'container "{container}" in pod "{pod}" not found')
        if c.waiting:
            raise StreamError(400, f'container "{container}" in pod "{pod}" is waiting to start: {c.waiting}')
        return c

    async def log_files(self, namespace: str, pod: str, container: str, previous: bool) -> LogSource:
        c = self._get(namespace, pod, container)
        if previous:
            if not c.previous:
                raise StreamError(400, f'previous terminated container "{container}" in pod "{pod}" not found')
            return LogSource(c.previous, lambda: False)
        return LogSource(c.log, lambda: c.running)

    async def exec_command(self, namespace: str, pod: str, container: str, argv: list[str]) -> ExecSpec:
        c = self._get(namespace, pod, container)
        if not c.running:
            raise StreamError(400, f'container "{container}" is not running')
        return ExecSpec(argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "POD_NAME": pod}, str(self.root))

    async def port_forward_connect(self, namespace: str, pod: str,
                                   port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        local = self.ports.get(port)
        if local is None:
            raise StreamError(500, f"dial tcp 127.0.0.1:{port}: connect: connection refused")
        return await asyncio.open_connection("127.0.0.1", local)

    async def attach(self, namespace: str, pod: str, container: str) -> AttachTarget:
        c = self._get(namespace, pod, container)
        return AttachTarget(LogSource(c.log, lambda: c.running))


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo until the client half-closes, then add a last line and close: a half-close must reach us."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write(b"bye\n")
        await writer.drain()
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@contextlib.asynccontextmanager
async def agent(tmp_path: Path) -> AsyncIterator[tuple[FakeRuntime, Serving]]:
    rt = FakeRuntime(tmp_path)
    serving = await start_server(KubeletServer(rt, TOKEN, poll=0.05), "127.0.0.1", 0)
    try:
        yield rt, serving
    finally:
        await serving.stop()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def collect(ws: ClientConnection, timeout: float = 10) -> tuple[dict[int, bytes], dict[str, Any] | None]:
    """Everything the server sends until it closes: bytes per channel, and the decoded error-channel Status."""
    out: dict[int, bytes] = {}
    status = None
    async with asyncio.timeout(timeout):
        async for msg in ws:
            assert isinstance(msg, bytes)
            if msg[0] == 3:
                status = json.loads(msg[1:])
            else:
                out[msg[0]] = out.get(msg[0], b"") + msg[1:]
    return out, status


# -- logs -------------------------------------------------------------------------------------------------------


async def test_logs_http_options_and_errors(tmp_path: Path) -> None:
    async with agent(tmp_path) as (rt, srv):
        c = rt.add("default", "web", "app")
        c.writer.write("stdout", b"one\ntwo\n")
        c.writer.write("stderr", b"three\n")
        rt.add("default", "slow", "app", waiting="ContainerCreating")
        base = f"http://127.0.0.1:{srv.port}"
        async with httpx.AsyncClient(base_url=base, headers=auth()) as h:
            r = await h.get("/containerLogs/default/web/app")
            assert r.status_code == 200 and r.text == "one\ntwo\nthree\n"
            r = await h.get("/containerLogs/default/web/app", params={"tailLines": "1", "timestamps": "true"})
            ts, text = r.text.split(" ", 1)
            assert text == "three\n" and ts.endswith("Z") and ts[:4].isdigit()
            r = await h.get("/containerLogs/default/web/app", params={"limitBytes": "5"})
            assert r.text == "one\nt"
            r = await h.get("/containerLogs/default/slow/app")
            assert r.status_code == 400
            assert r.json()["message"] == 'container "app" in pod "slow" is waiting to start: ContainerCreating'
            r = await h.get("/containerLogs/default/web/app", params={"previous": "true"})
            assert r.status_code == 400 and "previous terminated container" in r.json()["message"]
            r = await h.get("/containerLogs/default/web/app", params={"tailLines": "-1"})
            assert r.status_code == 400 and "tailLines" in r.json()["message"]
            # Without an upgrade: the checks the WebSocket would get, then "Upgrade request required".
            r = await h.get("/exec/default/web/app", params={"command": "true", "output": "1"})
            assert r.status_code == 400 and r.json()["message"] == "Upgrade request required"
            r = await h.get("/exec/default/web/app")
            assert r.json()["message"] == "you must specify at least one command for the container"
            r = await h.get("/exec/default/slow/app", params={"command": "true", "output": "1"})
            assert r.json()["message"] == 'container "app" in pod "slow" is waiting to start: ContainerCreating'
        async with httpx.AsyncClient(base_url=base) as h:
            assert (await h.get("/containerLogs/default/web/app")).status_code == 401
            r = await h.get("/containerLogs/default/web/app", headers=auth("wrong"))
            assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
            assert (await h.get("/healthz")).text == "ok"


async def test_logs_follow_streams_until_the_container_ends(tmp_path: Path) -> None:
    async with agent(tmp_path) as (rt, srv):
        c = rt.add("default", "web", "app")
        c.writer.write("stdout", b"first\n")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.port}", headers=auth()) as h, \
                h.stream("GET", "/containerLogs/default/web/app", params={"follow": "true"}) as r:
            chunks = r.aiter_raw()
            got = await asyncio.wait_for(chunks.__anext__(), 5)
            assert got == b"first\n"
            c.writer.write("stdout", b"second\n")
            got = await asyncio.wait_for(chunks.__anext__(), 5)
            assert got == b"second\n"
            c.writer.write("stdout", b"last\n")
            c.running = False
            rest = b""
            async with asyncio.timeout(5):
                async for chunk in chunks:
                    rest += chunk
            assert rest == b"last\n"


# -- exec -------------------------------------------------------------------------------------------------------


def ws_url(srv: Serving, path: str, **query: Any) -> str:
    from urllib.parse import urlencode

    return f"ws://127.0.0.1:{srv.port}{path}?{urlencode(query, doseq=True)}"


async def test_exec_stdin_stdout_stderr_and_exit_code(tmp_path: Path) -> None:
    async with agent(tmp_path) as (rt, srv):
        rt.add("default", "web", "app")
        url = ws_url(srv, "/exec/default/web/app", command=["sh", "-c", "cat; echo err $POD_NAME >&2; exit 3"],
                     input="1", output="1", error="1")
        async with connect(url, subprotocols=["v5.channel.k8s.io"], additional_headers=auth()) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "v5.channel.k8s.io"
            await ws.send(b"\x00hello ")
            await ws.send(b"\x00world\n")
            await ws.send(b"\xff\x00")  # v5 close signal: end of stdin
            out, status = await collect(ws)
        assert out[1] == b"hello world\n" and out[2] == b"err web\n"
        assert status is not None and status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]

        url = ws_url(srv, "/exec/default/web/app", command=["pwd"], output="1")
        async with connect(url, subprotocols=["v4.channel.k8s.io"], additional_headers=auth()) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "v4.channel.k8s.io"
            out, status = await collect(ws)
        assert out[1].decode().strip() == str(tmp_path) and status == {"metadata": {}, "status": "Success"}

        url = ws_url(srv, "/exec/default/web/app", command=["no-such-command-xyz"], output="1", error="1")
        async with connect(url, subprotocols=["v5.channel.k8s.io"], additional_headers=auth()) as ws:  # type: ignore[list-item]
            out, status = await collect(ws)
        assert b"executable file not found" in out[2]
        assert status is not None and status["details"]["causes"][0]["message"] == "127"


async def test_exec_refusals_are_status_answers(tmp_path: Path) -> None:
    async with agent(tmp_path) as (rt, srv):
        rt.add("default", "web", "app", running=False)
        cases = [
            (ws_url(srv, "/exec/default/web/app", command=["true"], output="1"), TOKEN, 400,
             'container "app" is not running'),
            (ws_url(srv, "/exec/default/web/app", command=["true"], output="1"), "bad", 401, "Unauthorized"),
            (ws_url(srv, "/exec/default/web/app", output="1"), TOKEN, 400,
             "you must specify at least one command for the container"),
            (ws_url(srv, "/exec/default/web/app", command=["true"]), TOKEN, 400,
             "you must specify at least 1 of stdin, stdout, stderr"),
            (ws_url(srv, "/exec/default/nope/app", command=["true"], output="1"), TOKEN, 404,
             'container "app" in pod "nope" not found'),
        ]
        for url, token, code, message in cases:
            with pytest.raises(InvalidStatus) as ei:
                async with connect(url, subprotocols=["v5.channel.k8s.io"], additional_headers=auth(token)):  # type: ignore[list-item]
                    pass
            assert ei.value.response.status_code == code
            assert json.loads(ei.value.response.body or b"{}")["message"] == message


async def test_exec_tty_resize_and_exit(tmp_path: Path) -> None:
    async with agent(tmp_path) as (rt, srv):
        rt.add("default", "web", "app")
        url = ws_url(srv, "/exec/default/web/app", command=["sh"], input="1", output="1", tty="1")
        async with connect(url, subprotocols=["v5.channel.k8s.io"], additional_headers=auth()) as ws:  # type: ignore[list-item]
            await ws.send(b"\x04" + json.dumps({"Width": 123, "Height": 45}).encode() + b"\n")
            await ws.send(b"\x00tty -s && echo IS-A-TTY; stty size; exit 7\n")
            out, status = await collect(ws)
        text = out[1].decode()
        assert "IS-A-TTY" in text and "45 123" in text and 2 not in out
        assert status is not None and status["details"]["causes"][0]["message"] == "7"


async def test_exec_client_going_away_hangs_up_the_command(tmp_path: Path) -> None:
    async with agent(tmp_path) as (rt, srv):
        rt.add("default", "web", "app")
        pidfile = tmp_path / "pid"
        url = ws_url(srv, "/exec/default/web/app", command=["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"],
                     output="1")
        async with connect(url, subprotocols=["v5.channel.k8s.io"], additional_headers=auth()) as ws:  # type: ignore[list-item]
            async with asyncio.timeout(5):
                while not pidfile.exists() or not pidfile.read_text().strip():
                    await asyncio.sleep(0.02)
            pid = int(pidfile.read_text())
            assert Path(f"/proc/{pid}").exists()
            await ws.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            await asyncio.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), "the command outlived its client"


# -- attach -----------------------------------------------------------------------------------------------------


async def test_attach_follows_output_from_now_until_the_container_ends(tmp_path: Path) -> None:
    async with agent(tmp_path) as (rt, srv):
        c = rt.add("default", "web", "app")
        c.writer.write("stdout", b"before attach\n")
        url = ws_url(srv, "/attach/default/web/app", output="1", error="1")
        async with connect(url, subprotocols=["v5.channel.k8s.io"], additional_headers=auth()) as ws:  # type: ignore[list-item]
            await asyncio.sleep(0.2)
            c.writer.write("stdout", b"out\n")
            c.writer.write("stderr", b"err\n")
            first = await asyncio.wait_for(ws.recv(), 5)
            assert first == b"\x01out\n"
            c.running = False
            out, status = await collect(ws)
        assert out == {2: b"err\n"} and status == {"metadata": {}, "status": "Success"}
        with pytest.raises(InvalidStatus) as ei:
            async with connect(ws_url(srv, "/attach/default/web/app", input="1", output="1"),
                               subprotocols=["v5.channel.k8s.io"], additional_headers=auth()):  # type: ignore[list-item]
                pass
        assert ei.value.response.status_code == 400


# -- port-forward -----------------------------------------------------------------------------------------------


async def test_port_forward_v5_carries_data_and_half_close(tmp_path: Path) -> None:
    async with agent(tmp_path) as (rt, srv), echo_server() as echo_port:
        rt.ports[8080] = echo_port
        url = ws_url(srv, "/portForward/default/web", port="8080")
        async with connect(url, subprotocols=["v5.channel.k8s.io"], additional_headers=auth()) as ws:  # type: ignore[list-item]
            assert await ws.recv() == b"\x00" + struct.pack("<H", 8080)
            assert await ws.recv() == b"\x01" + struct.pack("<H", 8080)
            await ws.send(b"\x00ping\n")
            assert await asyncio.wait_for(ws.recv(), 5) == b"\x00ping\n"
            await ws.send(b"\xff\x00")  # no more data from us: the echo server sees EOF, says bye and closes
            out, _ = await collect(ws)
        assert out[0] == b"bye\n" and out[255] == b"\x00"


async def test_port_forward_v4_and_refused_connection(tmp_path: Path) -> None:
    async with agent(tmp_path) as (rt, srv), echo_server() as echo_port:
        rt.ports[80] = echo_port
        url = ws_url(srv, "/portForward/default/web", port=["80", "81"])
        async with connect(url, subprotocols=["v4.channel.k8s.io"], additional_headers=auth()) as ws:  # type: ignore[list-item]
            for ch in range(4):
                assert await ws.recv() == bytes([ch]) + struct.pack("<H", 80 if ch < 2 else 81)
            error = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(error, bytes) and error[0] == 3
            assert error[1:].decode() == ("error forwarding port 81 to pod default/web: "
                                          "dial tcp 127.0.0.1:81: connect: connection refused")
            await ws.send(b"\x00abc")
            assert await asyncio.wait_for(ws.recv(), 5) == b"\x00abc"
        with pytest.raises(InvalidStatus) as ei:
            async with connect(ws_url(srv, "/portForward/default/web", port="0"),
                               subprotocols=["v4.channel.k8s.io"], additional_headers=auth()):  # type: ignore[list-item]
                pass
        assert ei.value.response.status_code == 400
