"""The HTTP front end: a plain ASGI application (served by uvicorn over TLS).

Routing is by path shape, as kube-apiserver's: ``/api/v1/...`` and
``/apis/{group}/{version}/...`` followed by
``[namespaces/{ns}/]{resource}[/{name}[/{subresource}]]``; ``/api/v1/namespaces/{name}``
is the namespace itself. The handler decodes the request, calls the
:class:`~tinykube.apiserver.registry.Registry`, and encodes the answer:
objects straight from the store's serialized bytes when nothing needs to change,
``Table`` when kubectl asks for it, ``Status`` for every error.

Watches are chunked streams of newline-delimited JSON events. A task listens for
the client going away and ends the watch, so no watcher outlives its connection.

The pods' streaming subresources (``log``, ``exec``, ``attach``, ``portforward``), the
only WebSocket endpoints, are handed to :mod:`tinykube.apiserver.streams` after the
usual authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson

from ..api import errors, openapi, protobuf, selectors
from ..api.resources import Resource, lookup
from ..store.store import DELETED, Entry, Event
from . import discovery, streams, tables
from .registry import Options, Registry, check_depth, load_yaml

log = logging.getLogger("tinykube.apiserver")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY = 3 * 1024 * 1024
JSON_CT = b"application/json"
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
TABLE_CT = b"application/json;as=Table;v=v1;g=meta.k8s.io"


class Request:
    __slots__ = ("accept", "body", "content_type", "headers", "method", "path", "query", "scope", "user_agent")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope.get("method", "GET")  # a WebSocket scope has none: its handshake is a GET
        self.path: str = scope["path"]
        q = scope.get("query_string", b"").decode("latin-1")
        self.query: dict[str, str] = {k: v[-1] for k, v in parse_qs(q, keep_blank_values=True).items()}
        hdrs: dict[str, str] = {}
        for k, v in scope.get("headers", []):
            hdrs[k.decode("latin-1").lower()] = v.decode("latin-1")
        self.headers = hdrs
        self.accept = hdrs.get("accept", "")
        self.content_type = hdrs.get("content-type", "")
        self.user_agent = hdrs.get("user-agent", "")
        self.body = b""

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("true", "1")

    def int_param(self, name: str) -> int | None:
        v = self.query.get(name)
        if v is None or v == "":
            return None
        # As Go's strconv.ParseInt(v, 10, 64): ASCII digits only, in int64 range (a bigger timeoutSeconds or
        # gracePeriodSeconds would overflow the float deadline / timestamp arithmetic below).
        n = int(v) if v.lstrip("+-").isascii() and v.lstrip("+-").isdigit() and len(v) <= 20 else None
        if n is None or not -(2**63) <= n < 2**63:
            raise errors.bad_request(f"invalid value for {name}: {v!r}: must be a 64-bit integer")
        return n

    def options(self) -> Options:
        dry = self.query.get("dryRun", "")
        if dry and dry != "All":
            raise errors.bad_request(f"Invalid dry run value: unsupported dry run value {dry!r}; supported: All")
        fv = self.query.get("fieldValidation", "")
        if fv not in ("", "Strict", "Warn", "Ignore"):
            raise errors.bad_request(f'Invalid value: "{fv}": fieldValidation must be one of "Ignore", "Warn", or "Strict"')
        force = self.query.get("force")
        return Options(dry_run=dry == "All", field_validation=fv or "Warn", field_manager=self.query.get("fieldManager", ""),
                       force=(force or "").lower() in ("true", "1"), user_agent=self.user_agent)

    def wants_table(self) -> bool:
        if "as=Table" not in self.accept:
            return False
        inc = self.query.get("includeObject", "")
        if inc not in ("", "None", "Metadata", "Object"):
            raise errors.bad_request(f'includeObject: Unsupported value: "{inc}": supported values: "None", "Metadata", "Object"')
        return True


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Answer an ASGI lifespan scope (nothing to set up or tear down): for servers run with lifespan on."""
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _warning_headers(warnings: list[str]) -> list[tuple[bytes, bytes]]:
    """``Warning`` headers, deduplicated and bounded as kube-apiserver's recorder does (4096 runes in all; past
    that, 256 per warning): a body with thousands of unknown fields must not make the header block too big."""
    warnings = list(dict.fromkeys(warnings))
    if sum(len(w) for w in warnings) > 4096:
        kept: list[str] = []
        written = 0
        for w in warnings:
            if written >= 4096:
                break
            kept.append(w[:256])
            written += len(kept[-1])
        warnings = kept
    return [(b"warning", _warning_header(w)) for w in warnings]


def _warning_header(text: str) -> bytes:
    """A ``Warning: 299 - "text"`` value: quotes escaped and control characters (which may come from field
    names in the request) written as escapes, so the header stays valid HTTP."""
    text = "".join(f"\\u{ord(c):04x}" if c < " " or c == "\x7f" else "\\" + c if c in '"\\' else c for c in text)
    return f'299 - "{text}"'.encode("utf-8", "backslashreplace")


def _status_bytes(err: errors.ApiError) -> bytes:
    return orjson.dumps(err.status())


class ApiServer:
    def __init__(self, registry: Registry, token: str, server_address: str = "127.0.0.1:6443",
                 kubelet: streams.KubeletConfig | None = None) -> None:
        self.registry = registry
        self.streams = streams.PodStreams(registry, kubelet)
        self.token = token.encode()
        self.server_address = server_address
        self.started = time.time()
        self.requests = 0
        self.ready = True

    # -- ASGI entry ------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            self.requests += 1
            await self.streams.serve_websocket(scope, receive, send, self._authenticated(Request(scope)))
            return
        if scope["type"] != "http":
            return
        self.requests += 1
        req = Request(scope)
        try:
            if not req.path.startswith(PUBLIC_PATHS) and not self._authenticated(req):
                raise errors.unauthorized()
            if req.method in ("POST", "PUT", "PATCH", "DELETE"):
                req.body = await self._read_body(receive)
            await self._dispatch(req, receive, send)
        except errors.ApiError as e:
            await self._send(send, e.code, _status_bytes(e),
                             [(b"retry-after", str(e.retry_after).encode())] if e.retry_after else None)
        except Exception:
            log.error("internal error on %s %s:\n%s", req.method, req.path, traceback.format_exc())
            with contextlib.suppress(Exception):
                await self._send(send, 500, _status_bytes(errors.internal("an error on the server has prevented the request from succeeding")))

    def _authenticated(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        if not auth.startswith(("Bearer ", "bearer ")):
            return False
        return hmac.compare_digest(auth[7:].strip().encode(), self.token)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            b = msg.get("body", b"")
            size += len(b)
            if size > MAX_BODY:
                raise errors.ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
            chunks.append(b)
            if not msg.get("more_body"):
                break
        return b"".join(chunks)

    async def _send(self, send: Send, code: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None,
                    content_type: bytes = JSON_CT) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-cache, private")]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # -- routing ---------------------------------------------------------------------------------------------
    async def _dispatch(self, req: Request, receive: Receive, send: Send) -> None:
        path = req.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            ok = self.ready
            await self._send(send, 200 if ok else 500, b"ok" if ok else b"not ready", content_type=b"text/plain; charset=utf-8")
            return
        if path == "/version":
            await self._send(send, 200, discovery.version_doc())
            return
        if path.startswith("/openapi/"):
            await self._openapi(req, path, send)
            return
        if not path.startswith("/"):  # "OPTIONS *" and other non-path request-targets
            raise self._path_not_found()
        parts = path.split("/")[1:]  # uvicorn has already percent-decoded the path: decode once only
        if parts[0] == "api":
            if len(parts) == 1:
                return await self._discovery_root(req, send, core=True)
            if parts[1] != "v1":
                raise errors.not_found("", path)
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 1:
                return await self._discovery_root(req, send, core=False)
            if len(parts) == 2:
                doc = discovery.api_group(parts[1])
                if doc is None:
                    raise self._path_not_found()
                return await self._send(send, 200, doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise self._path_not_found()
        if not rest:
            doc = discovery.resource_list(group, version)
            if doc is None:
                raise self._path_not_found()
            await self._send(send, 200, doc)
            return
        watch_prefix = False
        if rest[0] == "watch":
            watch_prefix = True
            rest = rest[1:]
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (group == "" and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise self._path_not_found()
        res = lookup(group, version, rest[0])
        if res is None:
            raise self._path_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if (sub and sub not in discovery.SERVED_SUBRESOURCES) or (sub and sub not in res.subresources):
            raise self._path_not_found()
        if ns is not None and not res.namespaced:
            raise self._path_not_found()
        if res.namespaced and name is not None and ns is None:
            raise self._path_not_found()
        req.wants_table()  # a bad includeObject is a 400 before anything is written or streamed
        if watch_prefix or (req.method == "GET" and req.flag("watch")):
            if req.method != "GET":
                raise errors.method_not_allowed()
            fs = req.query.get("fieldSelector", "")
            if name is not None:
                fs = f"metadata.name={name}" + ("," + fs if fs else "")
            await self._watch(req, res, ns, fs, receive, send)
            return
        if sub in streams.SUBRESOURCES and res.kind == "Pod" and res.group == "" and ns is not None and name:
            await self.streams.serve_http(req.scope, sub, ns, name, receive, send)
            return
        await self._resource(req, res, ns, name, sub, send)

    def _path_not_found(self) -> errors.ApiError:
        return errors.ApiError(404, "NotFound", "the server could not find the requested resource",
                               {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})

    async def _discovery_root(self, req: Request, send: Send, core: bool) -> None:
        if "as=APIGroupDiscoveryList" in req.accept:
            # kubectl lists v2 first, then v2beta1; answer v2 whenever it is among the accepted forms.
            ver = "v2" if ";v=v2;" in req.accept.replace(" ", "") else "v2beta1"
            ct = discovery.AGGREGATED_CT_V2 if ver == "v2" else discovery.AGGREGATED_CT_V2BETA1
            await self._send(send, 200, discovery.aggregated(core, ver), [(b"vary", b"Accept")], content_type=ct.encode())
            return
        if core:
            await self._send(send, 200, discovery.api_versions(self.server_address))
        else:
            await self._send(send, 200, discovery.api_group_list())

    async def _openapi(self, req: Request, path: str, send: Send) -> None:
        if path == "/openapi/v2":
            if "json" not in req.accept and "*/*" not in req.accept and req.accept:
                raise errors.not_acceptable("only application/json is served for /openapi/v2")
            await self._send(send, 200, openapi.openapi_v2())
            return
        if path == "/openapi/v3":
            await self._send(send, 200, orjson.dumps(openapi.openapi_v3_index()))
            return
        doc = openapi.openapi_v3_doc(path[len("/openapi/v3/"):])
        if doc is None:
            raise self._path_not_found()
        await self._send(send, 200, doc, [(b"etag", b'"tinykube"')])

    # -- verbs -----------------------------------------------------------------------------------------------
    def _decode(self, req: Request) -> Any:
        ct = req.content_type.split(";", 1)[0].strip().lower()
        if not req.body:
            raise errors.bad_request("the request body is empty; an object is required")
        if ct in ("application/yaml", "application/apply-patch+yaml"):
            import yaml

            try:
                return load_yaml(req.body)
            except (yaml.YAMLError, ValueError, RecursionError) as ex:  # ValueError: an int over 4300 digits
                raise errors.bad_request(f"error converting YAML to JSON: {ex}") from None
        if protobuf.is_protobuf(ct):
            return check_depth(protobuf.decode(req.body))
        if ct not in ("", "application/json", "*/*"):
            raise errors.unsupported_media_type(ct)
        try:
            return check_depth(orjson.loads(req.body))
        except orjson.JSONDecodeError as ex:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {ex}") from None

    async def _respond_obj(self, req: Request, send: Send, res: Resource, code: int, obj: dict[str, Any],
                           raw: bytes | None, warnings: list[str] | None = None) -> None:
        extra = _warning_headers(warnings or [])
        if req.wants_table() and obj.get("kind") == res.kind:
            body = orjson.dumps(tables.to_table(res, [obj], include_object=req.query.get("includeObject", "Metadata")))
            await self._send(send, code, body, extra, TABLE_CT)
            return
        await self._send(send, code, raw if raw is not None else orjson.dumps(obj), extra)

    async def _resource(self, req: Request, res: Resource, ns: str | None, name: str | None, sub: str, send: Send) -> None:
        reg = self.registry
        m = req.method
        if name is None:
            if m == "GET":
                return await self._list(req, res, ns, send)
            if m == "POST":
                if res.namespaced and ns is None:
                    raise errors.method_not_allowed()
                r = await reg.create(res, ns, self._decode(req), req.options())
                return await self._respond_obj(req, send, res, r.code, r.obj, r.raw, r.warnings)
            if m == "DELETE":
                if "deletecollection" not in res.verbs:
                    raise errors.method_not_allowed()
                opts = self._decode(req) if req.body else {}
                opts = self._delete_options(req, opts)
                out = await reg.delete_collection(res, ns, req.query.get("labelSelector", ""),
                                                  req.query.get("fieldSelector", ""), opts, req.options().dry_run)
                return await self._send(send, 200, orjson.dumps(out))
            raise errors.method_not_allowed()
        if sub == "scale":
            if m == "GET":
                return await self._send(send, 200, orjson.dumps(reg.get_scale(res, ns, name)))
            if m == "PUT":
                r = await reg.update(res, ns, name, self._decode(req), req.options(), "scale")
                return await self._send(send, 200, orjson.dumps(r.obj))
            if m == "PATCH":
                r = await reg.patch(res, ns, name, req.content_type, req.body, req.options(), "scale")
                return await self._send(send, 200, orjson.dumps(r.obj))
            raise errors.method_not_allowed()
        if sub == "binding":
            if m != "POST":
                raise errors.method_not_allowed()
            out = await reg.bind(res, ns, name, self._decode(req), req.options())
            return await self._send(send, 201, orjson.dumps(out))
        if m == "GET":
            obj, raw = reg.get(res, ns, name)
            return await self._respond_obj(req, send, res, 200, obj, raw)
        if m == "PUT":
            r = await reg.update(res, ns, name, self._decode(req), req.options(), sub)
            return await self._respond_obj(req, send, res, r.code, r.obj, r.raw, r.warnings)
        if m == "PATCH":
            r = await reg.patch(res, ns, name, req.content_type, req.body, req.options(), sub)
            return await self._respond_obj(req, send, res, r.code, r.obj, r.raw, r.warnings)
        if m == "DELETE" and not sub:
            opts = self._delete_options(req, self._decode(req) if req.body else {})
            r = await reg.delete(res, ns, name, opts, req.options().dry_run)
            return await self._respond_obj(req, send, res, r.code, r.obj, r.raw)
        raise errors.method_not_allowed()

    def _delete_options(self, req: Request, opts: Any) -> dict[str, Any]:
        if not isinstance(opts, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        opts = dict(opts)
        g = req.int_param("gracePeriodSeconds")
        if g is not None:
            opts["gracePeriodSeconds"] = g
        if "propagationPolicy" in req.query:
            opts["propagationPolicy"] = req.query["propagationPolicy"]
        if "orphanDependents" in req.query:
            opts["orphanDependents"] = req.flag("orphanDependents")
        return opts

    async def _list(self, req: Request, res: Resource, ns: str | None, send: Send) -> None:
        limit = req.int_param("limit") or 0
        if limit < 0:
            raise errors.bad_request("limit must be non-negative")
        items, meta = self.registry.list(res, ns, req.query.get("labelSelector", ""), req.query.get("fieldSelector", ""),
                                         limit, req.query.get("continue", ""))
        if req.wants_table():
            table = tables.to_table(res, [e.obj for e in items], include_object=req.query.get("includeObject", "Metadata"),
                                    list_metadata=meta)
            await self._send(send, 200, orjson.dumps(table), content_type=TABLE_CT)
            return
        head = orjson.dumps({"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta})
        body = head[:-1] + b',"items":[' + b",".join([e.raw for e in items]) + b"]}"
        await self._send(send, 200, body)

    # -- watch -----------------------------------------------------------------------------------------------
    async def _watch(self, req: Request, res: Resource, ns: str | None, field_selector: str, receive: Receive,
                     send: Send) -> None:
        lsel = selectors.parse_label_selector(req.query.get("labelSelector", "")) if req.query.get("labelSelector") else None
        fsel = selectors.parse_field_selector(field_selector, res) if field_selector else None
        timeout = req.int_param("timeoutSeconds")
        bookmarks = req.flag("allowWatchBookmarks")
        send_initial = req.query.get("sendInitialEvents", "").lower() == "true"
        rv = req.query.get("resourceVersion", "")
        if send_initial and rv not in ("", "0"):
            rv = "0"
        try:
            w, initial = self.registry.watch(res, ns, rv)
        except errors.ApiError as e:
            if e.code != 410:
                raise
            # As kube-apiserver: the watch starts (200) and its only event is an ERROR carrying the 410 Status.
            body = orjson.dumps({"type": "ERROR", "object": e.status()}) + b"\n"
            await self._send(send, 200, body)
            return
        table = req.wants_table()
        include = req.query.get("includeObject", "Metadata")
        reg = self.registry

        def matches(o: dict[str, Any]) -> bool:
            if lsel is not None and not lsel.matches((o.get("metadata") or {}).get("labels")):
                return False
            return not (fsel is not None and not fsel.matches(o))

        def encode(etype: str, entry: Entry | None, obj: dict[str, Any] | None = None) -> bytes:
            if obj is None:
                assert entry is not None
                o, raw = reg._to_external(res, entry)
            else:
                o, raw = obj, None
            if table and etype != "BOOKMARK":
                return orjson.dumps({"type": etype, "object": tables.to_table(res, [o], include_object=include)}) + b"\n"
            if raw is not None:
                return b'{"type":"' + etype.encode() + b'","object":' + raw + b"}\n"
            return orjson.dumps({"type": etype, "object": o}) + b"\n"

        def bookmark(rev: int, initial_end: bool = False) -> bytes:
            md: dict[str, Any] = {"resourceVersion": str(rev)}
            if initial_end:
                md["annotations"] = {"k8s.io/initial-events-end": "true"}
            kind = res.kind if not table else "Table"
            api = res.api_version if not table else "meta.k8s.io/v1"
            return orjson.dumps({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api, "metadata": md}}) + b"\n"

        ct = TABLE_CT if table else JSON_CT
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", ct), (b"cache-control", b"no-cache, private"),
                                (b"transfer-encoding", b"chunked")]})

        async def watch_disconnect() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    w.close()
                    return

        waiter = asyncio.create_task(watch_disconnect())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        try:
            if initial:
                buf = [encode("ADDED", e) for e in initial if (lsel is None and fsel is None) or matches(e.obj)]
                if buf:
                    await send({"type": "http.response.body", "body": b"".join(buf), "more_body": True})
            if send_initial and bookmarks:
                await send({"type": "http.response.body", "body": bookmark(self.registry.store.rev, True),
                            "more_body": True})
            while True:
                wait = 10.0 if bookmarks else 30.0
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        break
                try:
                    ev = await w.next(wait)
                except TimeoutError:
                    if bookmarks and w.queue.empty():
                        await send({"type": "http.response.body", "body": bookmark(self.registry.store.rev),
                                    "more_body": True})
                    continue
                if ev is None:
                    break
                chunk = self._event_chunk(ev, lsel is not None or fsel is not None, matches, encode)
                # Drain whatever else is queued into the same chunk.
                while chunk is not None and not w.queue.empty() and len(chunk) < 1 << 20:
                    nxt = w.queue.get_nowait()
                    if nxt is None:
                        w.queue.put_nowait(None)
                        break
                    more = self._event_chunk(nxt, lsel is not None or fsel is not None, matches, encode)
                    if more:
                        chunk += more
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            w.close()
            waiter.cancel()
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    def _event_chunk(ev: Event, filtered: bool, matches: Callable[[dict[str, Any]], bool],
                     encode: Callable[..., bytes]) -> bytes | None:
        if not filtered:
            return encode(ev.type, ev.entry)
        now_ok = matches(ev.entry.obj)
        if ev.type == DELETED:
            return encode(DELETED, ev.entry) if now_ok else None
        was_ok = ev.prev is not None and matches(ev.prev.obj)
        if now_ok and was_ok:
            return encode("MODIFIED", ev.entry)
        if now_ok:
            return encode("ADDED", ev.entry)
        if was_ok:
            return encode(DELETED, ev.entry)
        return None
