"""The pods' streaming subresources: ``log``, ``exec``, ``attach`` and ``portforward``, proxied to the node's agent.

As kube-apiserver does, the API server does not run containers: it checks the request
against the Pod (the container, defaulted when the pod has only one or names one in its
``kubectl.kubernetes.io/default-container`` annotation, which kube-apiserver leaves to
kubectl but raw API clients benefit from; a pod with no node), finds the
node's agent from the Node object (its ``InternalIP`` address, falling back to
``ExternalIP`` then ``Hostname``, and ``status.daemonEndpoints.kubeletEndpoint.Port``)
and forwards the request to the agent's kubelet API (:mod:`tinykube.agent.server`) with
the kubelet bearer token of :class:`KubeletConfig`. Nothing here assumes the agent runs
in this process: the token, the scheme and the CA that signs the agents' serving
certificates are the whole contract (the chain is verified, not the host name, since
nodes are reached by IP address). Pods on simulated nodes have no agent: their requests
get a ``BadRequest`` Status.

* ``log`` (GET) is a chunked ``text/plain`` stream relayed chunk by chunk as the agent
  writes it, so ``kubectl logs -f`` sees lines as they come; the client going away ends
  the upstream request. ``PodLogOptions`` are validated here with the API's messages
  (422 ``PodLogOptions "p" is invalid: ...``). A pod not bound to a node has no log yet:
  an empty answer, as upstream.
* ``exec``, ``attach`` and any WebSocket ``portforward`` that is not SPDY-tunnelled are
  relayed message for message: the agent's WebSocket is opened first, offering the
  client's subprotocols, and the client's upgrade is then accepted with the one the
  agent chose (kubectl 1.32 offers ``v5.channel.k8s.io`` only). An agent that refuses
  (container not running, ...) has its ``Status`` passed on as the HTTP answer to the
  upgrade. The query is rewritten as the kubelet wants it (``stdin`` → ``input``,
  ``stdout`` → ``output``, ``stderr`` → ``error``, ``ports`` → ``port``).
* ``portforward`` from kubectl 1.31+ is SPDY/3.1 tunnelled through a WebSocket
  (subprotocol ``SPDY/3.1+portforward.k8s.io``; each binary message carries the next
  bytes of the SPDY session). The SPDY session ends here (:class:`_SpdyTunnel`): for each
  forwarded connection kubectl opens an error stream and a data stream (headers
  ``streamtype``, ``port``, ``requestID``); each pair becomes one WebSocket to the agent's
  port-forward endpoint in the ``v5.channel.k8s.io`` flavour, whose close signal
  carries TCP half-close both ways. Failures are written on the error stream, as the
  kubelet does, so kubectl prints them. Only what kubectl's SPDY client (moby/spdystream)
  needs is implemented: SYN_STREAM answered by SYN_REPLY, DATA with FIN, RST_STREAM,
  PING echoed, GOAWAY; SETTINGS, HEADERS and WINDOW_UPDATE are read and ignored (that
  client does no flow control). Header blocks use zlib with the SPDY/3 dictionary, one
  compression context per direction for the whole session.
* Requests without a WebSocket upgrade to ``exec``/``attach``/``portforward`` (kubectl
  falls back to an SPDY upgrade, which ASGI cannot serve, only when its WebSocket upgrade
  was refused) get the same checks, the agent's included (it checks without starting
  anything), so kubectl prints the refusal; otherwise 400 ``Upgrade request required``.

Every error is a Kubernetes ``Status``; agent failures that are not one (connection
refused, TLS) become ``500 InternalError`` with the dialing error.

uvicorn must serve WebSockets with :func:`websocket_protocol`: the ``websockets``
handshake parser refuses ``SPDY/3.1+portforward.k8s.io`` (``/`` is not allowed in an
RFC 6455 token, but it is what kubectl sends), so this variant reads the offered
subprotocols as the comma-separated list they are and leaves the choice to the app; it
also counts an upgrade refused with an HTTP response as a finished handshake (uvicorn
would log an error for each refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import secrets
import socket
import ssl
import traceback
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import orjson

from ..api import errors
from ..api.resources import NODES, PODS
from ..fileutil import write_private
from .registry import Registry

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("tinykube.apiserver.streams")
_httpx_log = logging.getLogger("httpx")
if _httpx_log.level == logging.NOTSET:
    _httpx_log.setLevel(logging.WARNING)  # not one INFO line per proxied `kubectl logs` in the server log

SUBRESOURCES = ("log", "exec", "attach", "portforward")
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
SIMULATED_NODE_LABEL = "node.tinykube.io/simulated"
SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
PORT_FORWARD_AGENT_PROTOCOL = "v5.channel.k8s.io"
DEFAULT_KUBELET_PORT = 10250
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout"}


# -- configuration ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeletConfig:
    """How the API server reaches node agents (kube-apiserver's ``--kubelet-*`` flags, in short)."""

    token: str  # the bearer token every agent accepts
    scheme: str = "https"
    ca_pem: bytes | None = None  # verify agents' serving certificates against this CA (None: no verification)
    default_port: int = DEFAULT_KUBELET_PORT  # when a Node reports no daemon endpoint port
    connect_timeout: float = 10.0

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        if self.scheme != "https":
            return None
        if self.ca_pem:
            ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
            ctx.check_hostname = False  # nodes are reached by IP address; the chain is what is checked
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def ensure_kubelet_token(path: Path) -> str:
    """The kubelet token stored at ``path``, created (random, mode 0600) on first use."""
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


def websocket_protocol() -> type:
    """uvicorn's sans-I/O WebSocket protocol, accepting any offered subprotocol string (see the module docstring)."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.datastructures import Headers
    from websockets.server import ServerProtocol
    from websockets.typing import Subprotocol

    class LenientHandshake(ServerProtocol):
        def process_subprotocol(self, headers: Headers) -> Subprotocol | None:
            offered = [Subprotocol(p.strip()) for v in headers.get_all("Sec-WebSocket-Protocol")
                       for p in v.split(",") if p.strip()]
            return self.select_subprotocol(offered)

    class KubernetesWebSocketProtocol(WebSocketsSansIOProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Same handshake state machine, built by uvicorn with its settings; only the header parsing differs.
            self.conn.__class__ = LenientHandshake

        async def send(self, message: Any) -> None:
            await super().send(message)
            if message.get("type") == "websocket.http.response.body" and not message.get("more_body", False):
                self.handshake_complete = True  # answered (refused): nothing left to complete

    return KubernetesWebSocketProtocol


# -- the pod and its node ---------------------------------------------------------------------------------------


def _container_names(containers: Any) -> list[str]:
    return [c.get("name", "") for c in containers or [] if isinstance(c, dict)]


def choose_container(pod: dict[str, Any], requested: str) -> str:
    """The container a request is about, with the API's errors (400) for a missing or unknown one."""
    name = (pod.get("metadata") or {}).get("name", "")
    spec = pod.get("spec") or {}
    containers = _container_names(spec.get("containers"))
    init = _container_names(spec.get("initContainers"))
    ephemeral = _container_names(spec.get("ephemeralContainers"))
    if requested:
        if requested not in (*containers, *init, *ephemeral):
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION, "")
    if annotated and annotated in containers:
        return str(annotated)
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
    if init:
        msg += f" or one of the init containers: [{' '.join(init)}]"
    raise errors.bad_request(msg)


def _describe(e: BaseException) -> str:
    """An exception's text, or its class and its cause's when it has none (httpx's ConnectError often hasn't)."""
    text = str(e)
    cause = e.__cause__ or e.__context__
    if not text and cause is not None:
        text = str(cause)
    return text or type(e).__name__


def node_address(node: dict[str, Any]) -> str:
    addresses = [a for a in (node.get("status") or {}).get("addresses") or [] if isinstance(a, dict)]
    for kind in ("InternalIP", "ExternalIP", "Hostname"):
        for a in addresses:
            if a.get("type") == kind and a.get("address"):
                return str(a["address"])
    known = ", ".join(f"{a.get('type')}={a.get('address')}" for a in addresses)
    raise errors.bad_request(f"no preferred addresses found; known addresses: [{known}]")


def is_local_address(host: str) -> bool:
    """Whether ``host`` (an IP address) belongs to this machine: loopback or an address of one of its
    interfaces (including the node bridges tinykube makes). The API server talks only to agents there, so a
    Node object cannot send it anywhere else (network safety; agents on other machines are future work)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    if ip.is_unspecified or ip.is_multicast:
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))  # only an address configured on this machine can be bound
        return True
    except OSError:
        return False


def translate_agent_error(code: int, body: bytes) -> errors.ApiError:
    """An agent's failure answer as an API error: its ``Status`` when it sent one, else the text."""
    with contextlib.suppress(ValueError, TypeError):
        st = orjson.loads(body)
        if isinstance(st, dict) and st.get("kind") == "Status" and st.get("message"):
            c = int(st.get("code") or code)
            return errors.ApiError(c, str(st.get("reason") or _REASONS.get(c, "InternalError")), str(st["message"]),
                                   st.get("details") if isinstance(st.get("details"), dict) else None)
    text = body.decode("utf-8", "replace").strip() or f"the node agent answered HTTP {code}"
    if code in (400, 401, 403, 404, 409):
        return errors.ApiError(code, _REASONS[code], text)
    return errors.internal(text)


@dataclass
class _Target:
    container: str
    base: str  # "https://10.0.0.5:10250", or "" when the pod has no node


# -- ASGI WebSocket view ----------------------------------------------------------------------------------------


class WebSocket:
    """A thin view of an ASGI WebSocket (the API server's side towards kubectl, and the node agent's): accept
    or reject with an HTTP answer, send and receive whole messages, ``None`` once the peer is gone."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.subprotocols: list[str] = list(scope.get("subprotocols") or [])
        self.accepted = False
        self.closed = False
        self.close_code: int | None = None

    async def wait_connect(self) -> bool:
        msg = await self._receive()
        return msg["type"] == "websocket.connect"

    async def reject(self, code: int, body: bytes, content_type: bytes = b"application/json") -> None:
        """Answer the upgrade request with an HTTP response instead of accepting it."""
        if "websocket.http.response" in (self.scope.get("extensions") or {}):
            await self._send({"type": "websocket.http.response.start", "status": code,
                              "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
            await self._send({"type": "websocket.http.response.body", "body": body})
        else:
            await self._send({"type": "websocket.close", "code": 1008})
        self.closed = True

    async def reject_error(self, err: errors.ApiError) -> None:
        await self.reject(err.code, orjson.dumps(err.status()))

    async def accept(self, subprotocol: str | None) -> None:
        await self._send({"type": "websocket.accept", "subprotocol": subprotocol})
        self.accepted = True

    async def receive(self) -> bytes | str | None:
        if self.closed:
            return None
        while True:
            msg = await self._receive()
            if msg["type"] == "websocket.receive":
                b = msg.get("bytes")
                return b if b is not None else msg.get("text") or ""
            if msg["type"] != "websocket.connect":
                break
        self.closed = True
        self.close_code = msg.get("code")
        return None

    async def send(self, data: bytes | str) -> bool:
        if self.closed:
            return False
        try:
            await self._send({"type": "websocket.send", "bytes": data} if isinstance(data, bytes)
                             else {"type": "websocket.send", "text": data})
            return True
        except (OSError, RuntimeError):  # uvicorn's ClientDisconnected is an OSError
            self.closed = True
            return False

    async def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError, RuntimeError):
            await self._send({"type": "websocket.close", "code": code})


# -- the handler ------------------------------------------------------------------------------------------------


class PodStreams:
    """Serves the streaming subresources of pods for :class:`~tinykube.apiserver.http.ApiServer`."""

    def __init__(self, registry: Registry, kubelet: KubeletConfig | None) -> None:
        self.registry = registry
        self.kubelet = kubelet

    # -- resolution -----------------------------------------------------------------------------------------
    def _target(self, ns: str, name: str, container: str, sub: str) -> _Target:
        pod, _ = self.registry.get(PODS, ns, name)
        chosen = "" if sub == "portforward" else choose_container(pod, container)
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if not node_name:
            if sub == "log":
                return _Target(chosen, "")
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        node, _ = self.registry.get(NODES, None, node_name)
        labels = (node.get("metadata") or {}).get("labels") or {}
        if str(labels.get(SIMULATED_NODE_LABEL, "")).lower() == "true":
            raise errors.bad_request(f'pod "{name}" runs on simulated node "{node_name}", which runs no containers: '
                                     f"there is no {_WHAT[sub]} to serve")
        if self.kubelet is None:
            raise errors.ApiError(503, "ServiceUnavailable", "this API server has no kubelet client configured")
        host = node_address(node)
        if not is_local_address(host):
            raise errors.bad_request(f'node "{node_name}" has address {host}, which is not on this machine: '
                                     "this API server reaches node agents on this machine only")
        if ":" in host:
            host = f"[{host}]"
        port = 0
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            port = int(node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"])
        if port <= 0:
            port = self.kubelet.default_port
        return _Target(chosen, f"{self.kubelet.scheme}://{host}:{port}")

    def _auth_headers(self) -> dict[str, str]:
        assert self.kubelet is not None
        return {"Authorization": f"Bearer {self.kubelet.token}"}

    # -- plain HTTP -----------------------------------------------------------------------------------------
    async def serve_http(self, scope: Scope, sub: str, ns: str, name: str, receive: Receive, send: Send) -> None:
        """A non-WebSocket request to one of :data:`SUBRESOURCES`; raises ``ApiError`` before answering."""
        q = _query(scope)
        method = scope.get("method", "GET")
        if sub == "log":
            if method != "GET":
                raise errors.method_not_allowed()
            await self._logs(q, ns, name, receive, send)
            return
        if method not in ("GET", "POST"):
            raise errors.method_not_allowed()
        target = self._target(ns, name, _last(q, "container"), sub)
        if sub != "portforward":
            # kubectl gets here after the WebSocket upgrade was refused (it then tries SPDY): ask the agent too, so
            # that its refusal (container not running, ...) is what kubectl prints. The agent only checks.
            path, query = _agent_request(sub, ns, name, target.container, q)
            code, body = await self._agent_get(target, path, query)
            raise translate_agent_error(code, body)
        raise errors.bad_request("Upgrade request required")

    async def _agent_get(self, target: _Target, path: str, query: list[tuple[str, str]]) -> tuple[int, bytes]:
        import httpx

        assert self.kubelet is not None
        url = target.base + path + ("?" + urlencode(query) if query else "")
        async with httpx.AsyncClient(verify=self.kubelet.ssl_context or False, trust_env=False,
                                     timeout=self.kubelet.connect_timeout) as client:
            try:
                r = await client.get(url, headers=self._auth_headers())
            except httpx.HTTPError as e:
                raise errors.internal(f"error dialing backend: {_describe(e)}") from None
            return r.status_code, r.content

    async def _logs(self, q: dict[str, list[str]], ns: str, name: str, receive: Receive, send: Send) -> None:
        params = _log_params(q, name)
        target = self._target(ns, name, _last(q, "container"), "log")
        if not target.base:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        import httpx

        assert self.kubelet is not None
        url = f"{target.base}/containerLogs/{quote(ns, safe='')}/{quote(name, safe='')}/{quote(target.container, safe='')}"
        if params:
            url += "?" + urlencode(params)
        timeout = httpx.Timeout(self.kubelet.connect_timeout, read=None)
        client = httpx.AsyncClient(verify=self.kubelet.ssl_context or False, trust_env=False, timeout=timeout)
        try:
            try:
                resp = await client.send(client.build_request("GET", url, headers=self._auth_headers()), stream=True)
            except httpx.HTTPError as e:
                raise errors.internal(f"error dialing backend: {_describe(e)}") from None
            try:
                if resp.status_code != 200:
                    raise translate_agent_error(resp.status_code, await resp.aread())
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"text/plain"), (b"cache-control", b"no-cache, private"),
                                        (b"transfer-encoding", b"chunked")]})

                async def relay() -> None:
                    with contextlib.suppress(httpx.HTTPError):
                        async for chunk in resp.aiter_raw():
                            await send({"type": "http.response.body", "body": chunk, "more_body": True})

                await _until_disconnect(relay(), receive)
                with contextlib.suppress(OSError, RuntimeError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                await resp.aclose()
        finally:
            await client.aclose()

    # -- WebSocket ------------------------------------------------------------------------------------------
    async def serve_websocket(self, scope: Scope, receive: Receive, send: Send, authenticated: bool) -> None:
        client = WebSocket(scope, receive, send)
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        try:
            if not authenticated:
                raise errors.unauthorized()
            parts = scope.get("path", "").rstrip("/").split("/")
            if len(parts) != 8 or parts[1:4] != ["api", "v1", "namespaces"] or parts[5] != "pods" \
                    or parts[7] not in ("exec", "attach", "portforward") or not parts[4] or not parts[6]:
                raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
            ns, name, sub = parts[4], parts[6], parts[7]
            q = _query(scope)
            target = self._target(ns, name, _last(q, "container"), sub)
            if sub == "portforward" and SPDY_TUNNEL_PROTOCOL in client.subprotocols:
                await client.accept(SPDY_TUNNEL_PROTOCOL)
                await _SpdyTunnel(client, functools.partial(self._open_port_forward, target, ns, name)).run()
                return
            path, query = _agent_request(sub, ns, name, target.container, q)
            upstream = await self._connect(target, path, query, client.subprotocols)
            try:
                await client.accept(upstream.subprotocol)
                await _relay(client, upstream)
            finally:
                with contextlib.suppress(Exception):
                    await upstream.close()
        except errors.ApiError as e:
            if not client.closed:
                await client.reject_error(e)
        except Exception:
            log.error("internal error on WebSocket %s:\n%s", scope.get("path"), traceback.format_exc())
            with contextlib.suppress(Exception):
                if not client.accepted:
                    await client.reject_error(errors.internal("an error on the server has prevented the request from "
                                                        "succeeding"))
                else:
                    await client.close(1011)

    async def _connect(self, target: _Target, path: str, query: list[tuple[str, str]], protocols: list[str]) -> Any:
        """A WebSocket to the agent (a ``websockets`` client connection), or ``ApiError``."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        assert self.kubelet is not None
        url = ("wss" if target.base.startswith("https:") else "ws") + target.base[target.base.index(":"):] + path
        if query:
            url += "?" + urlencode(query)
        try:
            return await connect(url, subprotocols=protocols or None,  # type: ignore[arg-type]
                                 additional_headers=self._auth_headers(), ssl=self.kubelet.ssl_context,
                                 proxy=None, compression=None, max_size=None, user_agent_header=None,
                                 open_timeout=self.kubelet.connect_timeout)
        except InvalidStatus as e:
            raise translate_agent_error(e.response.status_code, bytes(e.response.body or b"")) from None
        except (OSError, InvalidHandshake, TimeoutError) as e:
            raise errors.internal(f"error dialing backend: {_describe(e)}") from None

    async def _open_port_forward(self, target: _Target, ns: str, name: str, port: int) -> Any:
        path = f"/portForward/{quote(ns, safe='')}/{quote(name, safe='')}"
        return await self._connect(target, path, [("port", str(port))], [PORT_FORWARD_AGENT_PROTOCOL])


_WHAT = {"log": "log", "exec": "process to exec into", "attach": "process to attach to",
         "portforward": "pod network to forward to"}


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def _last(q: dict[str, list[str]], name: str) -> str:
    v = q.get(name)
    return v[-1] if v else ""


def _agent_request(sub: str, ns: str, name: str, container: str,
                   q: dict[str, list[str]]) -> tuple[str, list[tuple[str, str]]]:
    """The agent's path and query for a stream request: the kubelet's parameter names."""
    if sub == "portforward":
        path = f"/portForward/{quote(ns, safe='')}/{quote(name, safe='')}"
        return path, [("port", p) for raw in [*q.get("ports", []), *q.get("port", [])] for p in raw.split(",")]
    path = f"/{sub}/{quote(ns, safe='')}/{quote(name, safe='')}/{quote(container, safe='')}"
    query = [("command", c) for c in q.get("command", [])] if sub == "exec" else []
    for api_name, kubelet_name in (("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty")):
        if _last(q, api_name).lower() in ("1", "true"):
            query.append((kubelet_name, "1"))
    return path, query


def _log_params(q: dict[str, list[str]], name: str) -> list[tuple[str, str]]:
    """The ``PodLogOptions`` of a request, validated as the API does, as the agent's query."""
    out: list[tuple[str, str]] = []
    ints: dict[str, int] = {}
    for key in ("sinceSeconds", "tailLines", "limitBytes"):
        v = _last(q, key)
        if v == "":
            continue
        digits = v[1:] if v[:1] in "+-" else v
        if not (digits.isascii() and digits.isdigit()) or len(v) > 20:
            raise errors.bad_request(f"invalid value for {key}: {v!r}: must be a 64-bit integer")
        ints[key] = int(v)
    for key in ("follow", "previous", "timestamps"):
        v = _last(q, key).lower()
        if v not in ("", "true", "false", "1", "0"):
            raise errors.bad_request(f"invalid value for {key}: {v!r}: must be a boolean")
        if v in ("true", "1"):
            out.append((key, "true"))
    since_time = _last(q, "sinceTime")
    problems: list[errors.FieldError] = []
    if "sinceSeconds" in ints and since_time:
        problems.append(errors.forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    if ints.get("sinceSeconds", 1) < 1:
        problems.append(errors.invalid_value("sinceSeconds", ints["sinceSeconds"], "must be greater than 0"))
    if ints.get("tailLines", 0) < 0:
        problems.append(errors.invalid_value("tailLines", ints["tailLines"], "must be greater than or equal to 0"))
    if ints.get("limitBytes", 1) < 1:
        problems.append(errors.invalid_value("limitBytes", ints["limitBytes"], "must be greater than 0"))
    if problems:
        raise errors.invalid("PodLogOptions", name, problems)
    if since_time:
        from datetime import datetime

        try:
            datetime.fromisoformat(since_time.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise errors.bad_request(f"invalid value for sinceTime: {since_time!r}: must be an RFC 3339 time") from None
        out.append(("sinceTime", since_time))
    out.extend((k, str(v)) for k, v in ints.items())
    return out


async def _until_disconnect(work: Awaitable[None], receive: Receive) -> None:
    """Run ``work`` until it ends or the HTTP client goes away, whichever comes first."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, watcher):
            t.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)


async def _relay(client: WebSocket, upstream: Any) -> None:
    """Messages both ways between kubectl's WebSocket and the agent's, until either side closes."""
    from websockets.exceptions import ConnectionClosed

    async def up() -> None:
        while True:
            msg = await client.receive()
            if msg is None:
                return
            await upstream.send(msg)

    async def down() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for msg in upstream:
                if not await client.send(msg):
                    return

    ups = asyncio.create_task(up())
    downs = asyncio.create_task(down())
    try:
        await asyncio.wait({ups, downs}, return_when=asyncio.FIRST_COMPLETED)
        if downs.done():
            code = upstream.close_code
            await client.close(code if code in (1000, 1001, 1011) else 1000)
    finally:
        for t in (ups, downs):
            t.cancel()
        await asyncio.gather(ups, downs, return_exceptions=True)


# -- SPDY/3.1 tunnelled in a WebSocket: port-forward ------------------------------------------------------------


def _spdy_dictionary() -> bytes:
    """The SPDY/3 header-compression dictionary: length-prefixed header words, then a run of common values."""
    words = [*("options head post put delete trace accept accept-charset accept-encoding accept-language "
               "accept-ranges age allow authorization cache-control connection content-base content-encoding "
               "content-language content-length content-location content-md5 content-range content-type date etag "
               "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
               "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
               "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning "
               "www-authenticate method get status").split(),
             "200 OK", *"version HTTP/1.1 url public set-cookie keep-alive origin".split()]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
            "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(len(w).to_bytes(4, "big") + w.encode() for w in words) + tail.encode()


SPDY_DICTIONARY = _spdy_dictionary()
_SYN_STREAM, _SYN_REPLY, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _HEADERS, _WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
_FLAG_FIN = 0x01
_MAX_DATA = 64 * 1024


def spdy_control(ftype: int, flags: int, payload: bytes) -> bytes:
    return bytes([0x80, 0x03]) + ftype.to_bytes(2, "big") + bytes([flags]) + len(payload).to_bytes(3, "big") + payload


def spdy_data(stream_id: int, flags: int, data: bytes) -> bytes:
    return (stream_id & 0x7FFFFFFF).to_bytes(4, "big") + bytes([flags]) + len(data).to_bytes(3, "big") + data


def encode_header_block(headers: dict[str, str]) -> bytes:
    out = [len(headers).to_bytes(4, "big")]
    for k, v in headers.items():
        kb, vb = k.lower().encode(), v.encode()
        out += [len(kb).to_bytes(4, "big"), kb, len(vb).to_bytes(4, "big"), vb]
    return b"".join(out)


def decode_header_block(block: bytes) -> dict[str, str]:
    n = int.from_bytes(block[0:4], "big")
    pos = 4
    out: dict[str, str] = {}
    for _ in range(n):
        ln = int.from_bytes(block[pos:pos + 4], "big")
        name = block[pos + 4:pos + 4 + ln].decode("latin-1").lower()
        pos += 4 + ln
        lv = int.from_bytes(block[pos:pos + 4], "big")
        value = block[pos + 4:pos + 4 + lv].decode("latin-1")
        pos += 4 + lv
        out[name] = value.split("\x00")[0]
    if pos > len(block):
        raise ValueError("truncated SPDY header block")
    return out


@dataclass
class _Forward:
    """One forwarded connection: kubectl's error and data streams for one request ID."""

    request_id: str
    port: int = 0
    port_error: str = ""
    error_sid: int = 0
    data_sid: int = 0
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(64))
    task: asyncio.Task[None] | None = None
    upstream: Any = None  # the agent's WebSocket, once connected
    data_closed: bool = False  # FIN sent (or RST received) on the data stream: write nothing more there
    reset: bool = False  # kubectl reset the data stream: drop the pod connection


class _SpdyTunnel:
    """The server end of kubectl's SPDY session inside a WebSocket (see the module docstring)."""

    def __init__(self, client: WebSocket, open_upstream: Callable[[int], Awaitable[Any]]) -> None:
        self.client = client
        self.open_upstream = open_upstream
        self.inflate = zlib.decompressobj(zdict=SPDY_DICTIONARY)
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=SPDY_DICTIONARY)
        self.buf = bytearray()
        self.by_request: dict[str, _Forward] = {}
        self.by_stream: dict[int, _Forward] = {}
        self.lock = asyncio.Lock()
        self.closed = False
        self.background: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        try:
            while not self.closed:
                msg = await self.client.receive()
                if msg is None:
                    return
                if isinstance(msg, str):
                    return  # not SPDY
                self.buf += msg
                await self._frames()
        except (ValueError, zlib.error):
            return  # a malformed session: drop it
        finally:
            self.closed = True
            tasks = [f.task for f in self.by_request.values() if f.task is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.close()

    async def _send(self, frame: bytes) -> None:
        async with self.lock:
            await self.client.send(frame)

    async def _frames(self) -> None:
        buf = self.buf
        while len(buf) >= 8 and not self.closed:
            length = int.from_bytes(buf[5:8], "big")
            if len(buf) < 8 + length:
                return
            head = bytes(buf[:8])
            payload = bytes(buf[8:8 + length])
            del buf[:8 + length]
            flags = head[4]
            if head[0] & 0x80:
                await self._control(int.from_bytes(head[2:4], "big"), flags, payload)
            else:
                await self._data(int.from_bytes(head[0:4], "big") & 0x7FFFFFFF, flags, payload)

    async def _control(self, ftype: int, flags: int, payload: bytes) -> None:
        if ftype == _SYN_STREAM:
            sid = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
            headers = decode_header_block(self.inflate.decompress(payload[10:]))
            await self._syn_stream(sid, headers)
        elif ftype == _HEADERS or ftype == _SYN_REPLY:
            self.inflate.decompress(payload[4:])  # keep the shared decompression context in step
        elif ftype == _RST_STREAM:
            sid = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
            fwd = self.by_stream.get(sid)
            if fwd is not None and sid == fwd.data_sid:
                fwd.data_closed = fwd.reset = True
                if fwd.upstream is not None:  # ends the pod-to-kubectl pump, which then closes the error stream
                    closing = asyncio.create_task(fwd.upstream.close())
                    self.background.add(closing)
                    closing.add_done_callback(self.background.discard)
        elif ftype == _PING:
            await self._send(spdy_control(_PING, 0, payload))
        elif ftype == _GOAWAY:
            self.closed = True
        # SETTINGS, WINDOW_UPDATE and anything else: nothing to do

    async def _syn_stream(self, sid: int, headers: dict[str, str]) -> None:
        async with self.lock:
            block = self.deflate.compress(encode_header_block({})) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
            await self.client.send(spdy_control(_SYN_REPLY, 0, sid.to_bytes(4, "big") + block))
        request_id = headers.get("requestid", "")
        kind = headers.get("streamtype", "")
        fwd = self.by_request.get(request_id)
        if fwd is None:
            fwd = self.by_request[request_id] = _Forward(request_id)
        raw_port = headers.get("port", "")
        if raw_port.isdigit() and 0 < int(raw_port) < 65536:
            fwd.port = int(raw_port)
        else:
            fwd.port_error = f"invalid port {raw_port!r}: must be a number between 1 and 65535"
        self.by_stream[sid] = fwd
        if kind == "error":
            fwd.error_sid = sid
        elif kind == "data":
            fwd.data_sid = sid
            if fwd.task is None:
                fwd.task = asyncio.create_task(self._forward(fwd))
        else:
            await self._send(spdy_control(_RST_STREAM, 0, sid.to_bytes(4, "big") + (1).to_bytes(4, "big")))

    async def _data(self, sid: int, flags: int, payload: bytes) -> None:
        fwd = self.by_stream.get(sid)
        if fwd is None or sid != fwd.data_sid or fwd.task is None or fwd.task.done() or fwd.reset:
            return
        if payload:
            await fwd.queue.put(payload)
        if flags & _FLAG_FIN:
            await fwd.queue.put(None)

    async def _write(self, sid: int, data: bytes, fin: bool = False) -> None:
        if not sid:
            return
        for i in range(0, max(len(data), 1), _MAX_DATA):
            last = i + _MAX_DATA >= len(data)
            await self._send(spdy_data(sid, _FLAG_FIN if (fin and last) else 0, data[i:i + _MAX_DATA]))

    async def _forward(self, fwd: _Forward) -> None:
        """Connect ``fwd`` to the pod through the agent and pump both ways until the pod side is done."""
        from websockets.exceptions import ConnectionClosed

        upstream: Any = None
        try:
            if fwd.port_error:
                raise errors.bad_request(fwd.port_error)
            upstream = fwd.upstream = await self.open_upstream(fwd.port)
            if fwd.reset:
                await upstream.close()
        except errors.ApiError as e:
            await self._write(fwd.data_sid, b"", fin=True)
            await self._write(fwd.error_sid, f"error forwarding port {fwd.port}: {e.message}".encode(), fin=True)
            self._forget(fwd)
            return

        async def to_pod() -> None:
            # Keeps taking from the queue even once the agent is gone, so the frame reader never blocks on it.
            alive = True
            while True:
                item = await fwd.queue.get()
                if not alive:
                    continue
                try:
                    await upstream.send(bytes([255, 0]) if item is None else b"\x00" + item)
                except ConnectionClosed:
                    alive = False

        sender = asyncio.create_task(to_pod())
        seen_prefix = {0: False, 1: False}
        try:
            with contextlib.suppress(ConnectionClosed):
                async for msg in upstream:
                    if not isinstance(msg, bytes) or not msg:
                        continue
                    channel, data = msg[0], msg[1:]
                    if channel in seen_prefix and not seen_prefix[channel]:
                        seen_prefix[channel] = True
                        data = data[2:]  # the port, sent first on each channel
                    if channel == 0 and data and not fwd.data_closed:
                        await self._write(fwd.data_sid, data)
                    elif channel == 1 and data:
                        await self._write(fwd.error_sid, data)
                    elif channel == 255 and data[:1] == b"\x00" and not fwd.data_closed:
                        fwd.data_closed = True
                        await self._write(fwd.data_sid, b"", fin=True)
            if not fwd.data_closed:
                fwd.data_closed = True
                await self._write(fwd.data_sid, b"", fin=True)
            await self._write(fwd.error_sid, b"", fin=True)
        finally:
            self._forget(fwd)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            while not fwd.queue.empty():  # release a frame reader waiting to queue more
                fwd.queue.get_nowait()
            with contextlib.suppress(Exception):
                await upstream.close()

    def _forget(self, fwd: _Forward) -> None:
        self.by_request.pop(fwd.request_id, None)
        for sid in (fwd.error_sid, fwd.data_sid):
            if self.by_stream.get(sid) is fwd:
                del self.by_stream[sid]
