"""Container probes: liveness, readiness and startup checks, as the kubelet runs them.

Two layers, each usable alone.

**One attempt** -- :func:`probe_once` runs one probe of a pod spec (``httpGet``, ``tcpSocket``, ``exec``,
``grpc``) and answers an :class:`Outcome`: ``success``, ``failure`` or ``unknown``, with the text the kubelet
would show. ``unknown`` is what upstream calls a probe *error* (the check could not be carried out: a named
port the container does not declare, a broken command runner, an HTTP body that could not be read): the
worker throws such a result away instead of counting it. A success may carry ``warning=True`` (an HTTP
redirect to another host, which is not followed): it counts as a success and is reported as a
``ProbeWarning`` event.

* ``httpGet`` is a hand-written HTTP/1.1 client on asyncio streams: one connection per attempt
  (``Connection: close``, as the kubelet disables keep-alive), no TLS verification, the whole exchange
  under one deadline of ``timeoutSeconds``. The request carries ``User-Agent: kube-probe/1.32`` and
  ``Accept: */*`` unless the probe's ``httpHeaders`` set them (set to an empty value they are left out), and
  a ``Host`` header from ``httpHeaders`` replaces the request's host. 200 <= status < 400 is a success.
  Redirects (301/302/303/307/308) are followed while they stay on the same host name, at most 9 of them
  (the 10th is an error, ``stopped after 10 redirects``); one to another host ends the probe with that
  3xx answer, a success with a warning. At most 10 KiB of body is read; it becomes the success message.
* ``tcpSocket`` succeeds when a connection opens within the timeout (it is closed at once).
* ``exec`` hands ``argv`` and the timeout to the agent's ``exec_fn`` (which runs it in the container and
  answers ``(exit_code, combined_output)``); exit code 0 is a success, the output (first 10 KiB) is the
  message. At the deadline the call is cancelled (``exec_fn`` must kill the command then) and the attempt
  fails with the CRI client's text, ``command timed out: "sh -c sleep 5" timed out after 1s``.
* ``grpc`` is not implemented (it needs an HTTP/2 client for ``grpc.health.v1.Health/Check``, which
  tinykube does not ship): it is always ``unknown`` with a message that says so. As a probe *error* it is
  never counted: a gRPC readiness probe keeps its container unready, a gRPC liveness probe never kills it.

Failure texts follow what a kubelet built with Go's ``net`` and ``net/http`` prints, so ``kubectl describe``
reads the same: ``HTTP probe failed with statuscode: 500``, ``Get "http://10.0.0.5:80/_health": dial tcp
10.0.0.5:80: connect: connection refused``, ``Get "...": context deadline exceeded (Client.Timeout exceeded
while awaiting headers)``, ``dial tcp 10.0.0.5:81: i/o timeout``. Where Python cannot see what Go would
print (the DNS server of a failed lookup, TLS alert details) the text is close, not identical.

Cost: an HTTP attempt is one socket, one write, one read of the head and at most 10 KiB of body, parsed
with bytes operations; there is no client object, pool or thread. The TLS context is built once.

**On a schedule** -- :class:`ProbeWorker` runs one probe of one container (``liveness``, ``readiness`` or
``startup``) and keeps its *result*, the value after thresholds: ``successThreshold`` (forced to 1 for
liveness and startup, as validation demands) consecutive successes make it true, ``failureThreshold``
consecutive failures make it false. Each change of the result is reported once through
``on_result(kind, ok)``; each failed attempt through ``on_event("Warning", "Unhealthy", "Liveness probe
failed: <message>")`` (upstream records one per attempt, below the threshold too; the agent's event
recorder aggregates repeats), errors as ``"Liveness probe errored and resulted in unknown state: ..."``
and warnings as ``("Warning", "ProbeWarning", "Liveness probe warning: ...")``. An errored attempt is tried
again at once, up to 3 attempts, as the kubelet does, and then dropped.

The starting values are upstream's: readiness false until a probe succeeds, liveness true, startup
*unknown* (:attr:`ProbeWorker.result` reads false; the first threshold crossing either way is a change and
is reported, so a startup probe that never succeeds reaches the agent as ``on_result("startup", False)``).
Timing: the first probe runs ``initialDelaySeconds`` after the container's start (``started_at``, read
against the injected ``clock``, ``time.time`` by default, the clock of ``status...startedAt``), then one
every ``periodSeconds`` counted from the start of the previous attempt; every attempt has
``timeoutSeconds``. With ``jitter=True`` (for containers an agent finds already running when it starts,
as upstream does only after a kubelet restart) the very first attempt waits a random part of one period,
so that a restarted agent does not probe everything at once.

After a liveness (or startup) result turns false the worker is *held*: it stops probing until
:meth:`ProbeWorker.reset` tells it about the restarted container (``reset(started_at)`` also puts the
result back to its starting value, reporting it if that is a change, e.g. readiness true -> false, and
starts the counts afresh). A startup probe stops once its result is true and starts again on ``reset``.
:meth:`ProbeWorker.hold` is for a container that stopped running: probing pauses until ``reset`` and the
readiness result becomes false.

**Per container** -- :class:`ContainerProbes` owns the workers of one container and wires the gating:
while a startup probe has not succeeded the liveness and readiness workers do not probe; when it
succeeds they are opened and probe at once (upstream's readiness probe is triggered by the status update
that follows; liveness probes on its next tick, a period at most later). ``started`` and ``ready`` give
the values for ``containerStatuses[].started``/``.ready`` (the agent also requires the container to be
running). ``terminating()`` stops liveness and startup probing for a pod being deleted, as upstream does
so that a graceful shutdown is not cut short; readiness keeps probing until ``stop()``.

Semantics chosen where upstream's cannot apply directly, because it reads container state from the
runtime on every tick and tinykube's agent pushes it instead: the initial delay is counted in float
seconds from ``started_at`` (upstream truncates the elapsed time to whole seconds and probes on the next
ticker tick after the delay, up to a period late); ``reset`` is the "new container ID" signal; results are
callbacks, not a shared results cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urljoin, urlsplit

from ..api import gofmt

log = logging.getLogger("tinykube.agent.probes")

ProbeKind = Literal["liveness", "readiness", "startup"]
ResultKind = Literal["success", "failure", "unknown"]
ExecFn = Callable[[list[str], float], Awaitable[tuple[int, str]]]
"""``exec_fn(argv, timeout) -> (exit_code, combined stdout+stderr)``: runs ``argv`` in the container."""
ProbeFn = Callable[[float], Awaitable["Outcome"]]
"""``probe(timeout) -> Outcome``: one attempt of a probe bound to its pod and container."""
ResultFn = Callable[[ProbeKind, bool], None]
EventFn = Callable[[str, str, str], None]

KINDS: tuple[ProbeKind, ...] = ("liveness", "readiness", "startup")
USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024  # body bytes read / exec output kept, as upstream
MAX_REDIRECTS = 10
_HEAD_LIMIT = 1 << 20  # response head bytes, as Go's default
MAX_ATTEMPTS = 3  # attempts per scheduled probe while they error ("unknown"), as the kubelet retries
_REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
_INITIAL: dict[ProbeKind, bool | None] = {"liveness": True, "readiness": False, "startup": None}
_TITLE: dict[ProbeKind, str] = {"liveness": "Liveness", "readiness": "Readiness", "startup": "Startup"}
_TIMING_DEFAULTS = (("initialDelaySeconds", 0), ("timeoutSeconds", 1), ("periodSeconds", 10),
                    ("successThreshold", 1), ("failureThreshold", 3))


@dataclass(frozen=True, slots=True)
class Outcome:
    """One probe attempt: ``result`` and the text upstream shows after ``"Liveness probe failed: "`` etc.
    ``warning`` marks a success the kubelet reports with a ``ProbeWarning`` event (non-local redirect)."""

    result: ResultKind
    message: str = ""
    warning: bool = False

    @property
    def ok(self) -> bool:
        return self.result == "success"


def probe_defaults(probe: Mapping[str, Any], kind: ProbeKind | None = None) -> dict[str, Any]:
    """A copy of ``probe`` with the API's defaults filled in (timing fields missing, null or not positive;
    ``httpGet.path`` "/" and ``scheme`` "HTTP"). With ``kind`` liveness or startup, ``successThreshold`` is 1.
    The input is not changed (it may be a frozen shared object)."""
    out = dict(probe)
    for key, default in _TIMING_DEFAULTS:
        value = out.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 \
                or (value == 0 and key != "initialDelaySeconds"):
            out[key] = default
    if kind in ("liveness", "startup"):
        out["successThreshold"] = 1
    http = out.get("httpGet")
    if isinstance(http, Mapping):
        http = dict(http)
        if not http.get("path"):
            http["path"] = "/"
        if not http.get("scheme"):
            http["scheme"] = "HTTP"
        out["httpGet"] = http
    return out


def kill_message(kind: ProbeKind, container_name: str) -> str:
    """The message of the agent's ``Killing`` event after a liveness or startup result turned false."""
    return f"Container {container_name} failed {kind} probe, will be restarted"


# ---------------------------------------------------------------------------------------------------------
# One attempt


async def probe_once(probe: Mapping[str, Any], *, pod_ip: str, container: Mapping[str, Any],
                     exec_fn: ExecFn | None, timeout: float) -> Outcome:
    """Run one attempt of ``probe`` (a pod-spec probe) against a container of the pod at ``pod_ip``."""
    http = probe.get("httpGet")
    if http is not None:
        return await _http_probe(http, pod_ip, container, timeout)
    tcp = probe.get("tcpSocket")
    if tcp is not None:
        try:
            port = resolve_port(tcp.get("port"), container)
        except ValueError as ex:
            return Outcome("unknown", str(ex))
        host = tcp.get("host") or pod_ip
        if not host:
            return Outcome("unknown", "the pod has no IP address yet")
        return await tcp_probe(host, port, timeout)
    ex_action = probe.get("exec")
    if ex_action is not None:
        return await exec_probe(list(ex_action.get("command") or []), exec_fn, timeout)
    grpc = probe.get("grpc")
    if grpc is not None:
        return Outcome("unknown", "gRPC probes are not supported by tinykube's node agent "
                                  "(it has no client for grpc.health.v1.Health/Check)")
    return Outcome("unknown", f"missing probe handler for container {container.get('name', '')}")


def bind_probe(probe: Mapping[str, Any], *, pod_ip: str, container: Mapping[str, Any],
               exec_fn: ExecFn | None) -> ProbeFn:
    """A :data:`ProbeFn` running :func:`probe_once` of ``probe`` for this pod and container."""
    spec = dict(probe)

    async def run(timeout: float) -> Outcome:
        return await probe_once(spec, pod_ip=pod_ip, container=container, exec_fn=exec_fn, timeout=timeout)

    return run


_GO_INT = re.compile(r"[+-]?[0-9]+")


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    """A probe's ``port``: a number, or the name of one of the container's ``ports`` (a string of digits
    counts as a number when no port has that name). ``ValueError`` carries upstream's message."""
    if isinstance(port, bool) or port is None:
        raise ValueError(f"intOrString had no kind: {port!r}")
    if isinstance(port, int):
        number = port
    else:
        name = str(port)
        for p in container.get("ports") or ():
            if p.get("name") == name:
                number = int(p.get("containerPort") or 0)
                break
        else:
            if not _GO_INT.fullmatch(name):
                raise ValueError(f"strconv.Atoi: parsing {gofmt.quote(name)}: invalid syntax")
            number = int(name)
    if 0 < number < 65536:
        return number
    raise ValueError(f"invalid port number: {number}")


async def tcp_probe(host: str, port: int, timeout: float) -> Outcome:
    """Open a TCP connection to ``host:port`` within ``timeout`` and close it."""
    address = _join_host_port(host, port)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
    except TimeoutError as ex:
        if ex.errno is None:  # our deadline, not the kernel's ETIMEDOUT
            return Outcome("failure", f"dial tcp {address}: i/o timeout")
        return Outcome("failure", f"dial tcp {address}: connect: {_os_error_text(ex)}")
    except socket.gaierror:
        return Outcome("failure", f"dial tcp: lookup {host}: no such host")
    except OSError as ex:
        return Outcome("failure", f"dial tcp {address}: connect: {_os_error_text(ex)}")
    transport.close()
    return Outcome("success", "")


async def exec_probe(argv: list[str], exec_fn: ExecFn | None, timeout: float) -> Outcome:
    """Run ``argv`` through ``exec_fn`` with a deadline of ``timeout``: exit code 0 is a success."""
    if exec_fn is None:
        return Outcome("unknown", "exec probes need a command runner, and none was given")
    try:
        async with asyncio.timeout(timeout):
            code, output = await exec_fn(argv, timeout)
    except TimeoutError:
        command = gofmt.quote(" ".join(argv))
        return Outcome("failure", f"command timed out: {command} timed out after {gofmt.duration(timeout)}")
    except Exception as ex:  # the runner could not run it: an error, not a failure
        return Outcome("unknown", str(ex) or type(ex).__name__)
    if isinstance(output, bytes | bytearray):
        output = bytes(output[:MAX_OUTPUT]).decode("utf-8", "replace")
    else:
        output = str(output)[:MAX_OUTPUT]
    return Outcome("success" if code == 0 else "failure", output)


# --- HTTP ---------------------------------------------------------------------------------------------------

_TLS: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """One client context for every HTTPS probe: no certificate or host name checks (as upstream)."""
    global _TLS
    if _TLS is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _TLS = ctx
    return _TLS


class _ProbeError(Exception):
    """An HTTP exchange went wrong; the text is what follows ``Get "<url>": `` in Go's error."""


class _BodyError(Exception):
    """The body could not be read: an error (unknown), not a failure, as upstream."""


def _format_url(scheme: str, host: str, port: int, path: str) -> str:
    path = path or ""
    if path and not path.startswith("/"):
        path = "/" + path
    path, sep, query = path.partition("?")
    path = quote(path, safe="/%:@!$&'()*+,;=-._~")
    return f"{scheme}://{_join_host_port(host, port)}{path}{sep}{query}"


async def _http_probe(action: Mapping[str, Any], pod_ip: str, container: Mapping[str, Any],
                      timeout: float) -> Outcome:
    try:
        port = resolve_port(action.get("port"), container)
    except ValueError as ex:
        return Outcome("unknown", str(ex))
    host = action.get("host") or pod_ip
    if not host:
        return Outcome("unknown", "the pod has no IP address yet")
    scheme = str(action.get("scheme") or "HTTP").lower()
    url = _format_url(scheme, host, port, str(action.get("path") or ""))
    headers: list[tuple[str, str]] = []
    host_header: str | None = None
    seen: set[str] = set()
    for h in action.get("httpHeaders") or ():
        name, value = str(h.get("name") or ""), str(h.get("value") or "")
        lname = name.lower()
        seen.add(lname)
        if lname == "host":
            host_header = host_header or value or None
        elif value or lname not in ("user-agent", "accept"):
            headers.append((name, value))
    if "user-agent" not in seen:
        headers.append(("User-Agent", USER_AGENT))
    if "accept" not in seen:
        headers.append(("Accept", "*/*"))
    return await http_get(url, headers, timeout, host_header=host_header)


async def http_get(url: str, headers: list[tuple[str, str]], timeout: float, *,
                   host_header: str | None = None) -> Outcome:
    """GET ``url`` as the kubelet's HTTP prober does (see the module docstring); ``headers`` are sent as
    given (no defaults added here)."""
    first_host = (urlsplit(url).hostname or "").lower()
    current = url
    redirects = 0
    reading_body = False
    try:
        async with asyncio.timeout(timeout):
            while True:
                reader, writer = await _request(current, headers, host_header)
                try:
                    status, resp_headers = await _read_head(reader, writer)
                    location = resp_headers.get("location")
                    if status in _REDIRECT_CODES and location is not None:
                        target = urljoin(current, location)
                        parts = urlsplit(target)
                        if (parts.hostname or "").lower() == first_host:
                            redirects += 1
                            if redirects >= MAX_REDIRECTS:
                                raise _ProbeError(f"stopped after {MAX_REDIRECTS} redirects", target)
                            if parts.scheme not in ("http", "https"):
                                raise _ProbeError(f"unsupported protocol scheme {gofmt.quote(parts.scheme)}", target)
                            if urlsplit(location).netloc:
                                host_header = None  # an absolute target names its own host
                            current = target
                            continue
                    reading_body = True
                    body = await _read_body(reader, status, resp_headers)
                finally:
                    writer.close()
                break
    except TimeoutError:
        if reading_body:
            return Outcome("unknown", "context deadline exceeded (Client.Timeout or context cancellation "
                                      "while reading body)")
        return Outcome("failure", f"Get {gofmt.quote(current)}: context deadline exceeded "
                                  "(Client.Timeout exceeded while awaiting headers)")
    except _ProbeError as ex:
        at = ex.args[1] if len(ex.args) > 1 else current
        return Outcome("failure", f"Get {gofmt.quote(at)}: {ex.args[0]}")
    except _BodyError as ex:
        return Outcome("unknown", str(ex))
    text = body.decode("utf-8", "replace")
    if 200 <= status < 400:
        if status >= 300:
            return Outcome("success", f"Probe terminated redirects, Response body: {text}", warning=True)
        return Outcome("success", text)
    return Outcome("failure", f"HTTP probe failed with statuscode: {status}")


async def _request(url: str, headers: list[tuple[str, str]], host_header: str | None,
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as ex:
        raise _ProbeError(f"invalid URL: {ex}") from None
    address = _join_host_port(host, port)
    for name, value in headers:
        if "\r" in value or "\n" in value:
            raise _ProbeError(f"net/http: invalid header field value for {gofmt.quote(name)}")
    try:
        reader, writer = await asyncio.open_connection(
            host, port, limit=_HEAD_LIMIT, ssl=_tls_context() if tls else None,
            server_hostname=(host if not _is_ip(host) else "") if tls else None)
    except socket.gaierror:
        raise _ProbeError(f"dial tcp: lookup {host}: no such host") from None
    except ssl.SSLError as ex:
        raise _ProbeError(_tls_error_text(ex)) from None
    except OSError as ex:  # the deadline arrives as a cancellation, never here
        raise _ProbeError(f"dial tcp {address}: connect: {_os_error_text(ex)}") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"GET {target} HTTP/1.1", f"Host: {host_header or parts.netloc}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace"))
    return reader, writer


async def _read_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, dict[str, str]]:
    """Status and headers (lower-cased names, first value) of the final non-1xx response head."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as ex:
            raise _ProbeError("unexpected EOF" if ex.partial else "EOF") from None
        except asyncio.LimitOverrunError:
            raise _ProbeError(f"net/http: server response headers exceeded {_HEAD_LIMIT} bytes; aborted") from None
        except ssl.SSLError as ex:
            raise _ProbeError(_tls_error_text(ex)) from None
        except OSError as ex:
            raise _ProbeError(_read_error_text(ex, writer)) from None
        lines = head[:-4].split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        proto, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not proto.startswith("HTTP/") or len(code) != 3 or not code.isdigit() or rest[3:4] not in ("", " "):
            raise _ProbeError("net/http: HTTP/1.x transport connection broken: "
                              f"malformed HTTP response {gofmt.quote(status_line)}")
        status = int(code)
        if 100 <= status < 200 and status != 101:
            continue  # informational: the real answer follows
        headers: dict[str, str] = {}
        for raw in lines[1:]:
            name, sep, value = raw.decode("latin-1").partition(":")
            if sep:
                headers.setdefault(name.strip().lower(), value.strip())
        return status, headers


async def _read_body(reader: asyncio.StreamReader, status: int, headers: dict[str, str]) -> bytes:
    """At most :data:`MAX_OUTPUT` bytes of the body (a longer one is cut, not an error)."""
    if status in (204, 304) or 100 <= status < 200:
        return b""
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = bytearray()
            while len(out) < MAX_OUTPUT:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    break
                out += await reader.readexactly(min(size, MAX_OUTPUT - len(out)))
                if len(out) < MAX_OUTPUT:
                    await reader.readexactly(2)
            return bytes(out[:MAX_OUTPUT])
        length = headers.get("content-length")
        if length is not None:
            return await reader.readexactly(min(int(length), MAX_OUTPUT))
        out = bytearray()
        while len(out) < MAX_OUTPUT:
            chunk = await reader.read(MAX_OUTPUT - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)
    except asyncio.IncompleteReadError:
        raise _BodyError("unexpected EOF") from None
    except (ValueError, asyncio.LimitOverrunError):
        raise _BodyError("net/http: malformed response body") from None
    except OSError as ex:
        raise _BodyError(_os_error_text(ex)) from None


# --- Go-style texts ------------------------------------------------------------------------------------------


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _os_error_text(ex: OSError) -> str:
    """``connection refused``, ``no route to host``...: the errno's text as Go prints it."""
    if ex.errno:
        text = os.strerror(ex.errno)
        return text[:1].lower() + text[1:]
    return str(ex) or type(ex).__name__


def _read_error_text(ex: OSError, writer: asyncio.StreamWriter) -> str:
    local, peer = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
    if local and peer:
        return (f"read tcp {_join_host_port(local[0], local[1])}->{_join_host_port(peer[0], peer[1])}: "
                f"read: {_os_error_text(ex)}")
    return f"read: {_os_error_text(ex)}"


def _tls_error_text(ex: ssl.SSLError) -> str:
    reason = ex.reason or ""
    if reason == "WRONG_VERSION_NUMBER":  # the server answered in plain text
        return "http: server gave HTTP response to HTTPS client"
    return "tls: " + (reason.replace("_", " ").lower() or str(ex))


# ---------------------------------------------------------------------------------------------------------
# On a schedule


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class ProbeWorker:
    """Runs one probe of one container on its schedule and reports its result (see the module docstring).

    ``probe(timeout)`` is one attempt (:func:`bind_probe` makes one from a spec). ``gated`` workers wait
    for :meth:`set_started` (liveness and readiness of a container with a startup probe). Callbacks are
    called synchronously from the worker's task; they must not block.
    """

    def __init__(self, kind: ProbeKind, spec: Mapping[str, Any], probe: ProbeFn, *, started_at: float,
                 on_result: ResultFn, on_event: EventFn, gated: bool = False, jitter: bool = False,
                 clock: Callable[[], float] = time.time, rand: Callable[[], float] = random.random) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown probe kind {kind!r}")
        self.kind: ProbeKind = kind
        self.spec = probe_defaults(spec, kind)
        self._probe = probe
        self._on_result = on_result
        self._on_event = on_event
        self._clock = clock
        self._rand = rand
        self._jitter = jitter
        self.initial_delay = float(self.spec["initialDelaySeconds"])
        self.period = float(self.spec["periodSeconds"])
        self.timeout = float(self.spec["timeoutSeconds"])
        self.success_threshold = int(self.spec["successThreshold"])
        self.failure_threshold = int(self.spec["failureThreshold"])
        self._gated = gated
        self._gate_open = not gated
        self._started_at = started_at
        self._result: bool | None = _INITIAL[kind]
        self._last: bool | None = None  # last counted attempt
        self._run = 0  # consecutive attempts with that value
        self._held = False
        self._generation = 0  # bumped by reset/hold: an attempt in flight then belongs to an old container
        self._kick = False
        self._next_at = 0.0  # loop time of the next periodic attempt
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.attempts = 0  # attempts made (errored retries included), for tests and diagnostics

    # --- state -----------------------------------------------------------------------------------------

    @property
    def result(self) -> bool:
        """The current result; false while a startup probe's is still unknown."""
        return bool(self._result)

    @property
    def held(self) -> bool:
        return self._held

    def _set_result(self, value: bool | None) -> None:
        if value == self._result:
            return
        self._result = value
        if value is not None:
            self._on_result(self.kind, value)

    def reset(self, started_at: float) -> None:
        """A new container (the old one was restarted): starting result, fresh counts, initial delay counted
        from ``started_at``; gated workers wait for :meth:`set_started` again."""
        self._generation += 1
        self._started_at = started_at
        self._held = False
        self._last, self._run = None, 0
        self._gate_open = not self._gated
        self._kick = False
        self._next_at = 0.0
        self._set_result(_INITIAL[self.kind])
        self._poke()

    def hold(self) -> None:
        """The container is not running: stop probing until :meth:`reset`; readiness becomes false."""
        self._generation += 1
        self._held = True
        if self.kind == "readiness":
            self._set_result(False)
        self._poke()

    def set_started(self, started: bool = True) -> None:
        """Open (or close) the startup gate of a gated worker; opening probes at once if the delay is over."""
        if started and not self._gate_open:
            self._kick = True
        self._gate_open = started
        self._poke()

    def trigger(self) -> None:
        """Probe now if probing is allowed, then go on every period from then."""
        self._kick = True
        self._poke()

    def wait_time(self) -> float | None:
        """Seconds until an attempt may run (0: now), or None while blocked (held, gated, startup done)."""
        if self._held or not self._gate_open:
            return None
        if self.kind == "startup" and self._result is True:
            return None
        return max(0.0, self._started_at + self.initial_delay - self._clock())

    # --- one step ----------------------------------------------------------------------------------------

    async def step(self) -> bool:
        """Run one attempt now if one is allowed (ignoring the period) and apply it; whether it ran."""
        if self.wait_time() != 0:
            return False
        generation = self._generation
        for _ in range(MAX_ATTEMPTS):
            outcome = await self._attempt()
            if generation != self._generation:
                return True  # the container changed meanwhile: this answer is about the old one
            self._report(outcome)
            if outcome.result != "unknown":
                self._count(outcome.ok)
                return True
        return True  # errored every time: thrown away, as upstream

    async def _attempt(self) -> Outcome:
        self.attempts += 1
        try:
            # probe_once keeps its own deadline; this one only guards against an injected probe that hangs.
            async with asyncio.timeout(self.timeout + 1.0):
                return await self._probe(self.timeout)
        except TimeoutError:
            return Outcome("unknown", f"probe did not finish within {gofmt.duration(self.timeout + 1.0)}")
        except Exception as ex:
            log.exception("%s probe crashed", self.kind)
            return Outcome("unknown", f"{type(ex).__name__}: {ex}")

    def _report(self, outcome: Outcome) -> None:
        title = _TITLE[self.kind]
        if outcome.result == "unknown":
            self._on_event("Warning", "Unhealthy",
                           f"{title} probe errored and resulted in unknown state: {outcome.message}")
        elif outcome.result == "failure":
            self._on_event("Warning", "Unhealthy", f"{title} probe failed: {outcome.message}")
        elif outcome.warning:
            self._on_event("Warning", "ProbeWarning", f"{title} probe warning: {outcome.message}")

    def _count(self, ok: bool) -> None:
        if ok == self._last:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        if self._run < (self.success_threshold if ok else self.failure_threshold):
            return
        self._set_result(ok)
        if not ok and self.kind in ("liveness", "startup"):
            self._held = True  # until reset() brings the restarted container
            self._run = 0

    # --- the task ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start probing in a task of the running loop (no-op if already started)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"probe-{self.kind}")

    async def stop(self) -> None:
        """Stop probing (an attempt in flight is cancelled) and wait for the task to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _poke(self) -> None:
        if self._waiter is not None:
            _wake(self._waiter)

    async def _pause(self, seconds: float | None) -> None:
        """Sleep ``seconds`` (None: until poked); any state change pokes the worker awake."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(seconds, _wake, fut) if seconds is not None else None
        self._waiter = fut
        try:
            await fut
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._jitter:
            await self._pause(self._rand() * self.period)
        while True:
            wait = self.wait_time()
            if wait is None:
                await self._pause(None)
                continue
            if wait > 0:
                await self._pause(wait)
                continue
            now = loop.time()
            if now < self._next_at and not self._kick:
                await self._pause(self._next_at - now)
                continue
            self._kick = False
            self._next_at = now + self.period
            try:
                await self.step()
            except Exception:  # a callback raised: keep probing
                log.exception("%s probe worker step failed", self.kind)


class ContainerProbes:
    """The probe workers of one container, with the startup gate wired (see the module docstring).

    ``probe_fn(kind, spec)`` makes each worker's attempt function; by default :func:`bind_probe` with
    ``pod_ip`` and ``exec_fn``. ``on_result`` and ``on_event`` are shared by the workers.
    """

    def __init__(self, container: Mapping[str, Any], *, started_at: float, on_result: ResultFn, on_event: EventFn,
                 pod_ip: str = "", exec_fn: ExecFn | None = None,
                 probe_fn: Callable[[ProbeKind, Mapping[str, Any]], ProbeFn] | None = None,
                 jitter: bool = False, clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random) -> None:
        self.container = container
        self._on_result = on_result

        def bound(kind: ProbeKind, spec: Mapping[str, Any]) -> ProbeFn:
            return bind_probe(spec, pod_ip=pod_ip, container=container, exec_fn=exec_fn)

        make = probe_fn or bound
        has_startup = container.get("startupProbe") is not None
        self.workers: dict[ProbeKind, ProbeWorker] = {}
        for kind in ("startup", "liveness", "readiness"):
            spec = container.get(f"{kind}Probe")
            if spec is None:
                continue
            self.workers[kind] = ProbeWorker(
                kind, spec, make(kind, spec), started_at=started_at, on_result=self._result,
                on_event=on_event, gated=has_startup and kind != "startup", jitter=jitter, clock=clock, rand=rand)

    def _result(self, kind: ProbeKind, ok: bool) -> None:
        if kind == "startup" and ok:
            for other in ("liveness", "readiness"):
                worker = self.workers.get(other)
                if worker is not None:
                    worker.set_started(True)
        self._on_result(kind, ok)

    @property
    def started(self) -> bool:
        """``containerStatuses[].started``: no startup probe, or it succeeded (for a running container)."""
        worker = self.workers.get("startup")
        return worker is None or worker.result

    @property
    def ready(self) -> bool:
        """``containerStatuses[].ready`` as far as probes go: started, and readiness succeeded if probed."""
        worker = self.workers.get("readiness")
        return self.started and (worker is None or worker.result)

    @property
    def live(self) -> bool:
        worker = self.workers.get("liveness")
        return worker is None or worker.result

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()

    async def stop(self) -> None:
        for worker in self.workers.values():
            await worker.stop()

    def reset(self, started_at: float) -> None:
        """The container was restarted at ``started_at``."""
        for worker in self.workers.values():
            worker.reset(started_at)

    def hold(self) -> None:
        """The container stopped running: no probing until :meth:`reset`."""
        for worker in self.workers.values():
            worker.hold()

    async def terminating(self) -> None:
        """The pod is being deleted: liveness and startup stop (readiness goes on until :meth:`stop`)."""
        for kind in ("liveness", "startup"):
            worker = self.workers.get(kind)
            if worker is not None:
                await worker.stop()
