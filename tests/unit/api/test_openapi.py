"""The OpenAPI v2/v3 documents: shape, what kubectl looks for, and stable hashes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tinykube.api import openapi, resources

PATCH_TYPES = {
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
}


def _v2() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(openapi.openapi_v2())
    return doc


def _v3(gv: str) -> dict[str, Any]:
    raw = openapi.openapi_v3_doc(gv)
    assert raw is not None
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for v in node.values():
            _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)


def test_v2_is_swagger_with_deployment_definition() -> None:
    doc = _v2()
    assert doc["swagger"] == "2.0"
    assert doc["info"] == {"title": "Kubernetes", "version": "v1.32.0"}
    dep = doc["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert dep["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    for name in (
        "io.k8s.api.autoscaling.v1.Scale",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.api.core.v1.PodList",
    ):
        assert name in doc["definitions"]


def test_v2_refs_resolve() -> None:
    doc = _v2()
    refs: set[str] = set()
    _refs(doc, refs)
    assert refs
    for ref in refs:
        assert ref.startswith("#/definitions/")
        assert ref.removeprefix("#/definitions/") in doc["definitions"], ref


def test_v2_paths() -> None:
    paths = _v2()["paths"]
    for p in (
        "/api/v1/namespaces/{namespace}/pods",
        "/api/v1/namespaces/{namespace}/pods/{name}",
        "/api/v1/namespaces/{namespace}/pods/{name}/status",
        "/api/v1/namespaces/{namespace}/pods/{name}/binding",
        "/api/v1/pods",
        "/api/v1/nodes",
        "/api/v1/nodes/{name}",
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/watch/namespaces/{namespace}/deployments",
    ):
        assert p in paths, p
    coll = paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert {"get", "post", "delete"} <= set(coll)
    assert coll["get"]["x-kubernetes-action"] == "list"
    assert coll["get"]["operationId"] == "listAppsV1NamespacedDeployment"
    assert coll["delete"]["x-kubernetes-action"] == "deletecollection"
    assert "watch" in {p["name"] for p in coll["get"]["parameters"]}
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {"get", "put", "patch", "delete"} <= set(item)
    assert item["get"]["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["get"]["responses"]["200"]["schema"]["$ref"] == "#/definitions/io.k8s.api.autoscaling.v1.Scale"
    assert scale["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    # Cluster-scoped resources have no namespace segment or parameter.
    node = paths["/api/v1/nodes/{name}"]
    assert "namespace" not in {p["name"] for p in node["parameters"]}
    # Namespaces declare no deletecollection (not in their verbs).
    assert "delete" not in paths["/api/v1/namespaces"]


def test_v2_deployment_patch_declares_field_validation() -> None:
    patch = _v2()["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-action"] == "patch"
    assert set(patch["consumes"]) == PATCH_TYPES
    params = {p["name"]: p for p in patch["parameters"]}
    assert params["fieldValidation"]["in"] == "query"
    assert params["fieldValidation"]["type"] == "string"
    assert {"dryRun", "fieldManager", "force", "body"} <= set(params)


def test_every_patch_operation_has_field_validation() -> None:
    # kubectl stops at the first PATCH operation tagged with the kind's GVK (map order): all must carry it.
    for doc in [_v2()] + [_v3(k) for k in openapi.v3_paths()]:
        for path, item in doc["paths"].items():
            for method in ("post", "put", "patch"):
                if method in item and "parameters" in item[method]:
                    names = {p["name"] for p in item[method]["parameters"]}
                    assert "fieldValidation" in names, (path, method)
            if "patch" in item:
                assert "parameters" in item["patch"], path


def test_v3_index_lists_group_versions() -> None:
    idx = openapi.openapi_v3_index()
    paths = idx["paths"]
    for gv in (
        "api/v1",
        "apis/apps/v1",
        "apis/coordination.k8s.io/v1",
        "apis/discovery.k8s.io/v1",
        "apis/events.k8s.io/v1",
    ):
        assert gv in paths
        url = paths[gv]["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{gv}?hash=")
        assert url.endswith(openapi.openapi_v3_hash(gv) or "missing")
    for key in paths:
        assert openapi.openapi_v3_doc(key) is not None


def test_v3_hash_is_stable() -> None:
    first = openapi.openapi_v3_index()
    again = openapi.openapi_v3_index()
    assert first == again
    h = openapi.openapi_v3_hash("apis/apps/v1")
    assert h and len(h) == 128 and all(c in "0123456789ABCDEF" for c in h)
    import hashlib

    assert hashlib.sha512(openapi.openapi_v3_doc("apis/apps/v1") or b"").hexdigest().upper() == h


def test_v3_unknown_gv() -> None:
    assert openapi.openapi_v3_doc("apis/nope/v1") is None
    assert openapi.openapi_v3_doc("apis/apps/v2") is None
    assert openapi.openapi_v3_hash("apis/nope/v1") is None


@pytest.mark.parametrize("gv", ["api/v1", "apis/apps/v1", "apis/events.k8s.io/v1", "apis", "api", "apis/apps"])
def test_v3_refs_resolve_inside_doc(gv: str) -> None:
    doc = _v3(gv)
    assert doc["openapi"] == "3.0.0"
    schemas = doc["components"]["schemas"]
    refs: set[str] = set()
    _refs(doc, refs)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_v3_apps_doc_supports_kubectl_explain() -> None:
    doc = _v3("apis/apps/v1")
    gvk = {"group": "apps", "kind": "Deployment", "version": "v1"}
    # explain: GVK from an operation on the list or item path ...
    coll = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert coll["get"]["x-kubernetes-group-version-kind"] == gvk
    # ... then the schema listing that GVK ...
    matches = [
        n for n, s in doc["components"]["schemas"].items() if gvk in s.get("x-kubernetes-group-version-kind", [])
    ]
    assert matches == ["io.k8s.api.apps.v1.Deployment"]
    # ... then fields through allOf-wrapped refs down to spec.strategy.
    dep = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    spec_ref = dep["properties"]["spec"]["allOf"][0]["$ref"]
    assert spec_ref == "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
    spec = doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert "description" in spec["properties"]["strategy"]
    assert "io.k8s.api.apps.v1.DeploymentStrategy" in spec["properties"]["strategy"]["allOf"][0]["$ref"]
    # Patch metadata stays beside the allOf for strategic merge.
    pod_spec = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]
    assert pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"] == "name"


def test_v3_patch_operation_shape() -> None:
    doc = _v3("apis/apps/v1")
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "kind": "Deployment", "version": "v1"}
    assert set(patch["requestBody"]["content"]) == PATCH_TYPES
    fv = next(p for p in patch["parameters"] if p["name"] == "fieldValidation")
    assert fv["in"] == "query"
    assert fv["schema"]["type"] == "string"
    ok = patch["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"}
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {p["name"] for p in item["parameters"]} >= {"name", "namespace"}


def test_v3_core_doc_has_every_core_resource() -> None:
    doc = _v3("api/v1")
    for r in resources.RESOURCES:
        if r.group:
            continue
        ns = "/namespaces/{namespace}" if r.namespaced else ""
        assert f"/api/v1{ns}/{r.plural}/{{name}}" in doc["paths"], r.plural
    # Only this group-version's paths.
    assert not any(p.startswith("/apis/") for p in doc["paths"])
