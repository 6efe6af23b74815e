"""The OpenAPI documents tinykube serves (``/openapi/v2`` and ``/openapi/v3``).

Clients learn what the server offers from these documents, and kubectl reads
them closely:

* ``kubectl explain`` (v3 by default) finds the GVK of a resource on the
  operations of its list/item path, then looks for the schema in
  ``components.schemas`` whose ``x-kubernetes-group-version-kind`` lists it;
* kubectl's server-side-validation probe walks every PATCH operation of a
  group-version and stops at the first one tagged with the kind's GVK: that
  operation must declare the ``fieldValidation`` query parameter, so every
  write operation here declares it;
* ``kubectl apply`` checks that the PATCH operation accepts
  ``application/strategic-merge-patch+json`` and then resolves
  ``x-kubernetes-patch-*`` metadata through ``components.schemas``.

Design: one neutral description of the API (:class:`_Op` values grouped by
path, built once from :data:`resources.RESOURCES`) is rendered twice, as a
Swagger 2.0 document and as one OpenAPI 3.0 document per group-version. Schemas
come straight from :func:`schema.definitions` (the official v1.32 data); each
document carries exactly the definitions reachable from its operations, with
``$ref`` rewritten for OpenAPI 3 (a ``$ref`` with sibling keywords is wrapped in
``allOf``, as kube-apiserver publishes it, because OpenAPI 3.0 ignores siblings
of ``$ref``). Every document is rendered once, serialised with sorted keys so
its bytes (and therefore the ``?hash=`` kubectl caches by) are stable, and
cached for the life of the process.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from tinykube.api import resources, schema
from tinykube.api.resources import Resource

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
STATUS = META + "Status"
DELETE_OPTIONS = META + "DeleteOptions"
WATCH_EVENT = META + "WatchEvent"
PATCH = META + "Patch"
SCALE = "io.k8s.api.autoscaling.v1.Scale"
BINDING = "io.k8s.api.core.v1.Binding"
EVICTION = "io.k8s.api.policy.v1.Eviction"

PATCH_TYPES = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
]
_JSON_TYPES = ["application/json", "application/yaml"]
_WATCH_TYPES = ["application/json", "application/yaml", "application/json;stream=watch"]
_TEXT = "string"  # pseudo definition name: a plain-text response body


# --------------------------------------------------------------------------------------------
# The neutral description
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    name: str
    where: str  # "path" or "query"
    description: str
    type: str = "string"
    required: bool = False


@dataclass
class _Op:
    method: str  # get, post, put, patch, delete
    action: str  # x-kubernetes-action
    operation_id: str
    description: str
    tag: str
    gvk: dict[str, str] | None
    params: list[_Param] = field(default_factory=list)
    body: str | None = None  # definition name of the request body
    body_required: bool = True
    consumes: list[str] = field(default_factory=lambda: ["*/*"])
    produces: list[str] = field(default_factory=lambda: list(_JSON_TYPES))
    responses: dict[str, str | None] = field(default_factory=dict)  # code -> definition name (or None)


@dataclass
class _Path:
    params: list[_Param]
    ops: list[_Op] = field(default_factory=list)


_PRETTY = _Param("pretty", "query", "If 'true', the output is indented for humans.")
_NAMESPACE = _Param("namespace", "path", "The namespace the object lives in.", required=True)

_DRY_RUN = _Param("dryRun", "query", "'All' runs every stage of the request except persisting the result.")
_FIELD_MANAGER = _Param(
    "fieldManager", "query", "Name of the actor making the change, recorded in managedFields. Required for apply."
)
_FIELD_VALIDATION = _Param(
    "fieldValidation",
    "query",
    "How to treat fields the schema does not know: 'Ignore' drops them, 'Warn' drops them and returns a warning "
    "for each, 'Strict' rejects the request with BadRequest.",
)
_FORCE = _Param("force", "query", "Apply only: take over fields owned by other managers.", "boolean")
_WRITE = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]

_LIST = [
    _Param("allowWatchBookmarks", "query", "Ask for BOOKMARK events on a watch.", "boolean"),
    _Param("continue", "query", "Continue token from a previous paginated list."),
    _Param("fieldSelector", "query", "Restrict the result to objects whose fields match this selector."),
    _Param("labelSelector", "query", "Restrict the result to objects whose labels match this selector."),
    _Param("limit", "query", "Maximum number of items in one page of the response.", "integer"),
    _Param("resourceVersion", "query", "Resource version the result must be at least as new as."),
    _Param("resourceVersionMatch", "query", "How resourceVersion is compared: 'NotOlderThan' or 'Exact'."),
    _Param("sendInitialEvents", "query", "With watch: start the stream with the current objects.", "boolean"),
    _Param("timeoutSeconds", "query", "End the list or watch call after this many seconds.", "integer"),
    _Param("watch", "query", "Stream changes instead of returning a list.", "boolean"),
]
_DELETE = [
    _DRY_RUN,
    _Param("gracePeriodSeconds", "query", "Seconds to wait before the object is deleted.", "integer"),
    _Param(
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "query",
        "Delete an object even if it cannot be read from storage.",
        "boolean",
    ),
    _Param("orphanDependents", "query", "Deprecated: use propagationPolicy.", "boolean"),
    _Param("propagationPolicy", "query", "Garbage collection of dependents: 'Orphan', 'Background' or 'Foreground'."),
]
_LOG = [
    _Param("container", "query", "Container to read the log of; optional when the pod has one container."),
    _Param("follow", "query", "Keep streaming the log as it grows.", "boolean"),
    _Param("insecureSkipTLSVerifyBackend", "query", "Do not verify the kubelet's serving certificate.", "boolean"),
    _Param("limitBytes", "query", "Stop after this many bytes.", "integer"),
    _Param("previous", "query", "Read the log of the previous, terminated container instance.", "boolean"),
    _Param("sinceSeconds", "query", "Only lines newer than this many seconds.", "integer"),
    _Param("sinceTime", "query", "Only lines newer than this RFC 3339 time."),
    _Param("stream", "query", "Which stream to return: 'All', 'Stdout' or 'Stderr'."),
    _Param("tailLines", "query", "Only this many lines from the end of the log.", "integer"),
    _Param("timestamps", "query", "Prefix every line with its RFC 3339 timestamp.", "boolean"),
]
_EXEC = [
    _Param("command", "query", "Command to run; repeat the parameter for each argument."),
    _Param("container", "query", "Container to run the command in."),
    _Param("stderr", "query", "Attach the command's standard error.", "boolean"),
    _Param("stdin", "query", "Attach the command's standard input.", "boolean"),
    _Param("stdout", "query", "Attach the command's standard output.", "boolean"),
    _Param("tty", "query", "Allocate a terminal for the command.", "boolean"),
]


def _group_word(group: str) -> str:
    """``apps`` -> ``Apps``, ``""`` -> ``Core``, ``coordination.k8s.io`` -> ``Coordination``."""
    if not group:
        return "Core"
    base = group.removesuffix(".k8s.io")
    return "".join(p[:1].upper() + p[1:] for p in base.replace("-", ".").split("."))


def _tag(group: str, version: str) -> str:
    word = _group_word(group)
    return f"{word[:1].lower()}{word[1:]}_{version}"


def _prefix(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def _gv_path(group: str, version: str) -> str:
    """Key of a group-version in the ``/openapi/v3`` index (``api/v1``, ``apis/apps/v1``)."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def _def(r: Resource) -> str:
    name = schema.definition_name(r.group, r.version, r.kind)
    if name is None:  # pragma: no cover - every served kind is in the published data
        raise KeyError(f"no schema for {r.group_version} {r.kind}")
    return name


def _list_def(r: Resource) -> str:
    return schema.definition_name(r.group, r.version, r.list_kind) or _def(r) + "List"


def _add(paths: dict[str, _Path], path: str, params: list[_Param], op: _Op) -> None:
    entry = paths.get(path)
    if entry is None:
        entry = paths[path] = _Path(list(params))
    entry.ops.append(op)


def _resource_paths(r: Resource, paths: dict[str, _Path]) -> None:
    """Add every operation of one served resource (and its subresources) to ``paths``."""
    base = _group_word(r.group) + r.version[:1].upper() + r.version[1:]  # AppsV1, CoreV1
    ns_word = "Namespaced" if r.namespaced else ""
    ns_seg = "/namespaces/{namespace}" if r.namespaced else ""
    prefix = _prefix(r.group, r.version)
    tag = _tag(r.group, r.version)
    kind_gvk = _gvk(r.group, r.version, r.kind)
    obj, lst = _def(r), _list_def(r)
    verbs = set(r.verbs)
    scope = [_NAMESPACE, _PRETTY] if r.namespaced else [_PRETTY]
    coll = f"{prefix}{ns_seg}/{r.plural}"
    item = f"{coll}/{{name}}"
    watches = f"{prefix}/watch{ns_seg}/{r.plural}"
    deleted = obj if r.kind == "Pod" else STATUS  # pods are deleted gracefully: the object comes back

    def name(kind: str) -> _Param:
        return _Param("name", "path", f"Name of the {kind}.", required=True)

    def add(path: str, path_params: list[_Param], method: str, action: str, op_id: str, desc: str, **kw: Any) -> None:
        kw.setdefault("gvk", kind_gvk)
        _add(paths, path, path_params, _Op(method, action, op_id, desc, tag, **kw))

    def ok(target: str, *codes: str) -> dict[str, str | None]:
        return {**{c: target for c in ("200", *codes)}, "401": None}

    one, kind = f"{ns_word}{r.kind}", r.kind
    watch_deprecated = "deprecated: use the 'watch' parameter with a list operation instead"
    if "list" in verbs:
        add(
            coll,
            scope,
            "get",
            "list",
            f"list{base}{one}",
            f"list or watch objects of kind {kind}",
            params=list(_LIST),
            produces=list(_WATCH_TYPES),
            responses=ok(lst),
        )
        if r.namespaced:
            add(
                f"{prefix}/{r.plural}",
                [_PRETTY],
                "get",
                "list",
                f"list{base}{kind}ForAllNamespaces",
                f"list or watch objects of kind {kind}",
                params=list(_LIST),
                produces=list(_WATCH_TYPES),
                responses=ok(lst),
            )
    if "create" in verbs:
        add(
            coll,
            scope,
            "post",
            "post",
            f"create{base}{one}",
            f"create a {kind}",
            params=list(_WRITE),
            body=obj,
            responses=ok(obj, "201", "202"),
        )
    if "deletecollection" in verbs:
        add(
            coll,
            scope,
            "delete",
            "deletecollection",
            f"delete{base}Collection{one}",
            f"delete collection of {kind}",
            params=[*_LIST, *_DELETE],
            body=DELETE_OPTIONS,
            body_required=False,
            responses=ok(STATUS),
        )
    item_scope = [name(kind), *scope]
    if "get" in verbs:
        add(item, item_scope, "get", "get", f"read{base}{one}", f"read the specified {kind}", responses=ok(obj))
    if "update" in verbs:
        add(
            item,
            item_scope,
            "put",
            "put",
            f"replace{base}{one}",
            f"replace the specified {kind}",
            params=list(_WRITE),
            body=obj,
            responses=ok(obj, "201"),
        )
    if "patch" in verbs:
        add(
            item,
            item_scope,
            "patch",
            "patch",
            f"patch{base}{one}",
            f"partially update the specified {kind}",
            params=[*_WRITE, _FORCE],
            body=PATCH,
            consumes=list(PATCH_TYPES),
            responses=ok(obj, "201"),
        )
    if "delete" in verbs:
        add(
            item,
            item_scope,
            "delete",
            "delete",
            f"delete{base}{one}",
            f"delete a {kind}",
            params=list(_DELETE),
            body=DELETE_OPTIONS,
            body_required=False,
            responses=ok(deleted, "202"),
        )
    if "watch" in verbs:  # the old /watch/ paths, which kube-apiserver still publishes
        add(
            watches,
            [*_LIST, *scope],
            "get",
            "watchlist",
            f"watch{base}{one}List",
            f"watch changes to a list of {kind}; {watch_deprecated}",
            produces=list(_WATCH_TYPES),
            responses=ok(WATCH_EVENT),
        )
        add(
            f"{watches}/{{name}}",
            [*_LIST, *item_scope],
            "get",
            "watch",
            f"watch{base}{one}",
            f"watch changes to one {kind}; {watch_deprecated} and a fieldSelector on metadata.name",
            produces=list(_WATCH_TYPES),
            responses=ok(WATCH_EVENT),
        )
        if r.namespaced:
            add(
                f"{prefix}/watch/{r.plural}",
                [*_LIST, _PRETTY],
                "get",
                "watchlist",
                f"watch{base}{kind}ListForAllNamespaces",
                f"watch changes to a list of {kind}; {watch_deprecated}",
                produces=list(_WATCH_TYPES),
                responses=ok(WATCH_EVENT),
            )

    for sub in r.subresources:
        path, sid = f"{item}/{sub}", f"{one}{sub[:1].upper()}{sub[1:]}"
        if sub in ("status", "scale"):
            target, gvk = (obj, kind_gvk) if sub == "status" else (SCALE, _gvk("autoscaling", "v1", "Scale"))
            sub_scope = [name(kind if sub == "status" else "Scale"), *scope]
            add(
                path,
                sub_scope,
                "get",
                "get",
                f"read{base}{sid}",
                f"read {sub} of the specified {kind}",
                gvk=gvk,
                responses=ok(target),
            )
            add(
                path,
                sub_scope,
                "put",
                "put",
                f"replace{base}{sid}",
                f"replace {sub} of the specified {kind}",
                gvk=gvk,
                params=list(_WRITE),
                body=target,
                responses=ok(target, "201"),
            )
            add(
                path,
                sub_scope,
                "patch",
                "patch",
                f"patch{base}{sid}",
                f"partially update {sub} of the specified {kind}",
                gvk=gvk,
                params=[*_WRITE, _FORCE],
                body=PATCH,
                consumes=list(PATCH_TYPES),
                responses=ok(target, "201"),
            )
        elif sub in ("binding", "eviction"):
            what, target, gvk = (
                ("Binding", BINDING, _gvk("", "v1", "Binding"))
                if sub == "binding"
                else ("Eviction", EVICTION, _gvk("policy", "v1", "Eviction"))
            )
            add(
                path,
                [name(what), *scope],
                "post",
                "post",
                f"create{base}{sid}",
                f"create {sub} of a {kind}",
                gvk=gvk,
                params=list(_WRITE),
                body=target,
                responses=ok(target, "201", "202"),
            )
        elif sub == "finalize":
            add(
                path,
                item_scope,
                "put",
                "put",
                f"replace{base}{sid}",
                f"replace finalize of the specified {kind}",
                params=list(_WRITE),
                body=obj,
                responses=ok(obj, "201"),
            )
        elif sub == "log":
            add(
                path,
                item_scope,
                "get",
                "get",
                f"read{base}{sid}",
                f"read log of the specified {kind}",
                params=list(_LOG),
                produces=["text/plain", *_JSON_TYPES],
                responses=ok(_TEXT),
            )
        elif sub == "exec":
            exec_scope = [*_EXEC, name(f"{kind}ExecOptions"), *scope[:-1]]  # no 'pretty' on a stream
            for method in ("get", "post"):
                add(
                    path,
                    exec_scope,
                    method,
                    "connect",
                    f"connect{base}{method.capitalize()}{sid}",
                    f"connect {method.upper()} requests to exec of {kind}",
                    gvk=_gvk(r.group, r.version, f"{kind}ExecOptions"),
                    produces=["*/*"],
                    responses=ok(_TEXT),
                )


def _discovery_paths(paths: dict[str, _Path], group: str, version: str) -> None:
    """``GET /apis/<group>/<version>/``: the APIResourceList of a group-version."""
    gw, ver = _group_word(group), version[:1].upper() + version[1:]
    _add(
        paths,
        _prefix(group, version) + "/",
        [],
        _Op(
            "get",
            "",
            f"get{gw}{ver}APIResources",
            "get available resources",
            _tag(group, version),
            None,
            consumes=list(_JSON_TYPES),
            responses={"200": META + "APIResourceList", "401": None},
        ),
    )


@functools.cache
def _model() -> dict[str, dict[str, _Path]]:
    """Every served path, grouped by the ``/openapi/v3`` key of the document that holds it."""
    docs: dict[str, dict[str, _Path]] = {}
    for group, rs in resources.groups().items():
        for r in rs:
            key = _gv_path(r.group, r.version)
            if key not in docs:
                docs[key] = {}
                _discovery_paths(docs[key], r.group, r.version)
            _resource_paths(r, docs[key])
        if group and rs:
            gp: dict[str, _Path] = docs.setdefault(f"apis/{group}", {})
            _add(
                gp,
                f"/apis/{group}/",
                [],
                _Op(
                    "get",
                    "",
                    f"get{_group_word(group)}APIGroup",
                    "get information of a group",
                    group.split(".")[0],
                    None,
                    consumes=list(_JSON_TYPES),
                    responses={"200": META + "APIGroup", "401": None},
                ),
            )
    docs["api"] = {}
    _add(
        docs["api"],
        "/api/",
        [],
        _Op(
            "get",
            "",
            "getCoreAPIVersions",
            "get available API versions",
            "core",
            None,
            consumes=list(_JSON_TYPES),
            responses={"200": META + "APIVersions", "401": None},
        ),
    )
    docs["apis"] = {}
    _add(
        docs["apis"],
        "/apis/",
        [],
        _Op(
            "get",
            "",
            "getAPIVersions",
            "get available API versions",
            "apis",
            None,
            consumes=list(_JSON_TYPES),
            responses={"200": META + "APIGroupList", "401": None},
        ),
    )
    return docs


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref.rsplit("/", 1)[-1])
        for v in node.values():
            if isinstance(v, (dict, list)):
                _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)


@functools.cache
def _direct_refs(name: str) -> frozenset[str]:
    out: set[str] = set()
    _refs(schema.definitions().get(name, {}), out)
    return frozenset(out)


def _closure(roots: set[str]) -> list[str]:
    """Names of the given definitions and of everything they reference, sorted."""
    defs = schema.definitions()
    seen: set[str] = set()
    todo = [n for n in roots if n in defs]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(m for m in _direct_refs(n) if m not in seen and m in defs)
    return sorted(seen)


def _op_defs(paths: dict[str, _Path]) -> set[str]:
    out: set[str] = set()
    for p in paths.values():
        for o in p.ops:
            if o.body:
                out.add(o.body)
            out.update(d for d in o.responses.values() if d and d != _TEXT)
    return out


def _to_v3(node: Any) -> Any:
    """Rewrite a v2 schema for OpenAPI 3: component refs, and ``allOf`` around refs with siblings."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = {"$ref": "#/components/schemas/" + ref.rsplit("/", 1)[-1]}
            if len(node) == 1:
                return target
            out: dict[str, Any] = {"allOf": [target]}
            out.update((k, _to_v3(v)) for k, v in node.items() if k != "$ref")
            return out
        return {k: _to_v3(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_to_v3(v) for v in node]
    return node


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _v2_param(p: _Param) -> dict[str, Any]:
    d: dict[str, Any] = {"description": p.description, "in": p.where, "name": p.name, "type": p.type}
    if p.required:
        d["required"] = True
    d["uniqueItems"] = True
    return d


def _v3_param(p: _Param) -> dict[str, Any]:
    d: dict[str, Any] = {"description": p.description, "in": p.where, "name": p.name}
    if p.required:
        d["required"] = True
    d["schema"] = {"type": p.type, "uniqueItems": True}
    return d


def _resp_desc(code: str) -> str:
    return {"200": "OK", "201": "Created", "202": "Accepted", "401": "Unauthorized"}.get(code, "")


def _v2_op(o: _Op) -> dict[str, Any]:
    d: dict[str, Any] = {
        "consumes": o.consumes,
        "description": o.description,
        "operationId": o.operation_id,
        "produces": o.produces,
        "schemes": ["https"],
        "tags": [o.tag],
    }
    params: list[dict[str, Any]] = []
    if o.body:
        params.append(
            {"in": "body", "name": "body", "required": o.body_required, "schema": {"$ref": "#/definitions/" + o.body}}
        )
    params.extend(_v2_param(p) for p in o.params)
    if params:
        d["parameters"] = params
    responses: dict[str, Any] = {}
    for code, target in o.responses.items():
        r: dict[str, Any] = {"description": _resp_desc(code)}
        if target == _TEXT:
            r["schema"] = {"type": "string"}
        elif target:
            r["schema"] = {"$ref": "#/definitions/" + target}
        responses[code] = r
    d["responses"] = responses
    if o.action:
        d["x-kubernetes-action"] = o.action
    if o.gvk is not None:
        d["x-kubernetes-group-version-kind"] = dict(o.gvk)
    return d


def _v3_op(o: _Op) -> dict[str, Any]:
    d: dict[str, Any] = {"description": o.description, "operationId": o.operation_id}
    if o.params:
        d["parameters"] = [_v3_param(p) for p in o.params]
    if o.body:
        ref = {"$ref": "#/components/schemas/" + o.body}
        d["requestBody"] = {"content": {ct: {"schema": dict(ref)} for ct in o.consumes}}
        if o.body_required:
            d["requestBody"]["required"] = True
    responses: dict[str, Any] = {}
    for code, target in o.responses.items():
        r: dict[str, Any] = {"description": _resp_desc(code)}
        if target == _TEXT:
            r["content"] = {ct: {"schema": {"type": "string"}} for ct in o.produces}
        elif target:
            r["content"] = {ct: {"schema": {"$ref": "#/components/schemas/" + target}} for ct in o.produces}
        responses[code] = r
    d["responses"] = responses
    d["tags"] = [o.tag]
    if o.action:
        d["x-kubernetes-action"] = o.action
    if o.gvk is not None:
        d["x-kubernetes-group-version-kind"] = dict(o.gvk)
    return d


def _dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


_INFO = {"title": "Kubernetes", "version": schema.K8S_SCHEMA_VERSION}


@functools.cache
def openapi_v2() -> bytes:
    """The Swagger 2.0 document served at ``/openapi/v2`` (JSON)."""
    all_paths: dict[str, _Path] = {}
    for paths in _model().values():
        all_paths.update(paths)
    roots = _op_defs(all_paths)
    roots.update(_def(r) for r in resources.RESOURCES)
    roots.update(_list_def(r) for r in resources.RESOURCES)
    defs = schema.definitions()
    rendered: dict[str, Any] = {}
    for path, entry in all_paths.items():
        item: dict[str, Any] = {o.method: _v2_op(o) for o in entry.ops}
        if entry.params:
            item["parameters"] = [_v2_param(p) for p in entry.params]
        rendered[path] = item
    doc = {
        "swagger": "2.0",
        "info": dict(_INFO),
        "paths": rendered,
        "definitions": {n: defs[n] for n in _closure(roots)},
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
            },
        },
        "security": [{"BearerToken": []}],
    }
    return _dumps(doc)


@functools.cache
def _v3_docs() -> dict[str, bytes]:
    defs = schema.definitions()
    out: dict[str, bytes] = {}
    for key, paths in _model().items():
        roots = _op_defs(paths)
        rendered: dict[str, Any] = {}
        for path, entry in paths.items():
            item: dict[str, Any] = {o.method: _v3_op(o) for o in entry.ops}
            if entry.params:
                item["parameters"] = [_v3_param(p) for p in entry.params]
            rendered[path] = item
        doc = {
            "openapi": "3.0.0",
            "info": dict(_INFO),
            "paths": rendered,
            "components": {
                "schemas": {n: _to_v3(defs[n]) for n in _closure(roots)},
                "securitySchemes": {
                    "BearerToken": {
                        "description": "Bearer Token authentication",
                        "in": "header",
                        "name": "authorization",
                        "type": "apiKey",
                    },
                },
            },
            "security": [{"BearerToken": []}],
        }
        out[key] = _dumps(doc)
    return out


def openapi_v3_hash(gv_path: str) -> str | None:
    """The content hash of one v3 document (what ``?hash=`` carries), None for an unknown path."""
    return _v3_hashes().get(gv_path.strip("/"))


@functools.cache
def _v3_hashes() -> dict[str, str]:
    return {k: hashlib.sha512(v).hexdigest().upper() for k, v in _v3_docs().items()}


@functools.cache
def _v3_index() -> bytes:
    hashes = _v3_hashes()
    paths = {k: {"serverRelativeURL": f"/openapi/v3/{k}?hash={hashes[k]}"} for k in sorted(hashes)}
    return orjson.dumps({"paths": paths})


def openapi_v3_index() -> dict[str, Any]:
    """The ``/openapi/v3`` discovery document: every document's path and hashed URL."""
    # A fresh copy each call so callers may not corrupt the cache; serialising the cached
    # bytes again is cheap (a dozen entries).
    parsed: dict[str, Any] = orjson.loads(_v3_index())
    return parsed


def openapi_v3_index_bytes() -> bytes:
    """:func:`openapi_v3_index` already serialised (JSON)."""
    return _v3_index()


def openapi_v3_doc(gv_path: str) -> bytes | None:
    """The OpenAPI 3.0 document of one index entry (``api/v1``, ``apis/apps/v1``, ``apis``...), JSON."""
    return _v3_docs().get(gv_path.strip("/"))


def v3_paths() -> list[str]:
    """Keys of the ``/openapi/v3`` index, sorted."""
    return sorted(_v3_docs())
