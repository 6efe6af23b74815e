"""The one client interface components program against.

Two transports implement it: :class:`~tinykube.client.local.LocalClient` calls the
API server's registry in-process (same admission path as HTTP, no sockets), and
:class:`~tinykube.client.http.HttpClient` speaks HTTPS to a remote API server.
Controllers, the scheduler and agents take a ``Client`` and never touch the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from ..api.resources import Resource

Obj = dict[str, Any]


def delete_options(propagation: str | None, grace_period: int | None,
                   preconditions: dict[str, str] | None) -> dict[str, Any]:
    """The DeleteOptions body both transports send."""
    opts: dict[str, Any] = {}
    if preconditions:
        opts["preconditions"] = preconditions
    if propagation:
        opts["propagationPolicy"] = propagation
    if grace_period is not None:
        opts["gracePeriodSeconds"] = grace_period
    return opts


class Client(Protocol):
    """``readonly=True`` (list, watch, and the results of create, update, patch): the caller promises never to
    change the returned objects, so the in-process transport may hand out the store's own instead of a copy
    (see :mod:`tinykube.client.readonly`)."""

    async def get(self, res: Resource, ns: str | None, name: str) -> Obj: ...

    async def list(self, res: Resource, ns: str | None = None, label_selector: str = "",
                   field_selector: str = "", readonly: bool = False) -> tuple[list[Obj], str]: ...

    async def create(self, res: Resource, ns: str | None, obj: Obj, readonly: bool = False) -> Obj: ...

    async def update(self, res: Resource, ns: str | None, obj: Obj, subresource: str = "",
                     readonly: bool = False) -> Obj: ...

    async def patch(self, res: Resource, ns: str | None, name: str, body: Any, patch_type: str = "merge",
                    subresource: str = "", readonly: bool = False) -> Obj: ...

    async def delete(self, res: Resource, ns: str | None, name: str, propagation: str | None = None,
                     grace_period: int | None = None, preconditions: dict[str, str] | None = None) -> None: ...

    async def delete_collection(self, res: Resource, ns: str | None, label_selector: str = "") -> None: ...

    async def bind(self, ns: str, pod: str, node: str) -> None: ...

    def watch(self, res: Resource, ns: str | None, resource_version: str,
              readonly: bool = False) -> AsyncIterator[tuple[str, Obj]]: ...
