"""Namespace lifecycle: per-namespace defaults and deletion of a namespace's contents.

* Every namespace gets a ``default`` ServiceAccount and the ``kube-root-ca.crt``
  ConfigMap (what upstream's serviceaccounts controller and root-CA publisher do).
* A namespace being deleted (``deletionTimestamp`` set, phase ``Terminating``)
  has everything in it deleted; once nothing is left, the controller removes
  the ``kubernetes`` finalizer through ``namespaces/{name}/finalize`` and the API
  server completes the deletion. Objects that take time to go (pods with a
  grace period, objects with finalizers) make the sync requeue.
* A system namespace (``kube-node-lease`` is the one the API lets go) is created
  again once deleted, as kube-apiserver's system-namespaces controller does
  (upstream checks every minute; this reacts to the deletion).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ...api import errors
from ...api.resources import SYSTEM_NAMESPACES, Resource, lookup, namespaced_resources
from ...client.base import Client
from ...machinery.controller import stop_tasks
from ...machinery.queue import WorkQueue

log = logging.getLogger("tinykube.controllers.namespace")

NAMESPACES = lookup("", "v1", "namespaces")
SERVICEACCOUNTS = lookup("", "v1", "serviceaccounts")
CONFIGMAPS = lookup("", "v1", "configmaps")


class NamespaceController:
    def __init__(self, client: Client, ca_pem: str = "") -> None:
        self.client = client
        self.ca_pem = ca_pem
        self.queue = WorkQueue(base_delay=0.05, max_delay=5.0)
        self.cache: dict[str, dict[str, Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._watch_loop()))
        self._tasks.append(asyncio.create_task(self._worker()))

    async def stop(self) -> None:
        await self.queue.shutdown()
        await stop_tasks(self._tasks)

    async def _watch_loop(self) -> None:
        assert NAMESPACES is not None
        while True:
            try:
                async for etype, obj in self.client.watch(NAMESPACES, None, "0"):
                    name = obj["metadata"]["name"]
                    if etype == "DELETED":
                        self.cache.pop(name, None)
                        if name in SYSTEM_NAMESPACES:
                            self.queue.add(name)
                        continue
                    self.cache[name] = obj
                    self.queue.add(name)
            except asyncio.CancelledError:
                raise
            except Exception as ex:  # relist on any watch failure (410 included)
                log.debug("namespace watch ended: %s", ex)
                await asyncio.sleep(0.2)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            if key is None:
                return
            try:
                again = await self.sync(key)
                self.queue.forget(key)
                if again:
                    self.queue.add_after(key, 0.5)
            except asyncio.CancelledError:
                raise
            except Exception as ex:
                log.warning("namespace %s: %s", key, ex)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    async def sync(self, name: str) -> bool:
        """One step for a namespace; True means "come back soon"."""
        ns = self.cache.get(name)
        if ns is None:
            if name in SYSTEM_NAMESPACES:
                assert NAMESPACES is not None
                try:
                    await self.client.create(NAMESPACES, None, {"metadata": {"name": name}})
                except errors.ApiError as ex:
                    if ex.code != 409:
                        raise
            return False
        if ns["metadata"].get("deletionTimestamp"):
            return await self._delete_contents(ns)
        await self._ensure_defaults(name)
        return False

    async def _ensure_defaults(self, name: str) -> None:
        assert SERVICEACCOUNTS is not None and CONFIGMAPS is not None
        wanted: list[tuple[Resource, dict[str, Any]]] = [
            (SERVICEACCOUNTS, {"metadata": {"name": "default"}}),
            (CONFIGMAPS, {"metadata": {"name": "kube-root-ca.crt",
                                       "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be "
                                                       "used to verify the kube-apiserver when using internal endpoints "
                                                       "such as the internal service IP or kubernetes.default.svc. No "
                                                       "other usage is guaranteed across distributions of Kubernetes "
                                                       "clusters."}},
                          "data": {"ca.crt": self.ca_pem}}),
        ]
        for res, obj in wanted:
            try:
                await self.client.get(res, name, obj["metadata"]["name"])
            except errors.ApiError as ex:
                if ex.code != 404:
                    raise
                with contextlib.suppress(errors.ApiError):
                    await self.client.create(res, name, obj)

    async def _delete_contents(self, ns: dict[str, Any]) -> bool:
        name = ns["metadata"]["name"]
        remaining = 0
        for res in namespaced_resources():
            items, _ = await self.client.list(res, name)
            if not items:
                continue
            remaining += len(items)
            for it in items:
                if it["metadata"].get("deletionTimestamp"):
                    continue
                with contextlib.suppress(errors.ApiError):
                    await self.client.delete(res, name, it["metadata"]["name"], propagation="Background")
        if remaining:
            return True
        fins = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != "kubernetes"]
        assert NAMESPACES is not None
        try:
            cur = await self.client.get(NAMESPACES, None, name)
        except errors.ApiError as ex:
            if ex.code == 404:
                return False
            raise
        cur.setdefault("spec", {})["finalizers"] = fins
        await self.client.update(NAMESPACES, None, cur, subresource="finalize")
        return False
