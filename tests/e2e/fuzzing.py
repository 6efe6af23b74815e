"""Hypothesis strategies and a request runner for fuzzing the API server over HTTPS.

The strategies build raw HTTP requests (method, request-target, headers, body) aimed at every
route the server has and at many it has not: real and bogus paths, garbage query parameters,
Kubernetes-shaped objects with fields of the wrong type, broken JSON/YAML/UTF-8, protobuf-looking
bytes, every patch content type with random patch documents. :class:`Runner` sends them over one
keep-alive ``httpx.Client`` and checks each answer: never a 5xx, never a hang, and every 4xx carries
a ``Status`` object.
"""

from __future__ import annotations

import base64
import collections
import copy
import json
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import yaml
from hypothesis import strategies as st

from tinykube.api.resources import RESOURCES, Resource

# -- the world the fuzzer aims at -------------------------------------------------------------------------------

FUZZ_NS = "fuzz"
NAMESPACES = ["default", FUZZ_NS, "kube-system", "kube-public", "kube-node-lease"]
# Names of objects that exist (seeded, and re-created by the fuzzer itself) so writes hit real objects.
LIVE_NAMES = ["fz-0", "fz-1", "fz-2"]
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Upstream forbids deleting default/kube-system/kube-public (NamespaceLifecycle admission) but lets
# kube-node-lease go (its controller re-creates it later); the fuzzer never deletes that one so the
# "built-in namespaces survive" check holds.
UNDELETABLE_BY_FUZZER = ("kube-node-lease",)

SUBRESOURCES = ["status", "scale", "binding", "finalize", "eviction", "log", "exec", "proxy", "bogus", "STATUS"]
PATCH_CTS = ["application/json-patch+json", "application/merge-patch+json",
             "application/strategic-merge-patch+json", "application/apply-patch+yaml"]
BODY_CTS = ["application/json", "application/json; charset=utf-8", "application/yaml",
            "application/vnd.kubernetes.protobuf", "text/plain", "", "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x", "application/cbor", "application/apply-patch+cbor",
            "*/*", "application/json;;;=", "APPLICATION/JSON", "application/xml", "garbage", *PATCH_CTS]
ACCEPTS = ["application/json", "*/*", "", "application/json;as=Table;v=v1;g=meta.k8s.io",
           "application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json",
           "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
           "application/vnd.kubernetes.protobuf", "text/html", "application/yaml", "garbage/;;", "as=Table"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"]

SPECIAL_STRINGS = ["", " ", "..", ".", "../..", "/", "%", "%00", "\x00", "\n", "null", "true", "0", "-1",
                   "a" * 64, "A-Z", "ünïcödé", "☃", "\ud7ff", "💥", "a/b", "a b", "~1", "~0", "$patch", "'",
                   '"', "\\", "${x}", "{{x}}", "<script>", "1e999", "NaN", "0x10", "09", "-", "_", "a.b.c"]
HUGE_INTS = [2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30), 10**400]


def resource_base(r: Resource) -> str:
    return "/api/v1" if r.group == "" else f"/apis/{r.group}/{r.version}"


def collection_path(r: Resource, ns: str | None) -> str:
    if r.namespaced and ns is not None:
        return f"{resource_base(r)}/namespaces/{quote(ns, safe='')}/{r.plural}"
    return f"{resource_base(r)}/{r.plural}"


def item_path(r: Resource, ns: str | None, name: str) -> str:
    return f"{collection_path(r, ns)}/{quote(name, safe='')}"


# -- valid objects, the seeds of mutation -----------------------------------------------------------------------

def _pod_spec() -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                            "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "b"}]}]}


def template(r: Resource, name: str, ns: str | None) -> dict[str, Any]:
    """A valid object of this resource's kind."""
    md: dict[str, Any] = {"name": name, "labels": {"app": "fuzz", "tier": name}}
    if r.namespaced and ns is not None:
        md["namespace"] = ns
    o: dict[str, Any] = {"apiVersion": r.api_version, "kind": r.kind, "metadata": md}
    k = (r.group, r.kind)
    sel = {"matchLabels": {"app": "fuzz"}}
    tmpl = {"metadata": {"labels": {"app": "fuzz"}}, "spec": _pod_spec()}
    if k == ("", "Pod"):
        o["spec"] = _pod_spec()
    elif k == ("", "Service"):
        o["spec"] = {"selector": {"app": "fuzz"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    elif k == ("", "Endpoints"):
        o["subsets"] = [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]
    elif k == ("", "ConfigMap"):
        o["data"] = {"a": "b", "key.txt": "line1\nline2"}
    elif k == ("", "Secret"):
        o["type"] = "Opaque"
        o["data"] = {"password": base64.b64encode(b"hunter2").decode()}
    elif k == ("", "Event"):
        o["involvedObject"] = {"kind": "Pod", "name": "fz-0", "namespace": ns or "default", "apiVersion": "v1"}
        o["reason"] = "Fuzzed"
        o["message"] = "fuzz event"
        o["type"] = "Normal"
        o["firstTimestamp"] = "2024-01-01T00:00:00Z"
        o["lastTimestamp"] = "2024-01-01T00:00:00Z"
        o["count"] = 1
        o["source"] = {"component": "fuzzer"}
    elif k == ("", "Node"):
        o["spec"] = {"podCIDR": "10.244.0.0/24"}
    elif k == ("apps", "Deployment"):
        o["spec"] = {"replicas": 1, "selector": sel, "template": tmpl}
    elif k == ("apps", "ReplicaSet"):
        o["spec"] = {"replicas": 1, "selector": sel, "template": tmpl}
    elif k == ("coordination.k8s.io", "Lease"):
        o["spec"] = {"holderIdentity": "fuzzer", "leaseDurationSeconds": 15}
    elif k == ("discovery.k8s.io", "EndpointSlice"):
        o["addressType"] = "IPv4"
        o["endpoints"] = [{"addresses": ["10.1.2.3"], "conditions": {"ready": True}}]
        o["ports"] = [{"name": "http", "port": 80, "protocol": "TCP"}]
    elif k == ("events.k8s.io", "Event"):
        o["eventTime"] = "2024-01-01T00:00:00.000000Z"
        o["reportingController"] = "fuzz.example.com/fuzzer"
        o["reportingInstance"] = "fuzzer-1"
        o["action"] = "Fuzz"
        o["reason"] = "Fuzzed"
        o["note"] = "fuzz"
        o["type"] = "Normal"
        o["regarding"] = {"kind": "Pod", "name": "fz-0", "namespace": ns or "default", "apiVersion": "v1"}
    return o


# -- strategies -------------------------------------------------------------------------------------------------

resources = st.sampled_from(RESOURCES)
# Everything but the last resource (events.k8s.io, a view of core events) is stored under its own name.
namespaced = st.sampled_from([r for r in RESOURCES if r.namespaced])


@st.composite
def huge_string(draw: st.DrawFn) -> str:
    ch = draw(st.sampled_from(["a", "é", "\x00", "-", "💥", "ab."]))
    return ch * draw(st.sampled_from([254, 256, 1024, 70_000]))


short_text = st.text(max_size=12)
weird_strings = st.one_of(st.sampled_from(SPECIAL_STRINGS), short_text, huge_string())
dns_names = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,12}[a-z0-9])?\Z")
names = st.one_of(st.sampled_from(LIVE_NAMES), st.sampled_from(LIVE_NAMES), dns_names,
                  st.sampled_from(["", "..", ".", "UPPER", "a_b", "x" * 254, "x" * 300, "%2F", "a%2Fb",
                                   "default", "kube-system", "a.b", "-a", "a-"]), short_text)
namespaces = st.one_of(st.sampled_from(NAMESPACES), st.sampled_from([FUZZ_NS, "default"]),
                       st.sampled_from(["nope", "", "..", "UPPER", "x" * 100]), dns_names)

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**40), max_value=2**40),
                    st.sampled_from(HUGE_INTS), st.floats(allow_nan=False, allow_infinity=False), short_text,
                    st.sampled_from(SPECIAL_STRINGS))
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                            st.dictionaries(short_text, kids, max_size=4)),
                           max_leaves=12)


@st.composite
def deep_nesting(draw: st.DrawFn) -> Any:
    depth = draw(st.sampled_from([50, 200, 900, 3000]))
    v: Any = draw(scalars)
    for i in range(depth):
        v = [v] if i % 2 else {"a": v}
    return v


any_value = st.one_of(json_values, json_values, st.sampled_from([[], {}, "", 0, None, True]), huge_string(),
                      deep_nesting())


def dumps(v: Any) -> bytes:
    """JSON text of anything hypothesis builds (big ints included; deep nests via manual encoding)."""
    try:
        return json.dumps(v).encode()
    except (RecursionError, ValueError):
        return _dumps_iter(v)


def _dumps_iter(v: Any) -> bytes:
    out: list[str] = []
    stack: list[Any] = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, _Raw):
            out.append(x.s)
        elif isinstance(x, dict):
            out.append("{")
            items = list(x.items())
            parts: list[Any] = []
            for i, (k, val) in enumerate(items):
                parts.append(_Raw(("," if i else "") + json.dumps(str(k)) + ":"))
                parts.append(val)
            parts.append(_Raw("}"))
            stack.extend(reversed(parts))
        elif isinstance(x, list):
            out.append("[")
            parts = []
            for i, val in enumerate(x):
                if i:
                    parts.append(_Raw(","))
                parts.append(val)
            parts.append(_Raw("]"))
            stack.extend(reversed(parts))
        else:
            out.append(json.dumps(x))
    return "".join(out).encode()


@dataclass
class _Raw:
    s: str


def _paths(o: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [prefix]
    if len(prefix) >= 10:
        return out
    if isinstance(o, dict):
        for k, v in o.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _set(o: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    cur = o
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return o


def _delete(o: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return o
    cur = o
    for p in path[:-1]:
        cur = cur[p]
    del cur[path[-1]]
    return o


INVALID_LABEL_KEYS = ["", "-a", "a-", "A/b/c", "/x", "x/", "a" * 64, "example.com/" + "a" * 64,
                      "UPPER.example.com/x", "a b", "ü", "kubernetes.io/", "_x", ".x"]
METADATA_MUTATIONS: list[tuple[str, Any]] = [
    ("metadata", []), ("metadata", "x"), ("metadata", 5), ("metadata", None),
]


@st.composite
def mutated_object(draw: st.DrawFn, r: Resource | None = None, name: str | None = None,
                   ns: str | None = None) -> Any:
    """A Kubernetes-shaped object with a few fields replaced by wrong types or garbage."""
    r = r or draw(resources)
    obj = template(r, name if name is not None else draw(names), ns if ns is not None else FUZZ_NS)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 9))
        paths = _paths(obj)
        if kind <= 3:
            # Any existing field (or the whole object) gets a random value.
            p = draw(st.sampled_from(paths))
            obj = _set(obj, p, draw(any_value))
        elif kind == 4:
            p = draw(st.sampled_from(paths))
            obj = _delete(obj, p)
        elif kind == 5 and isinstance(obj, dict):
            field_ = draw(st.sampled_from(["metadata", "spec", "status", "kind", "apiVersion", "data", "type",
                                           "subsets", "endpoints", "ports", "stringData", "immutable", "bogus"]))
            obj[field_] = draw(any_value)
        elif kind == 6 and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            md = obj["metadata"]
            k = draw(st.sampled_from(["labels", "annotations", "finalizers", "ownerReferences", "managedFields",
                                      "resourceVersion", "generateName", "namespace", "name", "uid",
                                      "creationTimestamp", "deletionTimestamp", "generation",
                                      "deletionGracePeriodSeconds", "selfLink"]))
            if k in ("labels", "annotations"):
                md[k] = draw(st.one_of(
                    st.dictionaries(st.one_of(st.sampled_from(INVALID_LABEL_KEYS), short_text),
                                    st.one_of(short_text, huge_string(), scalars), max_size=3),
                    any_value))
            elif k == "managedFields":
                entry = {"manager": draw(weird_strings), "operation": draw(st.sampled_from(["Apply", "Update", "x"])),
                         "apiVersion": draw(st.sampled_from([r.api_version, "v9", ""])), "fieldsType": "FieldsV1",
                         "fieldsV1": draw(st.one_of(any_value, st.just({"f:metadata": {"f:labels": {".": {}}}}))),
                         "time": draw(st.sampled_from(["2024-01-01T00:00:00Z", "garbage", ""]))}
                md[k] = draw(st.one_of(st.just([entry]), any_value))
            elif k == "ownerReferences":
                md[k] = draw(st.one_of(any_value, st.just([{"apiVersion": "v1", "kind": "Pod", "name": "x",
                                                            "uid": draw(weird_strings),
                                                            "controller": draw(scalars)}])))
            else:
                md[k] = draw(st.one_of(weird_strings, any_value))
        elif kind == 7:
            # Type confusion where Kubernetes code likes to index.
            spec = obj.get("spec") if isinstance(obj, dict) else None
            if isinstance(spec, dict):
                k = draw(st.sampled_from(["replicas", "containers", "template", "selector", "ports", "type",
                                          "clusterIP", "nodeName", "finalizers", "holderIdentity", "strategy"]))
                spec[k] = draw(st.one_of(st.sampled_from(["3", "x", -1, 2**63, 1.5, {"a": 1}, [1], None, True]),
                                         any_value))
        elif kind == 8 and isinstance(obj, dict):
            spec = obj.get("spec")
            if isinstance(spec, dict) and isinstance(spec.get("containers"), list):
                spec["containers"] = {"name": "c", "image": "x"}
            elif isinstance(spec, dict) and isinstance(spec.get("template"), dict):
                spec["template"]["spec"] = draw(st.one_of(st.just({"containers": {"c": {}}}), any_value))
        elif kind == 9 and isinstance(obj, dict):
            obj["metadata"] = draw(st.sampled_from([[], "x", 5, None, {"name": ["a"]}, {"labels": []},
                                                    {"name": {"a": 1}}, {"namespace": 7}]))
    return obj


# -- request bodies ---------------------------------------------------------------------------------------------

@st.composite
def protobuf_bytes(draw: st.DrawFn) -> bytes:
    tail = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        # An Unknown envelope: typeMeta {apiVersion, kind}, raw (random), contentType.
        def ld(num: int, payload: bytes) -> bytes:
            return bytes([(num << 3) | 2]) + _varint(len(payload)) + payload
        tm = ld(1, draw(st.sampled_from([b"v1", b"apps/v1", b"", b"\xff"]))) + \
            ld(2, draw(st.sampled_from([b"ConfigMap", b"Pod", b"Deployment", b"Nope"])))
        lie = draw(st.sampled_from([0, 1, 7, 2**35]))
        raw = bytes([(2 << 3) | 2]) + _varint(len(tail) + lie) + tail
        return b"k8s\x00" + ld(1, tm) + raw
    return b"k8s\x00" + tail


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


YAML_GARBAGE = [
    b"a: b: c", b"- [", b"!!python/object/apply:os.system ['true']", b"%YAML 9.9\n---\na: 1", b"\t- x",
    b"key: &a [*a]", b"? [a, b]\n: c", b"---\n---\n...", b"metadata: {name: x, name: y}", b"\xff\xfe",
    b"kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: !!binary aGk=\n",
    b"a: !!timestamp 2001-12-14\nkind: ConfigMap", b"a: 1e999", b"{a: .inf, b: .nan}", b"key: 0o17\nx: 0x1F",
    b"? !!set {a, b}", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y1}\ndata: {1: 2, true: false}",
]


def _billion_laughs(levels: int, width: int) -> bytes:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"kind: ConfigMap\napiVersion: v1\nmetadata: {{name: laughs}}\ndata: {{x: *a{levels - 1}}}")
    return "\n".join(lines).encode()


@st.composite
def object_body(draw: st.DrawFn, r: Resource | None = None, name: str | None = None,
                ns: str | None = None) -> tuple[bytes, str]:
    """(body, content type) for a create/update: mostly object-shaped, sometimes anything at all."""
    choice = draw(st.integers(0, 19))
    if choice <= 4 and r is not None:
        obj: Any = template(r, name if name is not None else draw(names), ns)
    else:
        obj = draw(mutated_object(r, name, ns))
    if choice <= 11:
        return dumps(obj), draw(st.sampled_from(["application/json", "application/json", "", *BODY_CTS]))
    if choice == 12:
        try:
            text = yaml.safe_dump(obj).encode()
        except (yaml.YAMLError, RecursionError):
            text = b"a: b"
        return text, draw(st.sampled_from(["application/yaml", "application/apply-patch+yaml", "application/json"]))
    if choice == 13:
        full = dumps(obj)
        return full[: draw(st.integers(0, max(0, len(full) - 1)))], "application/json"
    if choice == 14:
        full = dumps(obj)
        cut = draw(st.integers(0, len(full)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\xc0\xae"]))
        return full[:cut] + bad + full[cut:], draw(st.sampled_from(["application/json", "application/yaml"]))
    if choice == 15:
        return draw(protobuf_bytes()), draw(st.sampled_from(["application/vnd.kubernetes.protobuf",
                                                             "application/vnd.kubernetes.protobuf;stream=watch",
                                                             "application/json"]))
    if choice == 16:
        return draw(st.binary(max_size=200)), draw(st.sampled_from(BODY_CTS))
    if choice == 17:
        body = draw(st.sampled_from([*YAML_GARBAGE, _billion_laughs(4, 4), _billion_laughs(9, 9)]))
        return body, draw(st.sampled_from(["application/yaml", "application/apply-patch+yaml"]))
    if choice == 18:
        return dumps(draw(json_values)), "application/json"
    return draw(st.sampled_from([b"", b"null", b"[]", b"{}", b"0", b'"x"', b"{" * 5000, b"[" * 100_000,
                                 b'{"a":1,"a":2}', b"NaN", b"1e999", b"\xef\xbb\xbf{}", b"{}{}", b"{}garbage",
                                 b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"dup"},"data":'
                                 b'{"a":"1","a":"2"}}'])), "application/json"


POINTERS = ["", "/", "/metadata", "/metadata/name", "/metadata/labels/app", "/metadata/labels/new",
            "/metadata/labels", "/metadata/annotations/a~1b", "/metadata/resourceVersion", "/metadata/uid",
            "/metadata/finalizers/-", "/metadata/finalizers/0", "/metadata/managedFields/0/manager",
            "/spec", "/spec/replicas", "/spec/containers/0/image", "/spec/template/spec/containers/-",
            "/spec/template/spec/containers/99", "/spec/selector", "/spec/ports/0/port", "/data/a", "/data",
            "/kind", "/apiVersion", "/status", "/status/phase", "/x/y/z", "/-", "/spec/containers/-1",
            "/spec/containers/01", "/metadata/labels/~2", "~", "no-slash", "/a~", "/spec/containers/0/name/x"]


@st.composite
def json_patch_doc(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(any_value)
    ops = []
    for _ in range(draw(st.integers(0, 5))):
        op: dict[str, Any] = {"op": draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test",
                                                          "bogus", "", "ADD"])),
                              "path": draw(st.one_of(st.sampled_from(POINTERS), short_text, scalars))}
        if draw(st.booleans()):
            op["value"] = draw(any_value)
        if draw(st.integers(0, 3)) == 0:
            op["from"] = draw(st.one_of(st.sampled_from(POINTERS), scalars))
        if draw(st.integers(0, 9)) == 0:
            op = draw(st.sampled_from([{"op": "add"}, {"path": "/a"}, {}, {"op": ["add"], "path": "/a"}]))
        ops.append(op)
    return ops


@st.composite
def merge_patch_doc(draw: st.DrawFn, r: Resource, strategic: bool) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(any_value)
    doc: Any = draw(mutated_object(r, draw(st.sampled_from([*LIVE_NAMES, None])) or "fz-0", None))
    if isinstance(doc, dict):
        for _ in range(draw(st.integers(0, 2))):
            doc.pop(draw(st.sampled_from(["kind", "apiVersion", "metadata", "spec", "status", "data"])), None)
        if draw(st.booleans()) and isinstance(doc.get("metadata"), dict):
            doc["metadata"]["labels"] = {"app": None, "new": draw(weird_strings)}
        if strategic:
            extra = draw(st.sampled_from([
                {"$patch": "delete"}, {"$patch": "replace"}, {"$patch": "bogus"}, {"$patch": 5},
                {"$retainKeys": ["spec"]}, {"$retainKeys": "x"},
                {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["b"]}},
                {"metadata": {"$setElementOrder/finalizers": ["x", "y"]}},
                {"spec": {"containers": [{"name": "c", "$patch": "delete"}]}},
                {"spec": {"containers": [{"$patch": "replace"}]}},
                {"spec": {"$setElementOrder/containers": [{"name": "zz"}], "containers": [{"name": "zz"}]}},
                {"spec": {"template": {"spec": {"containers": [{"name": 5, "image": None}]}}}},
                {"spec": {"ports": [{"port": "x", "$patch": "merge"}]}},
                {"subsets": [{"addresses": {"ip": "1"}}]}, {"data": {"$patch": "delete"}},
                {"spec": {"containers": {"$patch": "replace"}}}, {},
            ]))
            for k, v in extra.items():
                if isinstance(v, dict) and isinstance(doc.get(k), dict):
                    doc[k].update(v)
                else:
                    doc[k] = v
    return doc


@st.composite
def patch_body(draw: st.DrawFn, r: Resource, name: str, ns: str | None) -> tuple[bytes, str]:
    ct = draw(st.sampled_from([*PATCH_CTS, *PATCH_CTS, "application/json", "", "application/apply-patch+cbor",
                               "application/merge-patch+json; charset=utf-8", "text/plain"]))
    base = ct.split(";")[0]
    if draw(st.integers(0, 12)) == 0:
        body, _ = draw(object_body(r, name, ns))
        return body, ct
    if base == "application/json-patch+json":
        return dumps(draw(json_patch_doc())), ct
    if base == "application/apply-patch+yaml":
        obj = draw(st.one_of(st.just(template(r, name, ns)), mutated_object(r, name, ns)))
        if draw(st.booleans()):
            return dumps(obj), ct
        try:
            return yaml.safe_dump(obj).encode(), ct
        except (yaml.YAMLError, RecursionError):
            return b"{}", ct
    return dumps(draw(merge_patch_doc(r, base == "application/strategic-merge-patch+json"))), ct


# -- query parameters -------------------------------------------------------------------------------------------

LABEL_SELECTORS = ["app=fuzz", "app!=fuzz", "app in (fuzz,x)", "app notin (a)", "!app", "app", "app=", "=x",
                   "app in (", "app in ()", "a,,b", "a=b,c", "x>5", "x<abc", "x>", "a in (b,c", "a==b", "!", ",",
                   "a b", "tier in (fz-0, fz-1)", "A/b=c", "example.com/a=b", "a=" + "v" * 70, "a@b=c",
                   "a!", "app=fuzz,app!=fuzz", "(a)", "a=(b)", "a in (b) c"]
FIELD_SELECTORS = ["metadata.name=fz-0", "metadata.name!=fz-0", "metadata.namespace=fuzz", "metadata.name==fz-1",
                   "spec.nodeName=", "spec.nodeName=n1", "status.phase=Running", "status.phase!=x", "bogus=1",
                   "metadata.name", "=", "metadata.name=a,metadata.name=b", "spec.replicas=1", "type=Opaque",
                   "involvedObject.name=x", "spec.unschedulable=false", "metadata.labels=x", "a\\,b=c",
                   "metadata.name=a\\", "metadata.name in (a)", "spec.schedulerName=default-scheduler",
                   "metadata.uid=x", "regarding.name=x", "reason=Fuzzed"]


def _continue_tokens() -> st.SearchStrategy[str]:
    def tok(d: Any) -> str:
        return base64.urlsafe_b64encode(dumps(d)).decode().rstrip("=")
    fixed = [tok({"v": "meta.k8s.io/v1", "rv": 1, "start": "/registry/configmaps/fuzz/fz-0"}),
             tok({"v": "meta.k8s.io/v1", "rv": "x", "start": "/registry/configmaps/"}),
             tok({"v": "meta.k8s.io/v1", "rv": 10**30, "start": "/registry/pods/"}),
             tok({"v": "meta.k8s.io/v1", "rv": -5, "start": "/registry/"}),
             tok({"rv": 1, "start": None}), tok({"rv": [], "start": {}}), tok([1, 2]), tok("x"), tok(None),
             tok({"v": "meta.k8s.io/v1", "rv": 1, "start": "/registry/secrets/kube-system/"}),
             "!!!", "====", "a", "e30", base64.b64encode(b"\xff\xfe").decode()]
    return st.one_of(st.sampled_from(fixed), short_text, st.builds(lambda d: tok(d), json_values))


def _int_ish() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["-1", "0", "1", "5", "500", "abc", "1.5", "1e3", "", " 1", "0x10",
                                      "9" * 30, "9" * 5000, "-9" + "9" * 30, "+1", "1_000", "٣"]),
                     st.integers(-(2**70), 2**70).map(str))


QUERY_PARAMS: dict[str, st.SearchStrategy[str]] = {
    "labelSelector": st.one_of(st.sampled_from(LABEL_SELECTORS), short_text, huge_string()),
    "fieldSelector": st.one_of(st.sampled_from(FIELD_SELECTORS), short_text),
    "limit": _int_ish(),
    "continue": _continue_tokens(),
    "resourceVersion": st.one_of(st.sampled_from(["", "0", "1", "-1", "abc", "9" * 25, "1.0"]), _int_ish()),
    "resourceVersionMatch": st.sampled_from(["NotOlderThan", "Exact", "bogus", ""]),
    "dryRun": st.sampled_from(["All", "all", "", "None", "true", "All,All", "x"]),
    "fieldValidation": st.sampled_from(["Strict", "Warn", "Ignore", "strict", "", "bogus"]),
    "fieldManager": st.one_of(st.sampled_from(["fuzzer", "kubectl", "", "a" * 200, "ü", "x/y"]), short_text),
    "force": st.sampled_from(["true", "false", "1", "x", ""]),
    "gracePeriodSeconds": _int_ish(),
    "propagationPolicy": st.sampled_from(["Orphan", "Background", "Foreground", "bogus", "", "orphan"]),
    "orphanDependents": st.sampled_from(["true", "false", "x"]),
    "pretty": st.sampled_from(["true", "false", "x"]),
    "includeObject": st.sampled_from(["None", "Metadata", "Object", "bogus", ""]),
    "allowWatchBookmarks": st.sampled_from(["true", "false", "x"]),
    "sendInitialEvents": st.sampled_from(["true", "false", "x"]),
    "timeoutSeconds": st.sampled_from(["-1", "0", "1", "x", "", "99999999999999999999", "1" * 400]),
    "watch": st.sampled_from(["false", "0", "x", ""]),
    "bogus": short_text,
}


@st.composite
def query_string(draw: st.DrawFn, writes: bool = False) -> str:
    keys = draw(st.lists(st.sampled_from(sorted(QUERY_PARAMS)), max_size=4, unique=True))
    params = [(k, draw(QUERY_PARAMS[k])) for k in keys]
    if writes and draw(st.booleans()):
        params.append(("fieldManager", "fuzzer"))
    q = urlencode(params, quote_via=quote)
    garbage = draw(st.integers(0, 14))
    if garbage == 0:
        q += draw(st.sampled_from(["&&&", "&=", "&%zz=%", "&a=b=c", "&;", "&limit=1&limit=x", "&%ff%fe=%c0",
                                   "&labelSelector=%", "&watch", "&x=%00"]))
    return q


# -- requests ---------------------------------------------------------------------------------------------------

@dataclass
class FuzzRequest:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    watch_timeout: str | None = None  # set for watch requests: the timeoutSeconds sent (they stream)

    def describe(self) -> str:
        b = self.body[:300] if self.body is not None else None
        return f"{self.method} {self.target[:400]} headers={self.headers} body={b!r}"


def _with_query(path: str, q: str) -> str:
    return f"{path}?{q}" if q else path


DISCOVERY_PATHS = ["/", "/api", "/apis", "/api/v1", "/apis/apps", "/apis/apps/v1", "/apis/events.k8s.io/v1",
                   "/apis/coordination.k8s.io/v1", "/apis/discovery.k8s.io/v1", "/version", "/version/x",
                   "/healthz", "/livez", "/readyz", "/readyz/ping", "/healthz/x/../..", "/openapi/v3",
                   "/openapi/v3/api/v1", "/openapi/v3/apis/apps/v1", "/openapi/v3/apis/bogus/v1", "/openapi/v3/..",
                   "/openapi/v2x", "/openapi", "/metrics", "/apis/apps/v2", "/api/v2", "/apis/bogus.example.com",
                   "/apis/bogus.example.com/v1/foos", "/api/v1/foos", "/api/v1/namespaces/default/foos/x",
                   "/apis//v1", "//api//v1//pods", "/api/v1/namespaces", "/api/v1/namespaces/",
                   "/api/v1/namespaces/default/", "/api/v1/namespaces/default/pods/fz-0/status/x/y",
                   "/api/v1/watch", "/api/v1/watch/namespaces", "/api/v1/watch/namespaces/default/pods/fz-0/status",
                   "/api/v1/namespaces/default/namespaces/x", "/api/v1/nodes/fz-0/proxy/x",
                   "/api/v1/namespaces/../../etc/passwd", "/api/v1/namespaces/%2e%2e/configmaps",
                   "/api/v1/namespaces/default/configmaps/%2e%2e", "/api/v1/namespaces/default/configmaps/%252e",
                   "/api/v1/namespaces/default/configmaps/%zz", "/api/v1/namespaces/default/configmaps/%",
                   "/api/v1/namespaces/default/configmaps/%00", "/api/v1/namespaces/default/configmaps/%ff%fe",
                   "/api/v1/namespaces/default/configmaps/%c0%ae%c0%ae", "/api/v1/namespaces/%2F/configmaps",
                   "/api/v1/namespaces/default%2Fconfigmaps/x", "/api/v1/namespaces/default%252Fx/configmaps",
                   "/api/v1/namespaces/default/configmaps/a%2Fb%2Fc%2Fd", "/api/v1/pods/fz-0",
                   "/api/v1/nodes/x/status/y", "/apis/apps/v1/namespaces/fuzz/deployments/fz-0/scale/x",
                   "/api/v1/namespaces/fuzz/finalize", "/api/v1/namespaces/fuzz/status",
                   "/api/v1/namespaces/fuzz/status/x", "/api/v1/namespaces/x/y/z/w/v/u", "/api/v1/namespaces//pods",
                   "/api/v1/namespaces/default/pods/fz-0/binding", "/apis/apps/v1/namespaces/fuzz/deployments//scale",
                   "/api/v1/namespaces/" + "n" * 5000 + "/pods", "/api/v1/namespaces/default/pods/" + "p" * 8000]


def _encode_segment(s: str, how: int) -> str:
    if how == 0:
        return quote(s, safe="")
    if how == 1:
        return quote(quote(s, safe=""), safe="")  # double-encoded
    if how == 2:
        return "".join(f"%{b:02X}" for b in s.encode())  # everything escaped, even letters
    return quote(s, safe="/.~")  # slashes left alone


@st.composite
def resource_path(draw: st.DrawFn) -> tuple[str, Resource, str | None, str | None, str]:
    """(path, resource, namespace, name, subresource) for a served resource, any shape."""
    r = draw(resources)
    ns = draw(namespaces) if r.namespaced else None
    shape = draw(st.integers(0, 9))
    how = draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1, 2, 3]))
    base = resource_base(r)
    name: str | None = None
    sub = ""
    if shape <= 2:
        segs = ["namespaces", ns, r.plural] if ns is not None else [r.plural]
    else:
        name = draw(names)
        segs = ["namespaces", ns, r.plural, name] if ns is not None else [r.plural, name]
        if shape >= 7:
            sub = draw(st.sampled_from(["status", "status", "scale", "binding", "finalize", *SUBRESOURCES]))
            segs.append(sub)
    if shape == 1 and r.namespaced:
        segs = [r.plural]  # across all namespaces
        ns = None
    if draw(st.integers(0, 15)) == 0:
        segs.insert(0, "watch")
    path = base + "/" + "/".join(_encode_segment(s, how) for s in segs)
    if draw(st.integers(0, 20)) == 0:
        path += draw(st.sampled_from(["/", "//", "/..", "/.", "/%2e%2e", "?", "#frag", "/extra"]))
    return path, r, ns, name, sub


def _auth_headers(draw: st.DrawFn, token: str) -> dict[str, str]:
    h: dict[str, str] = {}
    a = draw(st.integers(0, 60))
    if a == 0:
        h["Authorization"] = draw(st.sampled_from(["", "Bearer", "Bearer ", "Basic eDp5", "Bearer x" + token,
                                                   "bearer " + token[:-1], "Bearer " + token + " extra",
                                                   "Bearer\t" + token]))
    elif a == 1:
        h["Authorization"] = "bearer  " + token + " "
    else:
        h["Authorization"] = "Bearer " + token
    if draw(st.integers(0, 3)) == 0:
        h["Accept"] = draw(st.sampled_from(ACCEPTS))
    if draw(st.integers(0, 6)) == 0:
        h["User-Agent"] = draw(st.sampled_from(["kubectl/v1.32.0 (linux/amd64)", "", "/", "a" * 300, "x/y/z",
                                                "fuzzer", "..", "Mozilla/5.0"]))
    return h


@st.composite
def fuzz_request(draw: st.DrawFn, token: str) -> FuzzRequest:
    headers = _auth_headers(draw, token)
    kind = draw(st.integers(0, 99))
    if kind < 12:
        # Create: a valid object (keeps the population alive) or a mutated one.
        r = draw(resources)
        ns = draw(st.sampled_from([FUZZ_NS, FUZZ_NS, "default", "kube-system"])) if r.namespaced else None
        if r.kind == "Namespace":
            name = draw(st.sampled_from([FUZZ_NS, "fuzz-b", *LIVE_NAMES, "fz-x"]))
        else:
            name = draw(st.sampled_from(LIVE_NAMES))
        if draw(st.integers(0, 2)) == 0:
            body, ct = draw(object_body(r, name, ns))
        else:
            body, ct = dumps(template(r, name, ns)), "application/json"
        headers["Content-Type"] = ct
        q = draw(query_string(writes=True)) if draw(st.booleans()) else ""
        return FuzzRequest("POST", _with_query(collection_path(r, ns), q), headers, body)
    if kind < 30:
        # Update (PUT) of an item or subresource with an object-shaped body.
        path, r, ns, name, sub = draw(resource_path())
        body, ct = draw(object_body(r, name, ns))
        headers["Content-Type"] = ct
        return FuzzRequest("PUT", _with_query(path, draw(query_string(writes=True))), headers, body)
    if kind < 50:
        # Patch: live objects mostly, all four patch types and some that are not.
        if draw(st.integers(0, 3)) == 0:
            path, r, ns, name, sub = draw(resource_path())
            name = name or "fz-0"
        else:
            r = draw(resources)
            ns = draw(st.sampled_from([FUZZ_NS, "default"])) if r.namespaced else None
            name = draw(st.sampled_from(LIVE_NAMES)) if r.kind != "Namespace" else draw(
                st.sampled_from([FUZZ_NS, "default", "kube-node-lease", "fz-0"]))
            sub = draw(st.sampled_from(["", "", "", "status", "scale"]))
            path = item_path(r, ns, name) + (f"/{sub}" if sub else "")
        body, ct = draw(patch_body(r, name, ns))
        headers["Content-Type"] = ct
        q = draw(query_string(writes=True))
        if ct.startswith("application/apply-patch") and draw(st.integers(0, 2)):
            q = _with_query("", q)[1:] + ("&" if q else "") + "fieldManager=" + draw(
                st.sampled_from(["fuzzer", "fuzzer-2", "kubectl"])) + draw(st.sampled_from(["", "&force=true"]))
        return FuzzRequest("PATCH", _with_query(path, q), headers, body)
    if kind < 70:
        # Reads: gets and lists with garbage parameters.
        path, r, ns, name, sub = draw(resource_path())
        return FuzzRequest(draw(st.sampled_from(["GET", "GET", "GET", "HEAD"])),
                           _with_query(path, draw(query_string())), headers)
    if kind < 78:
        # Deletes: items and collections, with options in the query and/or the body.
        path, r, ns, name, sub = draw(resource_path())
        if r.kind == "Namespace" and name in UNDELETABLE_BY_FUZZER:
            name = "fz-2"
            path = item_path(r, None, name)
        body: bytes | None = None
        if draw(st.booleans()):
            opts: Any = {"kind": "DeleteOptions", "apiVersion": "v1"}
            for k in draw(st.lists(st.sampled_from(["gracePeriodSeconds", "propagationPolicy", "preconditions",
                                                    "orphanDependents", "dryRun", "kind", "apiVersion"]),
                                   max_size=3, unique=True)):
                opts[k] = draw(st.one_of(
                    any_value, st.sampled_from([0, 1, -1, 2**63, 10**20, "Foreground", "Orphan", "x", True,
                                                {"uid": "x"}, {"resourceVersion": "1"}, {"uid": ["a"]}, ["All"]])))
            if draw(st.integers(0, 5)) == 0:
                opts = draw(any_value)
            body, ct = dumps(opts), draw(st.sampled_from(["application/json", "application/json", "application/yaml",
                                                           "text/plain", ""]))
            headers["Content-Type"] = ct
        return FuzzRequest("DELETE", _with_query(path, draw(query_string())), headers, body)
    if kind < 80:
        # Watches, bounded by timeoutSeconds (or closed by us after a moment when unbounded).
        path, r, ns, name, sub = draw(resource_path())
        q = draw(query_string())
        to = draw(st.sampled_from(["1", "1", "0", "-1", "-1", "-1", "x", "99999999999999999999", "1" * 400, ""]))
        extra = urlencode([("watch", draw(st.sampled_from(["true", "1", "TRUE"]))), ("timeoutSeconds", to)])
        if draw(st.booleans()):
            extra += "&" + urlencode([("allowWatchBookmarks", "true"), ("sendInitialEvents", "true"),
                                      ("resourceVersionMatch", "NotOlderThan")])
        q = "&".join(x for x in (q.replace("timeoutSeconds=", "ts="), extra) if x)
        return FuzzRequest("GET", _with_query(path, q), headers, None, watch_timeout=to)
    if kind < 90:
        # Random methods on real, bogus and weirdly encoded paths.
        if draw(st.booleans()):
            path = draw(st.sampled_from(DISCOVERY_PATHS))
        else:
            path = draw(resource_path())[0]
        method = draw(st.sampled_from(METHODS))
        body = None
        if method in ("POST", "PUT", "PATCH", "DELETE") or draw(st.integers(0, 5)) == 0:
            body, ct = draw(object_body())
            headers["Content-Type"] = ct
        if path == "/openapi/v2x":
            path = "/openapi/v2"  # big document: rarely
        return FuzzRequest(method, _with_query(path, draw(query_string())), headers, body)
    # Raw garbage bodies on write verbs of real resources.
    path, r, ns, name, sub = draw(resource_path())
    method = draw(st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]))
    body, ct = draw(object_body(r, name, ns))
    if method == "PATCH" and draw(st.booleans()):
        ct = draw(st.sampled_from(PATCH_CTS))
    headers["Content-Type"] = ct
    return FuzzRequest(method, _with_query(path, draw(query_string(writes=True))), headers, body)


# -- the runner -------------------------------------------------------------------------------------------------

@dataclass
class Failure:
    request: FuzzRequest
    problem: str


class ServerGone(Exception):
    """Too many transport errors in a row: the server is down or wedged."""


def make_client(url: str, token: str, ca_file: str, timeout: float = 15.0) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=ca_file)
    return httpx.Client(base_url=url, verify=ctx, timeout=httpx.Timeout(timeout), http2=False,
                        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
                        headers={"Authorization": f"Bearer {token}"})


class Runner:
    """Sends fuzz requests on one keep-alive client and checks every answer."""

    def __init__(self, client: httpx.Client, hang_timeout: float = 15.0) -> None:
        self.client = client
        self.hang_timeout = hang_timeout
        self.sent = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        self.failures: list[Failure] = []
        self.transport_errors_in_a_row = 0
        self._lock = threading.Lock()
        self._watch_pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="fuzz-watch")
        self._watches: list[Future[None]] = []

    # Public -----------------------------------------------------------------------------------------------------
    def send(self, req: FuzzRequest) -> None:
        if req.watch_timeout is not None:
            self._watches.append(self._watch_pool.submit(self._send_watch, req))
            return
        try:
            resp = self._request(req)
        except httpx.TimeoutException as ex:
            self._fail(req, f"no answer within {self.hang_timeout}s (hang): {ex!r}")
            return
        except httpx.TransportError as ex:
            self._transport_error(req, ex)
            return
        self._record(req, resp.status_code, resp.headers.get("content-type", ""), resp.content)

    def finish(self) -> None:
        """Wait for the streamed watches still running."""
        for f in self._watches:
            f.result(timeout=60)
        self._watches.clear()
        self._watch_pool.shutdown(wait=True)

    def close(self) -> None:
        self._watch_pool.shutdown(wait=False, cancel_futures=True)

    # Internals --------------------------------------------------------------------------------------------------
    def _build(self, req: FuzzRequest, timeout: httpx.Timeout) -> httpx.Request:
        headers = dict(req.headers)
        content = req.body
        return self.client.build_request(req.method, "/", headers=headers, content=content, timeout=timeout,
                                         extensions={"target": req.target.encode("ascii")})

    def _request(self, req: FuzzRequest) -> httpx.Response:
        return self.client.send(self._build(req, httpx.Timeout(self.hang_timeout)))

    def _send_watch(self, req: FuzzRequest) -> None:
        to = req.watch_timeout or ""
        try:
            n = int(to)
        except ValueError:
            n = None
        bounded = n is not None and (n < 0 or n == 1)
        # Bounded watches must end by themselves (the server closes them); unbounded ones (0 = no timeout)
        # are cut by us after a moment of silence, which also exercises the server's disconnect handling.
        read = self.hang_timeout if bounded else 0.5
        timeout = httpx.Timeout(self.hang_timeout, read=read)
        chunks: list[bytes] = []
        try:
            resp = self.client.send(self._build(req, timeout), stream=True)
        except httpx.TimeoutException as ex:
            self._fail(req, f"watch: no response headers (hang): {ex!r}")
            return
        except httpx.TransportError as ex:
            self._transport_error(req, ex)
            return
        try:
            try:
                for chunk in resp.iter_raw():
                    chunks.append(chunk)
            except httpx.ReadTimeout:
                if bounded or resp.status_code != 200:
                    self._fail(req, f"watch with timeoutSeconds={to!r} did not end (HTTP {resp.status_code})")
                    return
            except httpx.TransportError as ex:
                self._fail(req, f"watch stream broke: {ex!r} (HTTP {resp.status_code})")
                return
        finally:
            resp.close()
        body = b"".join(chunks)
        ct = resp.headers.get("content-type", "")
        if resp.status_code == 200 and ct.startswith("application/json"):
            with self._lock:
                self.sent += 1
                self.statuses[200] += 1
            for line in body.splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    self._fail(req, f"watch event is not JSON: {line[:200]!r}")
                    return
                if not isinstance(ev, dict) or ev.get("type") not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK",
                                                                        "ERROR"):
                    self._fail(req, f"bad watch event: {line[:200]!r}")
                    return
            return
        self._record(req, resp.status_code, ct, body)

    def _transport_error(self, req: FuzzRequest, ex: Exception) -> None:
        self._fail(req, f"transport error (server crashed or dropped the connection): {ex!r}")
        with self._lock:
            self.transport_errors_in_a_row += 1
            if self.transport_errors_in_a_row >= 10:
                raise ServerGone(f"{self.transport_errors_in_a_row} transport errors in a row; last: {ex!r}")

    def _fail(self, req: FuzzRequest, problem: str) -> None:
        with self._lock:
            self.sent += 1
            self.failures.append(Failure(req, problem))

    def _record(self, req: FuzzRequest, code: int, ct: str, body: bytes) -> None:
        problem = self.check(req, code, ct, body)
        with self._lock:
            self.sent += 1
            self.statuses[code] += 1
            self.transport_errors_in_a_row = 0
            if problem:
                self.failures.append(Failure(req, problem))

    @staticmethod
    def check(req: FuzzRequest, code: int, ct: str, body: bytes) -> str | None:
        snippet = body[:500]
        if code >= 500:
            return f"HTTP {code}: {snippet!r}"
        if code < 200 or 300 <= code < 400:
            return f"unexpected HTTP {code}"
        if req.method == "HEAD":
            return None
        if code >= 400:
            try:
                st_ = json.loads(body)
            except ValueError:
                return f"HTTP {code} body is not JSON: {snippet!r}"
            if not isinstance(st_, dict) or st_.get("kind") != "Status" or st_.get("apiVersion") != "v1":
                return f"HTTP {code} body is not a v1 Status: {snippet!r}"
            if st_.get("code") != code or st_.get("status") != "Failure":
                return f"HTTP {code} Status has code={st_.get('code')!r} status={st_.get('status')!r}"
            if not isinstance(st_.get("message"), str) or not st_["message"]:
                return f"HTTP {code} Status without a message: {snippet!r}"
            if not ct.startswith("application/json"):
                return f"HTTP {code} Status with content-type {ct!r}"
            return None
        if ct.startswith("application/json"):
            try:
                json.loads(body)
            except ValueError:
                return f"HTTP {code} JSON body does not parse: {snippet!r}"
        return None


def run_batch(runner: Runner, reqs: list[FuzzRequest]) -> None:
    for r in reqs:
        runner.send(r)


def summarize(runner: Runner, elapsed: float) -> str:
    hist = ", ".join(f"{k}: {v}" for k, v in sorted(runner.statuses.items()))
    return f"{runner.sent} requests in {elapsed:.1f}s ({runner.sent / max(elapsed, 1e-9):.0f}/s); statuses {{{hist}}}"


def deep_copy(o: Any) -> Any:
    return copy.deepcopy(o)


Timer = Callable[[], float]
now: Timer = time.monotonic
