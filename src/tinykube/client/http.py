"""HTTPS transport (httpx) for components outside the server process, the CLI and tests."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from ..api import errors
from ..api.resources import Resource
from .base import Obj, delete_options

_PATCH_CT = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
             "strategic": "application/strategic-merge-patch+json"}


def _path(res: Resource, ns: str | None, name: str | None = None, sub: str = "") -> str:
    base = f"/apis/{res.group}/{res.version}" if res.group else "/api/v1"
    if res.namespaced and ns:
        base += f"/namespaces/{ns}"
    base += f"/{res.plural}"
    if name:
        base += f"/{name}"
    if sub:
        base += f"/{sub}"
    return base


class HttpClient:
    def __init__(self, server: str, token: str, ca_pem: bytes | None = None, user_agent: str = "tinykube") -> None:
        ctx = ssl.create_default_context(cadata=ca_pem.decode()) if ca_pem else ssl.create_default_context()
        self.http = httpx.AsyncClient(base_url=server, verify=ctx, timeout=httpx.Timeout(30.0, read=None),
                                      headers={"Authorization": f"Bearer {token}", "User-Agent": user_agent})

    async def close(self) -> None:
        await self.http.aclose()

    @staticmethod
    def _check(r: httpx.Response) -> Any:
        if r.status_code >= 400:
            try:
                st = orjson.loads(r.content)
                raise errors.ApiError(r.status_code, st.get("reason", ""), st.get("message", ""), st.get("details"))
            except orjson.JSONDecodeError:
                raise errors.ApiError(r.status_code, "Unknown", r.text) from None
        return orjson.loads(r.content) if r.content else None

    async def get(self, res: Resource, ns: str | None, name: str) -> Obj:
        result: Obj = self._check(await self.http.get(_path(res, ns, name)))
        return result

    async def list(self, res: Resource, ns: str | None = None, label_selector: str = "",
                   field_selector: str = "", readonly: bool = False) -> tuple[list[Obj], str]:
        params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        body = self._check(await self.http.get(_path(res, ns), params=params))
        return body["items"], body["metadata"]["resourceVersion"]

    async def create(self, res: Resource, ns: str | None, obj: Obj, readonly: bool = False) -> Obj:
        result: Obj = self._check(await self.http.post(_path(res, ns), content=orjson.dumps(obj),
                                                       headers={"Content-Type": "application/json"}))
        return result

    async def update(self, res: Resource, ns: str | None, obj: Obj, subresource: str = "",
                     readonly: bool = False) -> Obj:
        result: Obj = self._check(await self.http.put(_path(res, ns, obj["metadata"]["name"], subresource),
                                                      content=orjson.dumps(obj),
                                                      headers={"Content-Type": "application/json"}))
        return result

    async def patch(self, res: Resource, ns: str | None, name: str, body: Any, patch_type: str = "merge",
                    subresource: str = "", readonly: bool = False) -> Obj:
        result: Obj = self._check(await self.http.patch(_path(res, ns, name, subresource), content=orjson.dumps(body),
                                                        headers={"Content-Type": _PATCH_CT[patch_type]}))
        return result

    async def delete(self, res: Resource, ns: str | None, name: str, propagation: str | None = None,
                     grace_period: int | None = None, preconditions: dict[str, str] | None = None) -> None:
        opts = delete_options(propagation, grace_period, preconditions)
        self._check(await self.http.request("DELETE", _path(res, ns, name), content=orjson.dumps(opts),
                                            headers={"Content-Type": "application/json"}))

    async def delete_collection(self, res: Resource, ns: str | None, label_selector: str = "") -> None:
        params = {"labelSelector": label_selector} if label_selector else {}
        self._check(await self.http.request("DELETE", _path(res, ns), params=params))

    async def bind(self, ns: str, pod: str, node: str) -> None:
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        self._check(await self.http.post(f"/api/v1/namespaces/{ns}/pods/{pod}/binding", content=orjson.dumps(body),
                                         headers={"Content-Type": "application/json"}))

    async def watch(self, res: Resource, ns: str | None, resource_version: str,
                    readonly: bool = False) -> AsyncIterator[tuple[str, Obj]]:
        params = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true"}
        async with self.http.stream("GET", _path(res, ns), params=params) as r:
            if r.status_code >= 400:
                await r.aread()
                self._check(r)
            async for line in r.aiter_lines():
                if not line:
                    continue
                ev = orjson.loads(line)
                if ev["type"] == "ERROR":
                    st = ev["object"]
                    raise errors.ApiError(st.get("code", 500), st.get("reason", ""), st.get("message", ""))
                yield ev["type"], ev["object"]
