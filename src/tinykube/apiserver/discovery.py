"""Discovery documents: legacy (/api, /apis, /api/v1, /apis/G/V) and aggregated (apidiscovery.k8s.io/v2).

All are computed once from the resource table and served as bytes.
kubectl 1.32 asks for the aggregated form first (one request for everything),
then falls back to the legacy per-group-version lists.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from .. import __version__
from ..api.resources import RESOURCES, Resource, groups

K8S_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0+tinykube", "gitCommit": "tinykube-" + __version__,
               "gitTreeState": "clean", "buildDate": "2026-11-01T00:00:00Z", "goVersion": "python",
               "compiler": "cpython", "platform": "linux/amd64"}

AGGREGATED_CT_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_CT_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

_SUB_KINDS = {"scale": ("autoscaling", "v1", "Scale"), "binding": ("", "v1", "Binding"),
              "eviction": ("policy", "v1", "Eviction"), "exec": ("", "v1", "PodExecOptions"),
              "attach": ("", "v1", "PodAttachOptions"), "portforward": ("", "v1", "PodPortForwardOptions")}
_SUB_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"], "binding": ["create"],
              "finalize": ["update"], "eviction": ["create"], "log": ["get"], "exec": ["create", "get"],
              "attach": ["create", "get"], "portforward": ["create", "get"]}
SERVED_SUBRESOURCES = ("status", "scale", "binding", "finalize", "log", "exec", "attach", "portforward")


def _subresources(r: Resource) -> list[str]:
    return [s for s in r.subresources if s in SERVED_SUBRESOURCES]


def _resource_entries(r: Resource) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    e: dict[str, Any] = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                         "verbs": list(r.verbs), "storageVersionHash": ""}
    if r.short_names:
        e["shortNames"] = list(r.short_names)
    if r.categories:
        e["categories"] = list(r.categories)
    out.append(e)
    for s in _subresources(r):
        g, v, k = _SUB_KINDS.get(s, (r.group, r.version, r.kind))
        se: dict[str, Any] = {"name": f"{r.plural}/{s}", "singularName": "", "namespaced": r.namespaced, "kind": k,
                              "verbs": _SUB_VERBS[s]}
        if s in _SUB_KINDS:
            se["group"], se["version"] = g, v
        out.append(se)
    return out


@functools.cache
def resource_list(group: str, version: str) -> bytes | None:
    rs = [r for r in RESOURCES if r.group == group and r.version == version]
    if not rs:
        return None
    gv = f"{group}/{version}" if group else version
    return orjson.dumps({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                         "resources": [e for r in rs for e in _resource_entries(r)]})


@functools.cache
def api_versions(server_address: str) -> bytes:
    return orjson.dumps({"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})


def _group_entry(group: str, rs: list[Resource]) -> dict[str, Any]:
    versions = sorted({r.version for r in rs})
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


@functools.cache
def api_group_list() -> bytes:
    return orjson.dumps({"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [_group_entry(g, rs) for g, rs in groups().items() if g and rs]})


@functools.cache
def api_group(group: str) -> bytes | None:
    rs = groups().get(group)
    if not group or not rs:
        return None
    e = _group_entry(group, rs)
    e.update({"kind": "APIGroup", "apiVersion": "v1"})
    return orjson.dumps(e)


def _aggregated_resource(r: Resource) -> dict[str, Any]:
    e: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        e["shortNames"] = list(r.short_names)
    if r.categories:
        e["categories"] = list(r.categories)
    subs = []
    for s in _subresources(r):
        g, v, k = _SUB_KINDS.get(s, (r.group, r.version, r.kind))
        subs.append({"subresource": s, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": _SUB_VERBS[s]})
    if subs:
        e["subresources"] = subs
    return e


@functools.cache
def aggregated(core: bool, version: str = "v2") -> bytes:
    items = []
    for g, rs in groups().items():
        if not rs or (g == "") != core:
            continue
        versions = []
        for v in sorted({r.version for r in rs}):
            versions.append({"version": v, "resources": [_aggregated_resource(r) for r in rs if r.version == v],
                             "freshness": "Current"})
        items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": versions})
    return orjson.dumps({"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
                         "metadata": {}, "items": items})


@functools.cache
def version_doc() -> bytes:
    return orjson.dumps(K8S_VERSION)
