"""Namespace controller: a deleted system namespace comes back, as kube-apiserver's system-namespaces controller
brings it back."""

from __future__ import annotations

from pathlib import Path

from tests.harness import control_plane, eventually

from tinykube.api import errors
from tinykube.api.resources import must
from tinykube.controllers.namespace.controller import NamespaceController

NAMESPACES = must("", "v1", "namespaces")


async def test_deleted_kube_node_lease_is_created_again(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        c = NamespaceController(cp.client)
        await c.start()
        try:
            before = await cp.client.get(NAMESPACES, None, "kube-node-lease")
            await cp.client.delete(NAMESPACES, None, "kube-node-lease")

            async def recreated() -> bool:
                try:
                    ns = await cp.client.get(NAMESPACES, None, "kube-node-lease")
                except errors.ApiError as ex:
                    assert ex.code == 404
                    return False
                return bool(ns["metadata"]["uid"] != before["metadata"]["uid"]
                            and (ns.get("status") or {}).get("phase") == "Active")

            await eventually(recreated, timeout=10, what="kube-node-lease created again")
            # An ordinary namespace stays deleted.
            await cp.client.create(NAMESPACES, None, {"metadata": {"name": "scratch"}})
            await cp.client.delete(NAMESPACES, None, "scratch")

            async def gone() -> bool:
                try:
                    await cp.client.get(NAMESPACES, None, "scratch")
                except errors.ApiError as ex:
                    return ex.code == 404
                return False

            await eventually(gone, timeout=10, what="scratch gone")
        finally:
            await c.stop()
