"""The node agent's kubelet API: container logs, exec, attach and port-forward, as an ASGI app.

The agent serves :class:`KubeletServer` with uvicorn on its node's address (see
:func:`start_server`) and reports the port in the Node's
``status.daemonEndpoints.kubeletEndpoint.Port``; the API server proxies the pods'
``log``, ``exec``, ``attach`` and ``portforward`` subresources here. The paths are the
kubelet's:

* ``GET /containerLogs/{namespace}/{pod}/{container}`` with the ``PodLogOptions`` query
  (``follow``, ``previous``, ``sinceSeconds``, ``sinceTime``, ``timestamps``,
  ``tailLines``, ``limitBytes``): a chunked ``text/plain`` stream, see
  :mod:`tinykube.agent.logs`.
* ``/exec/{namespace}/{pod}/{container}?command=...&command=...&input=1&output=1&error=1&tty=1``
  and ``/attach/{namespace}/{pod}/{container}?...`` over WebSocket, with the channel
  protocols kubectl speaks: ``v5.channel.k8s.io`` (preferred) and ``v4.channel.k8s.io``.
  Every binary message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error
  (one JSON ``Status`` when the command ends: ``Success``, or ``Failure`` with reason
  ``NonZeroExitCode`` and an ``ExitCode`` cause carrying the code, from which kubectl
  prints ``command terminated with exit code N`` and exits with it), 4 resize (JSON
  ``{"Width":..,"Height":..}``). v5 adds the close signal ``[255, channel]``: the
  client half-closes stdin with ``[255, 0]`` (``kubectl cp`` and ``exec -i`` rely on it
  to end the remote ``tar``/``cat``). The API names ``stdin``/``stdout``/``stderr`` are
  accepted as well as the kubelet's ``input``/``output``/``error``.
* ``/portForward/{namespace}/{pod}?port=N[&port=M]`` over WebSocket: the kubelet's
  WebSocket port-forward protocol. Port ``i`` gets data channel ``2i`` and error
  channel ``2i+1``; the first message the server sends on each channel is the port as
  two little-endian bytes. One TCP connection per port per WebSocket; it ends when the
  pod side closes. ``v4.channel.k8s.io`` is the kubelet's protocol as is;
  ``v5.channel.k8s.io`` adds the close signal in both directions (``[255, 2i]``: no
  more data), so TCP half-close survives the trip (an HTTP/1.0 client that shuts down
  its write side still gets its answer).

Every request but ``/healthz`` must carry ``Authorization: Bearer <token>`` with the
token the agent was given (the API server has the same one); anything else is a 401
``Status``. Errors are ``Status`` objects: plain HTTP responses before a WebSocket is
accepted (the API server relays them to kubectl), the error channel after.

The server knows nothing about namespaces, bubblewrap or the agent's bookkeeping: it is
given a :class:`Runtime` that maps (namespace, pod, container) to log files, to a host
command that runs inside the container (spawned here with pipes, or on a
pseudo-terminal when ``tty`` is set: the process gets its own session with the
terminal as its controlling tty, and resize messages become ``TIOCSWINSZ``), and to TCP
connections into the pod. ``attach`` needs nothing more from the runtime than the
container's log (its output is the log, followed from now on) plus, when the runtime
implements :class:`SupportsAttach`, the container's stdin.

A client that goes away hangs up its command (``SIGHUP`` to the process group, then
``SIGKILL`` two seconds later), as closing a terminal would; the kubelet leaves such
commands running, which only leaks processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import hmac
import json
import logging
import os
import pty
import signal
import struct
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable
from urllib.parse import parse_qs

import orjson

from ..apiserver.http import serve_lifespan
from ..apiserver.streams import WebSocket
from ..netutil import listen_socket
from . import logs

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("tinykube.agent.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
CHANNEL_PROTOCOLS = (V5, V4)
_CHUNK = 64 * 1024
_HANGUP_GRACE = 2.0
_OUTPUT_GRACE = 2.0
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
            500: "InternalError", 501: "NotImplemented", 503: "ServiceUnavailable", 504: "Timeout"}


# -- what the agent provides ------------------------------------------------------------------------------------


class StreamError(Exception):
    """A failure to report to the client as a ``Status`` (``code`` is the HTTP status)."""

    def __init__(self, code: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")

    def status(self) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "code": self.code}


@dataclass
class LogSource:
    """One container instance's log: its live file (rotated siblings are found next to it) and whether the
    container may still write to it (``kubectl logs -f`` ends once ``running()`` is false)."""

    path: str
    running: Callable[[], bool]


class ExecSpec(NamedTuple):
    """A host command that runs ``argv`` inside a container (e.g. ``nsenter ... -- argv``)."""

    argv: list[str]
    env: dict[str, str] | None = None
    cwd: str | None = None


class Runtime(Protocol):
    """What the agent implements for this server."""

    async def log_files(self, namespace: str, pod: str, container: str, previous: bool) -> LogSource:
        """The log of the container's current (or, with ``previous``, last terminated) instance; raise
        :class:`StreamError` with the kubelet's message otherwise, e.g. 400 ``container "c" in pod "p" is waiting
        to start: ContainerCreating`` or 400 ``previous terminated container "c" in pod "p" not found``."""
        ...

    async def exec_command(self, namespace: str, pod: str, container: str, argv: list[str]) -> ExecSpec:
        """The host command running ``argv`` in the container, or :class:`StreamError` (e.g. 400 ``container
        "c" is not running``)."""
        ...

    async def port_forward_connect(self, namespace: str, pod: str,
                                   port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``port`` of the pod, or :class:`StreamError` / ``OSError``."""
        ...


@dataclass
class AttachTarget:
    """What ``attach`` connects to: the container's log (its output, followed from now on) and, when the
    container was started with ``stdin: true``, a writer to its stdin."""

    logs: LogSource
    stdin: asyncio.StreamWriter | None = None
    tty: bool = False


@runtime_checkable
class SupportsAttach(Protocol):
    """Optional: runtimes that can attach to a container's main process."""

    async def attach(self, namespace: str, pod: str, container: str) -> AttachTarget:
        ...


# -- channel protocol -------------------------------------------------------------------------------------------


def status_success() -> bytes:
    return orjson.dumps({"metadata": {}, "status": "Success"})


def status_exit_code(code: int, argv: list[str]) -> bytes:
    """The error-channel ``Status`` for a command that exited with ``code`` (non-zero)."""
    return orjson.dumps({
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": f"command terminated with non-zero exit code: command {argv} exited with {code}",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    })


def status_failure(message: str, reason: str = "InternalError", code: int = 500) -> bytes:
    return orjson.dumps({"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})


def exit_code(returncode: int) -> int:
    """A process's exit code as a container runtime reports it: killed by signal N is 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def pick_protocol(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first of ``supported`` (ours, by preference) that the client offered."""
    for p in supported:
        if p in offered:
            return p
    return None


# -- the server -------------------------------------------------------------------------------------------------


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def _first(q: dict[str, list[str]], *names: str) -> str:
    for n in names:
        if n in q:
            return q[n][-1]
    return ""


def _flag(q: dict[str, list[str]], *names: str) -> bool:
    return _first(q, *names).lower() in ("1", "true")


def _acquire_ctty(fd: int) -> None:  # pragma: no cover - runs in the child between fork and exec
    os.setsid()
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


class KubeletServer:
    """The ASGI app (see the module docstring)."""

    def __init__(self, runtime: Runtime, token: str, poll: float = 0.2) -> None:
        self.runtime = runtime
        self._token = token.encode()
        self.poll = poll

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await serve_lifespan(receive, send)
            return
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(WebSocket(scope, receive, send))

    def _authorized(self, scope: Scope) -> bool:
        for k, v in scope.get("headers") or []:
            if k.lower() == b"authorization":
                if v[:7].lower() != b"bearer ":
                    return False
                return hmac.compare_digest(v[7:].strip(), self._token)
        return False

    @staticmethod
    def _route(path: str) -> tuple[str, list[str]] | None:
        parts = path.strip("/").split("/")
        if parts[0] in ("containerLogs", "exec", "attach") and len(parts) == 4 and all(parts[1:]):
            return parts[0], parts[1:]
        if parts[0] == "portForward" and len(parts) == 3 and all(parts[1:]):
            return parts[0], parts[1:]
        return None

    # -- plain HTTP ---------------------------------------------------------------------------------------------
    async def _respond(self, send: Send, code: int, body: bytes, content_type: bytes = b"application/json") -> None:
        await send({"type": "http.response.start", "status": code,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if path in ("/healthz", "/healthz/"):
            await self._respond(send, 200, b"ok", b"text/plain; charset=utf-8")
            return
        try:
            if not self._authorized(scope):
                raise StreamError(401, "Unauthorized")
            route = self._route(path)
            if route is None:
                raise StreamError(404, "the server could not find the requested resource")
            what, args = route
            if what != "containerLogs":
                await self._check_stream(what, scope, *args)  # a refusal the WebSocket would have had, if any
                raise StreamError(400, "Upgrade request required")
            if scope.get("method") != "GET":
                raise StreamError(405, "the server does not allow this method on the requested resource",
                                  "MethodNotAllowed")
            await self._logs(scope, receive, send, *args)
        except StreamError as e:
            await self._respond(send, e.code, orjson.dumps(e.status()))

    async def _logs(self, scope: Scope, receive: Receive, send: Send, ns: str, pod: str, container: str) -> None:
        q = _query(scope)
        try:
            opts = logs.LogOptions.from_query({k: v[-1] for k, v in q.items()})
        except ValueError as e:
            raise StreamError(400, str(e)) from None
        source = await self.runtime.log_files(ns, pod, container, _flag(q, "previous"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"cache-control", b"no-cache, private"),
                                (b"transfer-encoding", b"chunked")]})

        async def stream() -> None:
            async for chunk in logs.read_logs(source.path, opts, ended=lambda: not source.running(), poll=self.poll):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        streamer = asyncio.create_task(stream())
        watcher = asyncio.create_task(disconnected())
        try:
            await asyncio.wait({streamer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (streamer, watcher):
                t.cancel()
            await asyncio.gather(streamer, watcher, return_exceptions=True)
        if streamer.done() and not streamer.cancelled() and streamer.exception() is None:
            with contextlib.suppress(OSError, RuntimeError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _check_stream(self, what: str, scope: Scope, ns: str, pod: str, container: str = "") -> None:
        """For a request without upgrade: the same checks as the WebSocket's, without starting anything."""
        q = _query(scope)
        if what == "exec":
            if not q.get("command"):
                raise StreamError(400, "you must specify at least one command for the container")
            self._stream_options(q)
            await self.runtime.exec_command(ns, pod, container, q["command"])
        elif what == "attach":
            self._stream_options(q)
            await self.runtime.log_files(ns, pod, container, False)

    # -- WebSocket ----------------------------------------------------------------------------------------------
    async def _websocket(self, ws: WebSocket) -> None:
        if not await ws.wait_connect():
            return
        try:
            if not self._authorized(ws.scope):
                raise StreamError(401, "Unauthorized")
            route = self._route(ws.scope.get("path", ""))
            if route is None or route[0] == "containerLogs":
                raise StreamError(404, "the server could not find the requested resource")
            what, args = route
            if what == "exec":
                await self._exec(ws, *args)
            elif what == "attach":
                await self._attach(ws, *args)
            else:
                await self._port_forward(ws, *args)
        except StreamError as e:
            if not ws.closed:
                await ws.reject(e.code, orjson.dumps(e.status()))

    @staticmethod
    def _stream_options(q: dict[str, list[str]]) -> tuple[bool, bool, bool, bool]:
        stdin = _flag(q, "input", "stdin")
        stdout = _flag(q, "output", "stdout")
        stderr = _flag(q, "error", "stderr")
        tty = _flag(q, "tty")
        if not (stdin or stdout or stderr):
            raise StreamError(400, "you must specify at least 1 of stdin, stdout, stderr")
        if tty:
            stderr = False  # a terminal has one output stream
        return stdin, stdout, stderr, tty

    async def _exec(self, ws: WebSocket, ns: str, pod: str, container: str) -> None:
        q = _query(ws.scope)
        command = q.get("command") or []
        if not command:
            raise StreamError(400, "you must specify at least one command for the container")
        stdin, stdout, stderr, tty = self._stream_options(q)
        proto = pick_protocol(ws.subprotocols, CHANNEL_PROTOCOLS)
        if proto is None:
            raise StreamError(400, f"unable to upgrade: none of the offered subprotocols is supported "
                                   f"(want one of {', '.join(CHANNEL_PROTOCOLS)})")
        spec = await self.runtime.exec_command(ns, pod, container, command)
        await ws.accept(proto)
        session = _ExecSession(ws, spec, command, stdin, stdout, stderr, tty, proto == V5)
        await session.run()

    async def _attach(self, ws: WebSocket, ns: str, pod: str, container: str) -> None:
        q = _query(ws.scope)
        stdin, stdout, stderr, _tty = self._stream_options(q)
        proto = pick_protocol(ws.subprotocols, CHANNEL_PROTOCOLS)
        if proto is None:
            raise StreamError(400, "unable to upgrade: none of the offered subprotocols is supported")
        if not isinstance(self.runtime, SupportsAttach):
            raise StreamError(400, "attach is not supported on this node")
        target = await self.runtime.attach(ns, pod, container)
        if stdin and target.stdin is None:
            raise StreamError(400, f'container "{container}" in pod "{pod}" does not accept stdin: '
                                   f"its spec has stdin: false")
        await ws.accept(proto)
        source = target.logs

        async def output() -> None:
            async for batch in logs.follow_records(source.path, follow=True, from_end=True,
                                                   ended=lambda: not source.running(), poll=self.poll):
                for rec in batch:
                    data = rec.content if rec.partial else rec.content + b"\n"
                    if rec.stream == b"stderr" and not target.tty:
                        if stderr and not await ws.send(bytes([STDERR]) + data):
                            return
                    elif stdout and not await ws.send(bytes([STDOUT]) + data):
                        return

        async def input_() -> None:
            writer = target.stdin
            while True:
                msg = await ws.receive()
                if msg is None:
                    return
                if not isinstance(msg, bytes) or not msg:
                    continue
                if msg[0] == STDIN and writer is not None:
                    with contextlib.suppress(OSError):
                        writer.write(msg[1:])
                        await writer.drain()
                elif msg[0] == CLOSE_SIGNAL and msg[1:2] == bytes([STDIN]) and writer is not None:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    writer = None

        out = asyncio.create_task(output())
        inp = asyncio.create_task(input_())
        try:
            await asyncio.wait({out, inp}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            inp.cancel()
            out.cancel()
            await asyncio.gather(out, inp, return_exceptions=True)
        if out.done() and not out.cancelled() and out.exception() is None and not ws.closed:
            await ws.send(bytes([ERROR]) + status_success())
        await ws.close()

    async def _port_forward(self, ws: WebSocket, ns: str, pod: str) -> None:
        q = _query(ws.scope)
        ports: list[int] = []
        for raw in [*q.get("port", []), *q.get("ports", [])]:
            for p in raw.split(","):
                if not p.strip().isdigit() or not 0 < int(p) < 65536:
                    raise StreamError(400, f"invalid port {p!r}: must be a number between 1 and 65535")
                ports.append(int(p))
        if not ports:
            raise StreamError(400, "query parameter \"port\" is required")
        proto = pick_protocol(ws.subprotocols, CHANNEL_PROTOCOLS)
        if proto is None:
            raise StreamError(400, "unable to upgrade: none of the offered subprotocols is supported")
        await ws.accept(proto)
        await _PortForwardSession(ws, self.runtime, ns, pod, ports, proto == V5).run()


# -- exec -------------------------------------------------------------------------------------------------------


class _ExecSession:
    """One command: its process, the pumps between it and the WebSocket, and the final status."""

    def __init__(self, ws: WebSocket, spec: ExecSpec, command: list[str], stdin: bool, stdout: bool, stderr: bool,
                 tty: bool, close_signal: bool) -> None:
        self.ws = ws
        self.spec = spec
        self.command = command
        self.stdin, self.stdout, self.stderr, self.tty = stdin, stdout, stderr, tty
        self.close_signal = close_signal
        self.master = -1
        self.proc: asyncio.subprocess.Process | None = None

    async def _spawn(self) -> None:
        spec = self.spec
        if self.tty:
            master, slave = pty.openpty()
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *spec.argv, stdin=slave, stdout=slave, stderr=slave, env=spec.env, cwd=spec.cwd,
                    preexec_fn=functools.partial(_acquire_ctty, slave))
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            self.master = master
        else:
            pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
            self.proc = await asyncio.create_subprocess_exec(
                *spec.argv, stdin=pipe if self.stdin else null, stdout=pipe if self.stdout else null,
                stderr=pipe if self.stderr else null, env=spec.env, cwd=spec.cwd, start_new_session=True)

    async def run(self) -> None:
        ws = self.ws
        try:
            await self._spawn()
        except OSError as e:
            # As runc does for a command that cannot be started: a message and exit code 126 / 127.
            code = 127 if e.errno == errno.ENOENT else 126
            what = "executable file not found in $PATH" if code == 127 else (e.strerror or str(e))
            channel = STDOUT if self.tty else STDERR
            if self.stdout or self.stderr:
                await ws.send(bytes([channel]) + f'exec: "{self.spec.argv[0]}": {what}\n'.encode())
            await ws.send(bytes([ERROR]) + status_exit_code(code, self.command))
            await ws.close()
            return
        proc = self.proc
        assert proc is not None
        outputs: list[asyncio.Task[None]] = []
        if self.tty:
            outputs.append(asyncio.create_task(self._pump_pty()))
        else:
            if proc.stdout is not None:
                outputs.append(asyncio.create_task(self._pump(proc.stdout, STDOUT)))
            if proc.stderr is not None:
                outputs.append(asyncio.create_task(self._pump(proc.stderr, STDERR)))
        inputs = asyncio.create_task(self._input())
        waiter = asyncio.create_task(proc.wait())
        try:
            await asyncio.wait({inputs, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                # The client went away: hang up, as closing a terminal would.
                await self._hang_up(waiter)
                return
            if outputs:
                await asyncio.wait(outputs, timeout=_OUTPUT_GRACE)
            rc = exit_code(waiter.result())
            await ws.send(bytes([ERROR]) + (status_success() if rc == 0 else status_exit_code(rc, self.command)))
            await ws.close()
        finally:
            for t in (*outputs, inputs, waiter):
                t.cancel()
            await asyncio.gather(*outputs, inputs, waiter, return_exceptions=True)
            if self.master >= 0:
                os.close(self.master)
                self.master = -1
            if proc.stdin is not None:
                proc.stdin.close()

    async def _hang_up(self, waiter: asyncio.Task[int]) -> None:
        proc = self.proc
        assert proc is not None
        for sig, grace in ((signal.SIGHUP, _HANGUP_GRACE), (signal.SIGKILL, _HANGUP_GRACE)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            done, _ = await asyncio.wait({waiter}, timeout=grace)
            if done:
                return

    async def _pump(self, reader: asyncio.StreamReader, channel: int) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data or not await self.ws.send(bytes([channel]) + data):
                return

    async def _pump_pty(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = os.read(self.master, _CHUNK)
            except BlockingIOError:
                await _wait_fd(loop, self.master, readable=True)
                continue
            except OSError:  # EIO: every holder of the terminal's other end is gone
                return
            if not data or not await self.ws.send(bytes([STDOUT]) + data):
                return

    async def _write_pty(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view and self.master >= 0:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                await _wait_fd(loop, self.master, readable=False)
                continue
            except OSError:
                return
            view = view[n:]

    def _resize(self, payload: bytes) -> None:
        if self.master < 0:
            return
        for line in payload.splitlines():
            try:
                size = json.loads(line)
                width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
            except (ValueError, TypeError, AttributeError):
                continue
            if 0 < width < 65536 and 0 < height < 65536:
                with contextlib.suppress(OSError):
                    fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    async def _input(self) -> None:
        """Client messages: stdin data, resizes, close signals; returns when the client is gone."""
        proc = self.proc
        assert proc is not None
        stdin_open = self.stdin
        while True:
            msg = await self.ws.receive()
            if msg is None:
                return
            if not isinstance(msg, bytes) or not msg:
                continue
            channel, data = msg[0], msg[1:]
            if channel == STDIN and stdin_open:
                if self.tty:
                    await self._write_pty(data)
                elif proc.stdin is not None:
                    try:
                        proc.stdin.write(data)
                        await proc.stdin.drain()
                    except (BrokenPipeError, ConnectionResetError):
                        stdin_open = False
            elif channel == RESIZE and self.tty:
                self._resize(data)
            elif channel == CLOSE_SIGNAL and self.close_signal and data[:1] == bytes([STDIN]) and stdin_open:
                stdin_open = False
                if self.tty:
                    await self._write_pty(b"\x04")  # end of input on a terminal: ^D
                elif proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.close()


async def _wait_fd(loop: asyncio.AbstractEventLoop, fd: int, readable: bool) -> None:
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    if readable:
        loop.add_reader(fd, ready)
    else:
        loop.add_writer(fd, ready)
    try:
        await fut
    finally:
        if readable:
            loop.remove_reader(fd)
        else:
            loop.remove_writer(fd)


# -- port-forward -----------------------------------------------------------------------------------------------


class _PortForwardSession:
    """One WebSocket forwarding one TCP connection per requested port."""

    def __init__(self, ws: WebSocket, runtime: Runtime, ns: str, pod: str, ports: list[int],
                 close_signal: bool) -> None:
        self.ws = ws
        self.runtime = runtime
        self.ns, self.pod = ns, pod
        self.ports = ports
        self.close_signal = close_signal
        self.writers: dict[int, asyncio.StreamWriter] = {}

    async def run(self) -> None:
        ws = self.ws
        for i, port in enumerate(self.ports):
            prefix = struct.pack("<H", port)
            await ws.send(bytes([2 * i]) + prefix)
            await ws.send(bytes([2 * i + 1]) + prefix)
        pumps: list[asyncio.Task[None]] = []
        for i, port in enumerate(self.ports):
            try:
                reader, writer = await self.runtime.port_forward_connect(self.ns, self.pod, port)
            except (StreamError, OSError) as e:
                msg = e.message if isinstance(e, StreamError) else (e.strerror or str(e))
                await ws.send(bytes([2 * i + 1]) +
                              f"error forwarding port {port} to pod {self.ns}/{self.pod}: {msg}".encode())
                continue
            self.writers[i] = writer
            pumps.append(asyncio.create_task(self._pump(i, reader)))
        inputs = asyncio.create_task(self._input())
        try:
            pending = set(pumps)
            while pending and not inputs.done():
                done, _ = await asyncio.wait({inputs, *pending}, return_when=asyncio.FIRST_COMPLETED)
                pending -= done
            await ws.close()
        finally:
            inputs.cancel()
            for t in pumps:
                t.cancel()
            await asyncio.gather(inputs, *pumps, return_exceptions=True)
            for w in self.writers.values():
                w.close()

    async def _pump(self, i: int, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                data = await reader.read(_CHUNK)
            except OSError:
                data = b""
            if not data:
                if self.close_signal:
                    await self.ws.send(bytes([CLOSE_SIGNAL, 2 * i]))
                return
            if not await self.ws.send(bytes([2 * i]) + data):
                return

    async def _input(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg is None:
                return
            if not isinstance(msg, bytes) or not msg:
                continue
            channel, data = msg[0], msg[1:]
            if channel == CLOSE_SIGNAL and data:
                w = self.writers.get(data[0] // 2) if data[0] % 2 == 0 else None
                if w is not None and w.can_write_eof():
                    with contextlib.suppress(OSError):
                        w.write_eof()
                continue
            w = self.writers.get(channel // 2) if channel % 2 == 0 else None
            if w is not None and data:
                try:
                    w.write(data)
                    await w.drain()
                except OSError:
                    continue


# -- serving ----------------------------------------------------------------------------------------------------


def uvicorn_config(app: KubeletServer, certfile: str | None = None, keyfile: str | None = None) -> uvicorn.Config:
    """How the agent should serve the app: WebSockets through the ``websockets`` sans-I/O protocol (the one that
    honours back-pressure and lets an upgrade be refused with a ``Status``; see
    :func:`tinykube.apiserver.streams.websocket_protocol`), no per-message compression (the
    channel protocols carry terminal bytes and tar streams), TLS when a certificate is given."""
    import uvicorn

    from ..apiserver.streams import websocket_protocol

    return uvicorn.Config(app, ssl_certfile=certfile, ssl_keyfile=keyfile, lifespan="off", log_level="warning",
                          access_log=False, ws=websocket_protocol(), ws_per_message_deflate=False, loop="none",
                          timeout_graceful_shutdown=1)


@dataclass
class Serving:
    """A running server: ``port`` is the one bound (report it in the Node's daemon endpoint)."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self.task, 5)


async def start_server(app: KubeletServer, host: str, port: int = 0, certfile: str | None = None,
                       keyfile: str | None = None) -> Serving:
    """Serve ``app`` on ``host:port`` (0: any free port) and return once it listens."""
    import uvicorn

    sock = listen_socket(host, port, 512)
    server = uvicorn.Server(uvicorn_config(app, certfile, keyfile))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.005)
    if task.done():
        task.result()
    return Serving(server, task, sock.getsockname()[1])
