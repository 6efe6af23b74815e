"""Container probes: single attempts against real local HTTP/TCP servers and commands, and probe workers'
thresholds, gating and schedule (deterministic steps with a fake clock, plus a few short real-time runs)."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tinykube.agent.probes import (
    MAX_OUTPUT,
    ContainerProbes,
    Outcome,
    ProbeWorker,
    bind_probe,
    kill_message,
    probe_defaults,
    probe_once,
)

Responder = Callable[[bytes], Awaitable[bytes | None]]


class Server:
    """A raw HTTP/1.1 server on 127.0.0.1: ``respond(head)`` answers each request's head with raw bytes
    (None: answer nothing and keep the connection open; with ``hang_after`` the connection is kept open
    after the answer too)."""

    def __init__(self, respond: Responder, hang_after: bool = False) -> None:
        self.respond = respond
        self.hang_after = hang_after
        self.heads: list[bytes] = []
        self.port = 0
        self.closed = asyncio.Event()
        self.writers: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            answer = await self.respond(head)
            if answer is None:
                await self.closed.wait()
                return
            writer.write(answer)
            await writer.drain()
            if self.hang_after:
                await self.closed.wait()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.writers.discard(writer)

    def header(self, name: str, index: int = -1) -> str | None:
        for line in self.heads[index].decode().split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.lower() == name.lower():
                return value.strip()
        return None

    def target(self, index: int = -1) -> str:
        return self.heads[index].decode().split(" ")[1]


@asynccontextmanager
async def serve(respond: Responder, tls: ssl.SSLContext | None = None,
                hang_after: bool = False) -> AsyncIterator[Server]:
    server = Server(respond, hang_after)
    srv = await asyncio.start_server(server._handle, "127.0.0.1", 0, ssl=tls)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.closed.set()
        srv.close()
        await srv.wait_closed()
        for _ in range(3):  # let handlers finish
            await asyncio.sleep(0)


def answer(status: int, body: bytes = b"", extra: str = "") -> Responder:
    async def respond(head: bytes) -> bytes:
        return (f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body
    return respond


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


async def run(probe: dict[str, Any], container: dict[str, Any] | None = None, timeout: float = 1.0,
              exec_fn: Any = None) -> Outcome:
    return await probe_once(probe, pod_ip="127.0.0.1", container=container or {"name": "c"},
                            exec_fn=exec_fn, timeout=timeout)


# --- httpGet --------------------------------------------------------------------------------------------


async def test_http_success_sends_kubelet_headers_and_returns_body() -> None:
    async with serve(answer(200, b"all good")) as srv:
        out = await run({"httpGet": {"path": "/_health?verbose=1", "port": srv.port}})
    assert out == Outcome("success", "all good")
    assert srv.target() == "/_health?verbose=1"
    assert srv.header("Host") == f"127.0.0.1:{srv.port}"
    assert srv.header("User-Agent") == "kube-probe/1.32"
    assert srv.header("Accept") == "*/*"
    assert srv.header("Connection") == "close"


async def test_http_headers_from_the_probe_override_defaults() -> None:
    headers = [{"name": "user-agent", "value": "mine"}, {"name": "Accept", "value": ""},
               {"name": "Host", "value": "svc.example"}, {"name": "X-Token", "value": "t1"}]
    async with serve(answer(204)) as srv:
        out = await run({"httpGet": {"path": "/", "port": srv.port, "httpHeaders": headers}})
    assert out.result == "success"
    assert srv.header("User-Agent") == "mine"
    assert srv.heads[-1].lower().count(b"user-agent:") == 1
    assert srv.header("Accept") is None  # overridden with an empty value: left out
    assert srv.header("Host") == "svc.example"
    assert srv.header("X-Token") == "t1"


@pytest.mark.parametrize("status,result", [(200, "success"), (204, "success"), (302, "warning"), (399, "warning"),
                                           (400, "failure"), (500, "failure")])
async def test_http_status_ranges(status: int, result: str) -> None:
    async with serve(answer(status, b"body text")) as srv:
        out = await run({"httpGet": {"path": "/", "port": srv.port}})
    if result == "failure":
        assert out == Outcome("failure", f"HTTP probe failed with statuscode: {status}")  # never the body
    elif result == "warning":  # 3xx not followed (here: no Location): a success the kubelet warns about
        assert out == Outcome("success", "Probe terminated redirects, Response body: body text", warning=True)
    else:
        assert out == Outcome("success", "" if status == 204 else "body text")


async def test_http_named_port_and_port_errors() -> None:
    async with serve(answer(200)) as srv:
        container = {"name": "web", "ports": [{"name": "metrics", "containerPort": 1},
                                              {"name": "http", "containerPort": srv.port}]}
        assert (await run({"httpGet": {"path": "/", "port": "http"}}, container)).result == "success"
        assert (await run({"httpGet": {"path": "/", "port": str(srv.port)}}, container)).result == "success"
    out = await run({"httpGet": {"path": "/", "port": "nope"}}, container)
    assert out == Outcome("unknown", 'strconv.Atoi: parsing "nope": invalid syntax')
    assert (await run({"tcpSocket": {"port": 0}}, container)) == Outcome("unknown", "invalid port number: 0")
    assert (await run({"tcpSocket": {"port": 70000}}, container)) == Outcome("unknown", "invalid port number: 70000")


async def test_http_connection_refused_message() -> None:
    port = free_port()
    out = await run({"httpGet": {"path": "/_health", "port": port}})
    assert out == Outcome("failure", f'Get "http://127.0.0.1:{port}/_health": dial tcp 127.0.0.1:{port}: '
                                     "connect: connection refused")


async def test_http_timeout_awaiting_headers() -> None:
    async def hang(head: bytes) -> None:
        return None
    async with serve(hang) as srv:
        started = time.monotonic()
        out = await run({"httpGet": {"path": "/slow", "port": srv.port}}, timeout=0.15)
        assert time.monotonic() - started < 1.0
    assert out == Outcome("failure", f'Get "http://127.0.0.1:{srv.port}/slow": context deadline exceeded '
                                     "(Client.Timeout exceeded while awaiting headers)")


async def test_http_timeout_reading_body_is_an_error() -> None:
    async def head_only(head: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"

    async with serve(head_only, hang_after=True) as srv:
        out = await run({"httpGet": {"path": "/", "port": srv.port}}, timeout=0.15)
    assert out == Outcome("unknown", "context deadline exceeded (Client.Timeout or context cancellation "
                                     "while reading body)")


async def test_http_connection_closed_and_garbage_answers() -> None:
    async def nothing(head: bytes) -> bytes:
        return b""
    async with serve(nothing) as srv:
        out = await run({"httpGet": {"path": "/", "port": srv.port}})
    assert out == Outcome("failure", f'Get "http://127.0.0.1:{srv.port}/": EOF')

    async def garbage(head: bytes) -> bytes:
        return b"garbage\r\n\r\n"
    async with serve(garbage) as srv:
        out = await run({"httpGet": {"path": "/", "port": srv.port}})
    assert out.result == "failure"
    assert out.message.endswith('malformed HTTP response "garbage"')


async def test_http_body_is_limited_and_chunked_bodies_decoded() -> None:
    async with serve(answer(200, b"x" * 100_000)) as srv:
        out = await run({"httpGet": {"path": "/", "port": srv.port}})
    assert out.result == "success" and len(out.message) == MAX_OUTPUT

    async def chunked(head: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3;ext=1\r\nllo\r\n0\r\n\r\n"
    async with serve(chunked) as srv:
        assert await run({"httpGet": {"path": "/", "port": srv.port}}) == Outcome("success", "hello")

    async def informational(head: bytes) -> bytes:
        return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"
    async with serve(informational) as srv:
        out = await run({"httpGet": {"path": "/", "port": srv.port}})
    assert out == Outcome("failure", "HTTP probe failed with statuscode: 503")


async def test_http_redirects_followed_on_the_same_host_only() -> None:
    async def redirecting(head: bytes) -> bytes:
        path = head.split(b" ")[1]
        if path == b"/start":
            return b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n"
        if path == b"/next":
            return b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"
        if path == b"/away":  # another host name: not followed, the 3xx answer is a success with a warning
            return b"HTTP/1.1 301 Moved\r\nLocation: http://localhost:1/elsewhere\r\nContent-Length: 5\r\n\r\nmoved"
        return b"HTTP/1.1 307 Again\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"

    async with serve(redirecting) as srv:
        out = await run({"httpGet": {"path": "/start", "port": srv.port}})
        assert out == Outcome("failure", "HTTP probe failed with statuscode: 500")
        assert [srv.target(i) for i in range(2)] == ["/start", "/next"]
        assert srv.header("User-Agent") == "kube-probe/1.32"  # headers go along

        srv.heads.clear()
        out = await run({"httpGet": {"path": "/away", "port": srv.port}})
        assert out == Outcome("success", "Probe terminated redirects, Response body: moved", warning=True)
        assert len(srv.heads) == 1

        srv.heads.clear()
        out = await run({"httpGet": {"path": "/loop", "port": srv.port}})
        assert out == Outcome("failure", f'Get "http://127.0.0.1:{srv.port}/loop": stopped after 10 redirects')
        assert len(srv.heads) == 10


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    return ctx


async def test_https_without_certificate_verification(tmp_path: Path) -> None:
    async with serve(answer(200, b"secure"), tls=_self_signed(tmp_path)) as srv:
        out = await run({"httpGet": {"path": "/", "port": srv.port, "scheme": "HTTPS"}})
        assert out == Outcome("success", "secure")

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")  # at once, whatever it got
        await writer.drain()
        writer.close()

    plain_srv = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = plain_srv.sockets[0].getsockname()[1]
    try:
        out = await run({"httpGet": {"path": "/", "port": port, "scheme": "HTTPS"}})
    finally:
        plain_srv.close()
    assert out == Outcome("failure", f'Get "https://127.0.0.1:{port}/": http: server gave HTTP response '
                                     "to HTTPS client")


# --- tcpSocket, exec, grpc -------------------------------------------------------------------------------


async def test_tcp_success_refused_and_timeout() -> None:
    async with serve(answer(200)) as srv:
        assert await run({"tcpSocket": {"port": srv.port}}) == Outcome("success", "")
    port = free_port()
    assert await run({"tcpSocket": {"port": port}}) == Outcome(
        "failure", f"dial tcp 127.0.0.1:{port}: connect: connection refused")

    # A listener whose accept queue is full drops further SYNs: the connect hangs until the deadline.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(s)
        await asyncio.sleep(0.02)
        out = await run({"tcpSocket": {"port": port}}, timeout=0.15)
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert out == Outcome("failure", f"dial tcp 127.0.0.1:{port}: i/o timeout")


async def _sh(argv: list[str], timeout: float) -> tuple[int, str]:
    """An exec_fn running argv as a local process (the agent's runs it inside the container)."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    _SPAWNED.append(proc)
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode()


_SPAWNED: list[asyncio.subprocess.Process] = []


async def test_exec_exit_codes_output_and_timeout() -> None:
    ok = await run({"exec": {"command": ["sh", "-c", "echo fine"]}}, exec_fn=_sh)
    assert ok == Outcome("success", "fine\n")
    bad = await run({"exec": {"command": ["sh", "-c", "echo 'cat: /tmp/healthy: No such file' >&2; exit 1"]}},
                    exec_fn=_sh)
    assert bad == Outcome("failure", "cat: /tmp/healthy: No such file\n")

    _SPAWNED.clear()
    started = time.monotonic()
    slow = await run({"exec": {"command": ["sleep", "5"]}}, exec_fn=_sh, timeout=0.1)
    assert time.monotonic() - started < 2
    assert slow == Outcome("failure", 'command timed out: "sleep 5" timed out after 100ms')
    assert _SPAWNED[0].returncode is not None  # cancelled at the deadline: the runner killed it


async def test_exec_runner_errors_are_unknown_and_output_is_limited() -> None:
    async def broken(argv: list[str], timeout: float) -> tuple[int, str]:
        raise RuntimeError("container is not running")

    async def chatty(argv: list[str], timeout: float) -> tuple[int, str]:
        assert timeout == 3.0
        return 2, "y" * 50_000

    assert await run({"exec": {"command": ["x"]}}, exec_fn=broken) == Outcome("unknown", "container is not running")
    out = await run({"exec": {"command": ["x"]}}, exec_fn=chatty, timeout=3.0)
    assert out.result == "failure" and len(out.message) == MAX_OUTPUT
    assert (await run({"exec": {"command": ["x"]}})).result == "unknown"  # no runner


async def test_grpc_and_missing_handler_are_unknown() -> None:
    out = await run({"grpc": {"port": 9090}})
    assert out.result == "unknown" and "gRPC probes are not supported" in out.message
    out = await run({"periodSeconds": 3})
    assert out == Outcome("unknown", "missing probe handler for container c")


def test_go_texts_and_defaults() -> None:
    frozen_like = {"httpGet": {"port": 80}, "periodSeconds": 0, "successThreshold": 4}
    d = probe_defaults(frozen_like, "liveness")
    assert d["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert (d["periodSeconds"], d["timeoutSeconds"], d["failureThreshold"], d["initialDelaySeconds"],
            d["successThreshold"]) == (10, 1, 3, 0, 1)
    assert probe_defaults(frozen_like, "readiness")["successThreshold"] == 4
    assert frozen_like == {"httpGet": {"port": 80}, "periodSeconds": 0, "successThreshold": 4}  # not changed
    assert kill_message("liveness", "web") == "Container web failed liveness probe, will be restarted"


# --- ProbeWorker: deterministic steps ---------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Script:
    """A probe function answering queued outcomes ("S", "F", "U", "W" or Outcome objects)."""

    def __init__(self, *outcomes: str | Outcome) -> None:
        self.queue = list(outcomes)
        self.timeouts: list[float] = []

    def add(self, *outcomes: str | Outcome) -> None:
        self.queue.extend(outcomes)

    async def __call__(self, timeout: float) -> Outcome:
        self.timeouts.append(timeout)
        o = self.queue.pop(0)
        if isinstance(o, Outcome):
            return o
        return {"S": Outcome("success", "fine"), "F": Outcome("failure", "boom"),
                "U": Outcome("unknown", "no such port"),
                "W": Outcome("success", "Probe terminated redirects, Response body: x", warning=True)}[o]


class Record:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool]] = []
        self.events: list[tuple[str, str, str]] = []

    def on_result(self, kind: str, ok: bool) -> None:
        self.results.append((kind, ok))

    def on_event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def worker(kind: Any, spec: dict[str, Any], script: Script, rec: Record, clock: Clock,
           **kw: Any) -> ProbeWorker:
    return ProbeWorker(kind, spec, script, started_at=clock.now, on_result=rec.on_result,
                       on_event=rec.on_event, clock=clock, **kw)


async def test_readiness_thresholds_and_an_event_per_failed_attempt() -> None:
    rec, clock = Record(), Clock()
    script = Script("S", "S", "F", "S", "F", "F")
    w = worker("readiness", {"successThreshold": 2, "failureThreshold": 2, "timeoutSeconds": 4}, script, rec, clock)
    assert w.result is False  # not ready until a probe succeeds
    assert await w.step()
    assert rec.results == []  # one success is below the threshold
    assert await w.step()
    assert rec.results == [("readiness", True)]
    await w.step()  # F: 1 < 2
    await w.step()  # S: run restarts, result unchanged (no report)
    await w.step()
    assert rec.results == [("readiness", True)]
    await w.step()
    assert rec.results == [("readiness", True), ("readiness", False)]
    assert rec.events == [("Warning", "Unhealthy", "Readiness probe failed: boom")] * 3
    assert script.timeouts == [4.0] * 6


async def test_liveness_failure_holds_until_reset() -> None:
    rec, clock = Record(), Clock()
    script = Script("F", "F", "F")
    w = worker("liveness", {"failureThreshold": 3, "successThreshold": 5}, script, rec, clock)
    assert w.success_threshold == 1 and w.result is True
    await w.step()
    await w.step()
    assert rec.results == []
    await w.step()
    assert rec.results == [("liveness", False)] and w.held
    assert not await w.step()  # on hold: no attempt
    assert len(rec.events) == 3 and rec.events[0][2] == "Liveness probe failed: boom"

    clock.now += 30
    w.reset(clock.now)
    assert rec.results == [("liveness", False), ("liveness", True)]
    script.add("F", "S")
    assert await w.step()
    assert rec.results[-1] == ("liveness", True)  # one failure after the restart is below the threshold again
    assert await w.step()


async def test_startup_unknown_until_a_threshold_then_done() -> None:
    rec, clock = Record(), Clock()
    script = Script("F", "F")
    w = worker("startup", {"failureThreshold": 2}, script, rec, clock)
    await w.step()
    await w.step()
    assert rec.results == [("startup", False)] and w.held  # reported although it started out "not started"
    assert rec.events[-1][2] == "Startup probe failed: boom"

    w.reset(clock.now)
    script.add("S")
    await w.step()
    assert rec.results == [("startup", False), ("startup", True)]
    assert w.wait_time() is None and not await w.step()  # done until the container restarts
    w.reset(clock.now)
    assert w.result is False and w.wait_time() == 0


async def test_initial_delay_counts_from_container_start() -> None:
    rec, clock = Record(), Clock()
    w = worker("readiness", {"initialDelaySeconds": 5}, Script("S"), rec, clock)
    clock.now += 4.9
    assert not await w.step()
    assert w.wait_time() == pytest.approx(0.1)
    clock.now += 0.1
    assert await w.step() and w.result


async def test_errored_attempts_are_retried_then_thrown_away() -> None:
    rec, clock = Record(), Clock()
    script = Script("U", "U", "U", "U", "S")
    w = worker("readiness", {}, script, rec, clock)
    await w.step()
    assert len(script.timeouts) == 3 and rec.results == []
    assert rec.events == [("Warning", "Unhealthy",
                           "Readiness probe errored and resulted in unknown state: no such port")] * 3
    await w.step()  # U then S: the retry counts
    assert rec.results == [("readiness", True)] and len(script.timeouts) == 5


async def test_warning_counts_as_success_with_a_probe_warning_event() -> None:
    rec, clock = Record(), Clock()
    w = worker("readiness", {}, Script("W"), rec, clock)
    await w.step()
    assert rec.results == [("readiness", True)]
    assert rec.events == [("Warning", "ProbeWarning",
                           "Readiness probe warning: Probe terminated redirects, Response body: x")]


async def test_crashing_probe_function_is_an_error() -> None:
    rec, clock = Record(), Clock()

    async def crash(timeout: float) -> Outcome:
        raise KeyError("port")

    w = ProbeWorker("liveness", {}, crash, started_at=clock.now, on_result=rec.on_result,
                    on_event=rec.on_event, clock=clock)
    await w.step()
    assert rec.results == [] and len(rec.events) == 3 and "KeyError" in rec.events[0][2]


async def test_answer_about_an_old_container_is_dropped() -> None:
    rec, clock = Record(), Clock()
    gate = asyncio.Event()

    async def slow(timeout: float) -> Outcome:
        await gate.wait()
        return Outcome("success", "")

    w = ProbeWorker("readiness", {}, slow, started_at=clock.now, on_result=rec.on_result,
                    on_event=rec.on_event, clock=clock)
    step = asyncio.create_task(w.step())
    await asyncio.sleep(0)
    w.reset(clock.now)  # the container restarted while the attempt was running
    gate.set()
    assert await step
    assert rec.results == [] and w.result is False


async def test_hold_makes_readiness_false() -> None:
    rec, clock = Record(), Clock()
    w = worker("readiness", {}, Script("S"), rec, clock)
    await w.step()
    w.hold()
    assert rec.results == [("readiness", True), ("readiness", False)]
    assert not await w.step()


async def test_container_probes_startup_gates_the_others() -> None:
    rec, clock = Record(), Clock()
    scripts = {"startup": Script("F", "S"), "liveness": Script("S"), "readiness": Script("S")}
    container = {"name": "c", "startupProbe": {"exec": {"command": ["a"]}},
                 "livenessProbe": {"exec": {"command": ["b"]}}, "readinessProbe": {"exec": {"command": ["c"]}}}
    probes = ContainerProbes(container, started_at=clock.now, on_result=rec.on_result, on_event=rec.on_event,
                             probe_fn=lambda kind, spec: scripts[kind], clock=clock)
    live, ready, startup = (probes.workers[k] for k in ("liveness", "readiness", "startup"))
    assert not probes.started and not probes.ready and probes.live
    assert not await live.step() and not await ready.step()  # gated
    await startup.step()
    assert not await ready.step()
    await startup.step()
    assert probes.started and rec.results == [("startup", True)]
    assert not probes.ready  # started, readiness not yet succeeded
    assert await ready.step() and await live.step()
    assert probes.ready

    probes.reset(clock.now)  # a restart closes the gate again
    assert not probes.started and not probes.ready
    assert not await ready.step()
    assert ("readiness", False) == rec.results[-1]


# --- the schedule, in real time ---------------------------------------------------------------------------


async def test_schedule_initial_delay_then_every_period() -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def probe(timeout: float) -> Outcome:
        times.append(loop.time())
        return Outcome("success", "")

    rec = Record()
    begin = loop.time()
    w = ProbeWorker("liveness", {"initialDelaySeconds": 0.15, "periodSeconds": 0.05}, probe,
                    started_at=time.time(), on_result=rec.on_result, on_event=rec.on_event)
    w.start()
    await asyncio.sleep(0.42)
    await w.stop()
    assert not w.running
    assert times and times[0] - begin >= 0.14
    assert 3 <= len(times) <= 7
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(times))


async def test_jitter_delays_only_the_first_attempt_and_trigger_probes_now() -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def probe(timeout: float) -> Outcome:
        times.append(loop.time())
        return Outcome("success", "")

    rec = Record()
    begin = loop.time()
    w = ProbeWorker("readiness", {"periodSeconds": 0.4}, probe, started_at=time.time(),
                    on_result=rec.on_result, on_event=rec.on_event, jitter=True, rand=lambda: 0.5)
    w.start()
    while not times:
        await asyncio.sleep(0.01)
    assert 0.18 <= times[0] - begin < 0.35
    w.trigger()
    await asyncio.sleep(0.05)
    assert len(times) == 2 and times[1] - times[0] < 0.1  # not a whole period later
    await w.stop()


async def test_stop_cancels_an_attempt_in_flight() -> None:
    began, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(timeout: float) -> Outcome:
        began.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Outcome("success", "")

    rec = Record()
    w = ProbeWorker("liveness", {"timeoutSeconds": 30}, stuck, started_at=time.time(), on_result=rec.on_result,
                    on_event=rec.on_event)
    w.start()
    await asyncio.wait_for(began.wait(), 1)
    await asyncio.wait_for(w.stop(), 1)
    assert cancelled.is_set() and rec.events == []


async def test_container_probes_against_a_real_server() -> None:
    """Readiness flips as the server's answers change; a liveness failure is reported once, probing pauses
    until the agent restarts the container, and readiness starts over at false; startup success opens the
    gate at once although the readiness period is long."""
    state = {"ready": 500, "live": 200, "startup": 200}

    async def respond(head: bytes) -> bytes:
        code = state[head.split(b" ")[1].decode().strip("/")]
        return f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode()

    rec = Record()
    async with serve(respond) as srv:
        fast = {"periodSeconds": 0.05, "failureThreshold": 2}
        container = {
            "name": "web", "ports": [{"name": "http", "containerPort": srv.port}],
            "startupProbe": {"httpGet": {"path": "/startup", "port": "http"}, **fast},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 60},
            "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}, **fast},
        }
        probes = ContainerProbes(container, started_at=time.time(), pod_ip="127.0.0.1",
                                 on_result=rec.on_result, on_event=rec.on_event)
        probes.start()
        try:
            await _until(lambda: probes.started and probes.workers["readiness"].attempts >= 1)
            assert not probes.ready
            assert ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500") \
                in rec.events
            state["ready"] = 200
            probes.workers["readiness"].trigger()
            await _until(lambda: probes.ready)

            state["live"] = 503
            await _until(lambda: ("liveness", False) in rec.results)
            attempts = probes.workers["liveness"].attempts
            await asyncio.sleep(0.15)
            assert probes.workers["liveness"].attempts == attempts  # held
            assert rec.results.count(("liveness", False)) == 1

            state["live"] = 200
            probes.reset(time.time())  # the agent restarted the container
            assert not probes.ready and not probes.started
            await _until(lambda: probes.ready)
            assert probes.live and probes.workers["liveness"].attempts > attempts
        finally:
            await probes.stop()


async def test_terminating_stops_liveness_and_startup_only() -> None:
    rec, clock = Record(), Clock()
    scripts = {k: Script(*["S"] * 50) for k in ("startup", "liveness", "readiness")}
    container = {"name": "c", "startupProbe": {"tcpSocket": {"port": 1}}, "livenessProbe": {"tcpSocket": {"port": 1}},
                 "readinessProbe": {"tcpSocket": {"port": 1}}}
    probes = ContainerProbes(container, started_at=clock.now, on_result=rec.on_result, on_event=rec.on_event,
                             probe_fn=lambda kind, spec: scripts[kind], clock=clock)
    probes.start()
    try:
        await probes.terminating()
        assert [k for k, w in probes.workers.items() if w.running] == ["readiness"]
    finally:
        await probes.stop()
    assert not any(w.running for w in probes.workers.values())


async def _until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_bind_probe_copies_the_spec() -> None:
    async with serve(answer(200, b"ok")) as srv:
        spec = {"tcpSocket": {"port": srv.port}}
        fn = bind_probe(spec, pod_ip="127.0.0.1", container={}, exec_fn=None)
        spec.clear()
        assert await fn(1.0) == Outcome("success", "")
