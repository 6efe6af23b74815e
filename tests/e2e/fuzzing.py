"""Request generation and checking for fuzzing the API server over HTTPS.

Hypothesis chooses each request's structure — the kind of request, the resource, the namespace and
name, the subresource, the content type, the HTTP method — and hands over a seeded ``random.Random``
(``st.randoms``) for the bulk of the payload: garbage query parameters, Kubernetes objects with fields of
the wrong type, broken JSON/YAML/UTF-8, protobuf-looking bytes, patch documents. Drawing every byte
through Hypothesis costs ~0.1 ms per choice, far too slow for 10,000 requests; the seeded generator is
~50x cheaper and every failing request is reported verbatim anyway.

:class:`Runner` sends the requests over one keep-alive ``httpx.Client`` and checks every answer: never
a 5xx, never a hang, every 4xx a Kubernetes ``Status``; watch streams made of JSON events.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import queue
import random
import ssl
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

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
# kube-node-lease go (a controller re-creates it later; tinykube's namespace controller does so at once); the
# fuzzer's own deletes avoid it, and other routes that delete it leave the re-creation to that controller.
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
# FOO/BREW/"GET2" are valid HTTP tokens that uvicorn's parser (llhttp) rejects before the application.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"]

SPECIAL_STRINGS = ["", " ", "..", ".", "../..", "/", "%", "%00", "\x00", "\n", "null", "true", "0", "-1",
                   "a" * 64, "A-Z", "ünïcödé", "☃", "\ud800", "💥", "a/b", "a b", "~1", "~0", "$patch", "'",
                   '"', "\\", "${x}", "{{x}}", "<script>", "1e999", "NaN", "0x10", "09", "-", "_", "a.b.c",
                   "2024-01-01T00:00:00Z", "100m", "1Gi", "-5Mi", "1e3", "10.96.0.1", "::1", "None", "TCP"]
HUGE_INTS = [2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30), 10**400]
INVALID_LABEL_KEYS = ["", "-a", "a-", "A/b/c", "/x", "x/", "a" * 64, "example.com/" + "a" * 64,
                      "UPPER.example.com/x", "a b", "ü", "kubernetes.io/", "_x", ".x"]
TEXT_ALPHABET = "abcXYZ019-_./:~ \t\n\x00\x7f\"'\\{}[]%&=?#éü☃💥\u202e\ufeff"
_DNS_RND = random.Random(7)
DNS_NAMES = ["".join(_DNS_RND.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(_DNS_RND.randint(1, 12)))
             .strip("-") or "n" for _ in range(40)]
WEIRD_NAMES = ["", "..", ".", "UPPER", "a_b", "x" * 254, "x" * 300, "%2F", "a%2Fb", "default", "kube-system",
               "a.b", "-a", "a-", "a b", "ü", "💥", "\x00", "a/b", "~", "-", "1", "a" * 63, "a" * 64]
PROTOBUF_SEEDS = [p.read_bytes() for p in sorted((Path(__file__).parent.parent / "unit" / "api" / "fixtures")
                                                 .glob("*.pb"))]


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
                            "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "b"}],
                            "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}}}]}


def template(r: Resource, name: str, ns: str | None) -> dict[str, Any]:
    """A valid object of this resource's kind."""
    md: dict[str, Any] = {"name": name, "labels": {"app": "fuzz", "tier": name}}
    if r.namespaced and ns is not None:
        md["namespace"] = ns
    o: dict[str, Any] = {"apiVersion": r.api_version, "kind": r.kind, "metadata": md}
    k = (r.group, r.kind)
    # Workloads select their own pods only: the seeded pods (app=fuzz) must not be adopted and scaled away by the
    # ReplicaSet controller while the fuzzer relies on them.
    wl = {"app": "fuzz-workload", "workload": f"{r.plural}-{name}"}
    sel = {"matchLabels": wl}
    tmpl = {"metadata": {"labels": wl}, "spec": _pod_spec()}
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
        o.update(reason="Fuzzed", message="fuzz event", type="Normal", firstTimestamp="2024-01-01T00:00:00Z",
                 lastTimestamp="2024-01-01T00:00:00Z", count=1, source={"component": "fuzzer"})
    elif k == ("", "Node"):
        o["spec"] = {"podCIDR": "10.244.0.0/24"}
    elif k in (("apps", "Deployment"), ("apps", "ReplicaSet")):
        o["spec"] = {"replicas": 1, "selector": sel, "template": tmpl}
    elif k == ("coordination.k8s.io", "Lease"):
        o["spec"] = {"holderIdentity": "fuzzer", "leaseDurationSeconds": 15}
    elif k == ("discovery.k8s.io", "EndpointSlice"):
        o["addressType"] = "IPv4"
        o["endpoints"] = [{"addresses": ["10.1.2.3"], "conditions": {"ready": True}}]
        o["ports"] = [{"name": "http", "port": 80, "protocol": "TCP"}]
    elif k == ("events.k8s.io", "Event"):
        o.update(eventTime="2024-01-01T00:00:00.000000Z", reportingController="fuzz.example.com/fuzzer",
                 reportingInstance="fuzzer-1", action="Fuzz", reason="Fuzzed", note="fuzz", type="Normal",
                 regarding={"kind": "Pod", "name": "fz-0", "namespace": ns or "default", "apiVersion": "v1"})
    return o


# -- JSON text of anything (big ints, lone surrogates, 100,000-deep nests) ---------------------------------------

@dataclass
class _Raw:
    s: str


def dumps(v: Any) -> bytes:
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
            parts: list[Any] = []
            for i, (k, val) in enumerate(x.items()):
                parts += [_Raw(("," if i else "") + json.dumps(str(k)) + ":"), val]
            stack.extend(reversed([*parts, _Raw("}")]))
        elif isinstance(x, list):
            out.append("[")
            parts = []
            for i, val in enumerate(x):
                parts += [_Raw(","), val] if i else [val]
            stack.extend(reversed([*parts, _Raw("]")]))
        else:
            out.append(json.dumps(x))
    return "".join(out).encode()


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


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _billion_laughs(levels: int, width: int) -> bytes:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"kind: ConfigMap\napiVersion: v1\nmetadata: {{name: laughs}}\ndata: {{x: *a{levels - 1}}}")
    return "\n".join(lines).encode()


YAML_GARBAGE = [
    b"a: b: c", b"- [", b"!!python/object/apply:os.system ['true']", b"%YAML 9.9\n---\na: 1", b"\t- x",
    b"key: &a [*a]", b"? [a, b]\n: c", b"---\n---\n...", b"metadata: {name: x, name: y}", b"\xff\xfe",
    b"kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: !!binary aGk=\n",
    b"a: !!timestamp 2001-12-14\nkind: ConfigMap", b"a: 1e999", b"{a: .inf, b: .nan}", b"key: 0o17\nx: 0x1F",
    b"? !!set {a, b}", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y1}\ndata: {1: 2, true: false}",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fz-0\n  creationTimestamp: 2024-01-01T00:00:00Z\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fz-0\n  labels: {a: 2024-01-01}\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fz-0\ndata: {a: !!binary aGk=}\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fz-0, annotations: {? [a]: b}}\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fz-0, labels: {1: 2, true: x, null: ~}}\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fz-1}\nbogus: 99999999999999999999999\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fz-1}\ndata: {a: .nan}\nbogus: &a [*a]\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fz-2}\nbogus: !!set {a, b}\n",
    b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: fz-0}\nspec: {replicas: 0x10, paused: yes}\n",
    b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fz-2}\ndata: {a: &x b, c: *x}\n",
    b"[" * 100_000, b"- " * 50_000 + b"x", b"{a: " * 20_000,
    _billion_laughs(4, 4), _billion_laughs(9, 9), _billion_laughs(30, 2),
    _billion_laughs(9, 9).replace(b"data: {x: *a8}", b"bogus: *a8"),
    _billion_laughs(9, 9).replace(b"data: {x: *a8}", b"data: {}\n" + b"a9: &a9 {" +
                                  b", ".join(b"k%d: *a8" % i for i in range(9)) + b"}"),
]
RAW_JSON = [b"", b"null", b"[]", b"{}", b"0", b'"x"', b"{" * 5000, b"[" * 100_000, b'{"a":1,"a":2}', b"NaN",
            b"1e999", b"\xef\xbb\xbf{}", b"{}{}", b"{}garbage", b'{"metadata":{"name":"\\ud800"}}',
            b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}',
            b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fz-0","name":"fz-1"}}', b"\x00" * 10,
            b'{"metadata":' * 600 + b"{}" + b"}" * 600, b'{"a":' + b"9" * 5000 + b"}", b"-0", b"1" * 5000]
POINTERS = ["", "/", "/metadata", "/metadata/name", "/metadata/labels/app", "/metadata/labels/new",
            "/metadata/labels", "/metadata/annotations/a~1b", "/metadata/resourceVersion", "/metadata/uid",
            "/metadata/finalizers/-", "/metadata/finalizers/0", "/metadata/managedFields/0/manager",
            "/metadata/managedFields", "/metadata/deletionTimestamp", "/metadata/ownerReferences/-",
            "/spec", "/spec/replicas", "/spec/containers/0/image", "/spec/template/spec/containers/-",
            "/spec/template/spec/containers/99", "/spec/selector", "/spec/ports/0/port", "/data/a", "/data",
            "/kind", "/apiVersion", "/status", "/status/phase", "/x/y/z", "/-", "/spec/containers/-1",
            "/spec/containers/01", "/metadata/labels/~2", "~", "no-slash", "/a~", "/spec/containers/0/name/x",
            "/spec/clusterIP", "/spec/ports/0/nodePort", "/spec/type", "/subsets/0/addresses/0/ip",
            "/spec/finalizers/0", "/metadata/generation", "/spec/template/metadata/labels/app"]
LABEL_SELECTORS = ["app=fuzz", "app!=fuzz", "app in (fuzz,x)", "app notin (a)", "!app", "app", "app=", "=x",
                   "app in (", "app in ()", "a,,b", "a=b,c", "x>5", "x<abc", "x>", "a in (b,c", "a==b", "!", ",",
                   "a b", "tier in (fz-0, fz-1)", "A/b=c", "example.com/a=b", "a=" + "v" * 70, "a@b=c",
                   "a!", "app=fuzz,app!=fuzz", "(a)", "a=(b)", "a in (b) c", "x>99999999999999999999",
                   "x<-1", "a notin ()", "!a,!b,!c", "a in (" + ",".join("v" * 3 for _ in range(300)) + ")"]
FIELD_SELECTORS = ["metadata.name=fz-0", "metadata.name!=fz-0", "metadata.namespace=fuzz", "metadata.name==fz-1",
                   "spec.nodeName=", "spec.nodeName=n1", "status.phase=Running", "status.phase!=x", "bogus=1",
                   "metadata.name", "=", "metadata.name=a,metadata.name=b", "spec.replicas=1", "type=Opaque",
                   "involvedObject.name=x", "spec.unschedulable=false", "metadata.labels=x", "a\\,b=c",
                   "metadata.name=a\\", "metadata.name in (a)", "spec.schedulerName=default-scheduler",
                   "metadata.uid=x", "regarding.name=x", "reason=Fuzzed", "status.replicas=1",
                   "spec.serviceAccountName=x", "involvedObject.kind=Pod", "metadata.name=\\x", ",,", "a=b=c",
                   "spec.type=ClusterIP", "addressType=IPv4", "metadata.name=" + "x" * 300, "!metadata.name"]
INT_ISH = ["-1", "0", "1", "5", "500", "abc", "1.5", "1e3", "", " 1", "0x10", "9" * 30, "9" * 5000,
           "-9" + "9" * 30, "+1", "1_000", "٣", "00", "-0", "2147483648", "9223372036854775808"]
QUERY_VALUES: dict[str, list[str]] = {
    "resourceVersion": ["", "0", "1", "-1", "abc", "9" * 25, "1.0", "9" * 5000],
    "resourceVersionMatch": ["NotOlderThan", "Exact", "bogus", ""],
    "dryRun": ["All", "all", "", "None", "true", "All,All", "x"],
    "fieldValidation": ["Strict", "Warn", "Ignore", "strict", "", "bogus"],
    "fieldManager": ["fuzzer", "kubectl", "", "a" * 200, "ü", "x/y", "kube-controller-manager"],
    "force": ["true", "false", "1", "x", ""],
    "propagationPolicy": ["Orphan", "Background", "Foreground", "bogus", "", "orphan"],
    "orphanDependents": ["true", "false", "x"],
    "pretty": ["true", "false", "x"],
    "includeObject": ["None", "Metadata", "Object", "bogus", ""],
    "allowWatchBookmarks": ["true", "false", "x"],
    "sendInitialEvents": ["true", "false", "x"],
    "timeoutSeconds": ["-1", "0", "1", "x", "", "99999999999999999999", "1" * 400],
    "watch": ["false", "0", "x", ""],
}
QUERY_KEYS = [*QUERY_VALUES, "labelSelector", "fieldSelector", "limit", "continue", "gracePeriodSeconds", "bogus"]
DISCOVERY_PATHS = ["/", "/api", "/apis", "/api/v1", "/apis/apps", "/apis/apps/v1", "/apis/events.k8s.io/v1",
                   "/apis/coordination.k8s.io/v1", "/apis/discovery.k8s.io/v1", "/version", "/version/x",
                   "/healthz", "/livez", "/readyz", "/readyz/ping", "/healthz/x/../..", "/openapi/v3",
                   "/openapi/v3/api/v1", "/openapi/v3/apis/apps/v1", "/openapi/v3/apis/bogus/v1", "/openapi/v3/..",
                   "/openapi/v2?x", "/openapi", "/metrics", "/apis/apps/v2", "/api/v2", "/apis/bogus.example.com",
                   "/apis/bogus.example.com/v1/foos", "/api/v1/foos", "/api/v1/namespaces/default/foos/x",
                   "/apis//v1", "//api//v1//pods", "/api/v1/namespaces", "/api/v1/namespaces/",
                   "/api/v1/namespaces/default/", "/api/v1/namespaces/default/pods/fz-0/status/x/y",
                   "/api/v1/watch", "/api/v1/watch/namespaces", "/api/v1/namespaces/default/namespaces/x",
                   "/api/v1/nodes/fz-0/proxy/x", "/api/v1/namespaces/../../etc/passwd",
                   "/api/v1/namespaces/%2e%2e/configmaps", "/api/v1/namespaces/default/configmaps/%2e%2e",
                   "/api/v1/namespaces/default/configmaps/%252e", "/api/v1/namespaces/default/configmaps/%zz",
                   "/api/v1/namespaces/default/configmaps/%", "/api/v1/namespaces/default/configmaps/%00",
                   "/api/v1/namespaces/default/configmaps/%ff%fe", "/api/v1/namespaces/default/configmaps/%c0%ae%c0%ae",
                   "/api/v1/namespaces/%2F/configmaps", "/api/v1/namespaces/default%2Fconfigmaps/x",
                   "/api/v1/namespaces/default%252Fx/configmaps", "/api/v1/namespaces/default/configmaps/a%2Fb%2Fc%2Fd",
                   "/api/v1/pods/fz-0", "/api/v1/nodes/x/status/y", "/apis/apps/v1/namespaces/fuzz/deployments/fz-0/scale/x",
                   "/api/v1/namespaces/fuzz/finalize", "/api/v1/namespaces/fuzz/status", "/api/v1/namespaces/fuzz/status/x",
                   "/api/v1/namespaces/x/y/z/w/v/u", "/api/v1/namespaces//pods", "/api/v1/namespaces/default/pods/fz-0/binding",
                   "/apis/apps/v1/namespaces/fuzz/deployments//scale", "/api/v1/namespaces/" + "n" * 5000 + "/pods",
                   "/api/v1/namespaces/default/pods/" + "p" * 8000, "/api/v1/configmaps?labelSelector=" + "a" * 70_000,
                   "/api/v1/namespaces/default/configmaps/" + "c" * 66_000, "*", "api/v1", "/%", "/api/%76%31",
                   "/api/v1/namespaces/default/configmaps/fz-0;x=y", "/api/v1/namespaces/default/configmaps/fz-0%3Bx",
                   "/api/v1/namespaces/default/configmaps/fz-0?%", "/api/v1/namespaces/default/configmaps/fz-0?=&=",
                   "/apis/apps/v1/namespaces/fuzz/deployments/fz-0/status", "/api/v1/namespaces/fuzz/pods/fz-1/binding"]


# -- requests ---------------------------------------------------------------------------------------------------

@dataclass
class FuzzRequest:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def describe(self) -> str:
        b = self.body[:300] if self.body is not None else None
        return f"{self.method} {self.target[:400]} headers={self.headers} body={b!r} ({len(self.body or b'')} bytes)"

    @property
    def is_watch(self) -> bool:
        """Whether the server may answer with a stream (a watch URL, or ?watch=true/1)."""
        path, _, q = self.target.partition("?")
        if "watch" in unquote(unquote(path)).split("/"):  # the server decodes the path twice
            return True
        return any(k == "watch" and v.lower() in ("true", "1") for k, v in parse_qsl(q, keep_blank_values=True))

    @property
    def watch_timeout(self) -> int | None:
        _, _, q = self.target.partition("?")
        vals = [v for k, v in parse_qsl(q, keep_blank_values=True) if k == "timeoutSeconds"]
        try:
            return int(vals[-1]) if vals else None
        except ValueError:
            return None


class Gen:
    """Random payloads from one seeded generator (which Hypothesis supplies)."""

    def __init__(self, rnd: random.Random, token: str) -> None:
        self.r = rnd
        self.token = token

    # Primitives --------------------------------------------------------------------------------------------------
    def pick(self, seq: Any) -> Any:
        return self.r.choice(seq)

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def text(self, max_size: int = 12) -> str:
        return "".join(self.r.choice(TEXT_ALPHABET) for _ in range(self.r.randint(0, max_size)))

    def huge_string(self) -> str:
        return self.pick(["a", "é", "\x00", "-", "💥", "ab."]) * self.pick([254, 256, 1024, 70_000])

    def weird_string(self) -> str:
        x = self.r.random()
        if x < 0.5:
            return str(self.pick(SPECIAL_STRINGS))
        if x < 0.95:
            return self.text()
        return self.huge_string()

    def scalar(self) -> Any:
        c = self.r.randrange(8)
        if c == 0:
            return None
        if c == 1:
            return self.chance(0.5)
        if c == 2:
            return self.r.randint(-(2**40), 2**40)
        if c == 3:
            return self.pick(HUGE_INTS)
        if c == 4:
            return self.pick([0.5, -1.5, 1e300, -0.0, 3.0, 1e-300, 1.7976931348623157e308])
        return self.weird_string()

    def json_value(self, depth: int = 0) -> Any:
        c = self.r.randrange(10)
        if depth > 3 or c < 5:
            return self.scalar()
        if c < 7:
            return [self.json_value(depth + 1) for _ in range(self.r.randint(0, 3))]
        return {self.weird_string(): self.json_value(depth + 1) for _ in range(self.r.randint(0, 3))}

    def deep_nesting(self) -> Any:
        v: Any = self.scalar()
        for i in range(self.pick([50, 200, 900, 3000])):
            v = [v] if i % 2 else {"a": v}
        return v

    def any_value(self) -> Any:
        c = self.r.randrange(20)
        if c < 14:
            return self.json_value()
        if c < 17:
            return self.pick([[], {}, "", 0, None, True, "x", -1, [{}], {"": ""}])
        if c < 19:
            return self.huge_string()
        return self.deep_nesting()

    def name(self) -> str:
        c = self.r.randrange(10)
        if c < 5:
            return str(self.pick(LIVE_NAMES))
        if c < 7:
            return str(self.pick(DNS_NAMES))
        if c < 9:
            return str(self.pick(WEIRD_NAMES))
        return self.text()

    def namespace(self) -> str:
        c = self.r.randrange(10)
        if c < 4:
            return str(self.pick([FUZZ_NS, "default"]))
        if c < 7:
            return str(self.pick(NAMESPACES))
        if c < 9:
            return str(self.pick(["nope", "", "..", "UPPER", "x" * 100, "a/b", "%"]))
        return str(self.pick(DNS_NAMES))

    # Objects -----------------------------------------------------------------------------------------------------
    def mutated_object(self, r: Resource, name: str, ns: str | None) -> Any:
        """A Kubernetes-shaped object with a few fields replaced by wrong types or garbage."""
        obj: Any = template(r, name, ns if ns is not None else FUZZ_NS)
        for _ in range(self.r.randint(1, 4)):
            kind = self.r.randrange(10)
            if kind <= 3:
                obj = _set(obj, self.pick(_paths(obj)), self.any_value())
            elif kind == 4:
                obj = _delete(obj, self.pick(_paths(obj)))
            elif kind == 5 and isinstance(obj, dict):
                obj[self.pick(["metadata", "spec", "status", "kind", "apiVersion", "data", "type", "subsets",
                               "endpoints", "ports", "stringData", "immutable", "binaryData", "bogus"])] = self.any_value()
            elif kind == 6 and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
                self._mutate_metadata(r, obj["metadata"])
            elif kind == 7 and isinstance(obj, dict) and isinstance(obj.get("spec"), dict):
                k = self.pick(["replicas", "containers", "template", "selector", "ports", "type", "clusterIP",
                               "nodeName", "finalizers", "holderIdentity", "strategy", "clusterIPs",
                               "leaseDurationSeconds", "podCIDR", "minReadySeconds", "revisionHistoryLimit"])
                obj["spec"][k] = self.pick(["3", "x", -1, 2**63, 1.5, {"a": 1}, [1], None, True, [], {}]) \
                    if self.chance(0.6) else self.any_value()
            elif kind == 8 and isinstance(obj, dict) and isinstance(obj.get("spec"), dict):
                spec = obj["spec"]
                if isinstance(spec.get("containers"), list):
                    spec["containers"] = self.pick([{"name": "c", "image": "x"}, [{"name": "c"}], [{}], [None],
                                                    [{"name": "c", "image": "x", "ports": {"a": 1}}],
                                                    [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "x"}}}],
                                                    [{"name": "c", "image": "x", "env": [{"name": 1}]}]])
                elif isinstance(spec.get("template"), dict):
                    spec["template"]["spec"] = self.pick([{"containers": {"c": {}}}, None, [], {"containers": []}])
                elif isinstance(spec.get("ports"), list):
                    spec["ports"] = self.pick([[{"port": 80, "nodePort": 30000}, {"port": 80, "nodePort": 30000}],
                                               [{"port": "x"}], [{"port": 0}], [{"port": 99999}], {"a": 1}])
            elif kind == 9 and isinstance(obj, dict):
                obj["metadata"] = self.pick([[], "x", 5, None, {"name": ["a"]}, {"labels": []},
                                             {"name": {"a": 1}}, {"namespace": 7}, {"generateName": "g-"},
                                             {"generateName": 5}, {"name": "", "generateName": ""}])
        return obj

    def _mutate_metadata(self, r: Resource, md: dict[str, Any]) -> None:
        k = self.pick(["labels", "annotations", "finalizers", "ownerReferences", "managedFields", "resourceVersion",
                       "generateName", "namespace", "name", "uid", "creationTimestamp", "deletionTimestamp",
                       "generation", "deletionGracePeriodSeconds", "selfLink"])
        if k in ("labels", "annotations"):
            if self.chance(0.7):
                md[k] = {(self.pick(INVALID_LABEL_KEYS) if self.chance(0.5) else self.text()):
                         (self.weird_string() if self.chance(0.7) else self.scalar())
                         for _ in range(self.r.randint(0, 3))}
            else:
                md[k] = self.any_value()
        elif k == "managedFields":
            entry = {"manager": self.weird_string(), "operation": self.pick(["Apply", "Update", "x", None]),
                     "apiVersion": self.pick([r.api_version, "v9", "", None]), "fieldsType": self.pick(["FieldsV1", "x"]),
                     "fieldsV1": self.any_value() if self.chance(0.5) else {"f:metadata": {"f:labels": {".": {}}}},
                     "time": self.pick(["2024-01-01T00:00:00Z", "garbage", "", None]),
                     "subresource": self.pick(["", "status", "x"])}
            md[k] = [entry] if self.chance(0.6) else self.any_value()
        elif k == "ownerReferences":
            md[k] = [{"apiVersion": "v1", "kind": "Pod", "name": "x", "uid": self.weird_string(),
                      "controller": self.scalar()}] if self.chance(0.5) else self.any_value()
        elif k == "finalizers":
            md[k] = [self.weird_string() for _ in range(self.r.randint(0, 3))] if self.chance(0.5) else self.any_value()
        else:
            md[k] = self.weird_string() if self.chance(0.5) else self.any_value()

    def protobuf_body(self) -> bytes:
        c = self.r.randrange(4)
        if c < 2:
            # A real kubectl body with a few bytes flipped, dropped, inserted, or cut short.
            b = bytearray(self.pick(PROTOBUF_SEEDS))
            for _ in range(self.r.randint(1, 4)):
                op = self.r.randrange(4)
                i = self.r.randrange(4, len(b)) if len(b) > 4 else 4
                if op == 0 and i < len(b):
                    b[i] = self.r.randrange(256)
                elif op == 1 and i < len(b):
                    del b[i]
                elif op == 2:
                    b[i:i] = bytes([self.r.randrange(256)])
                else:
                    del b[i:]
            return bytes(b)
        if c == 2:
            tail = self.r.randbytes(self.r.randint(0, 64))

            def ld(num: int, payload: bytes) -> bytes:
                return bytes([(num << 3) | 2]) + _varint(len(payload)) + payload

            tm = ld(1, self.pick([b"v1", b"apps/v1", b"", b"\xff"])) + ld(2, self.pick([b"ConfigMap", b"Pod", b"Nope"]))
            lie = self.pick([0, 1, 7, 2**35, 2**63])
            return b"k8s\x00" + ld(1, tm) + bytes([(2 << 3) | 2]) + _varint(len(tail) + lie) + tail
        return b"k8s\x00" + self.r.randbytes(self.r.randint(0, 64))

    def object_body(self, r: Resource, name: str, ns: str | None, ct: str) -> tuple[bytes, str]:
        """(body, content type) for a create/update: mostly object-shaped, sometimes anything at all."""
        c = self.r.randrange(20)
        obj: Any = template(r, name, ns) if c <= 4 else self.mutated_object(r, name, ns)
        if c <= 11:
            return dumps(obj), ct
        if c == 12:
            try:
                text = yaml.safe_dump(obj).encode()
            except (yaml.YAMLError, RecursionError):
                text = b"a: b"
            return text, self.pick(["application/yaml", "application/apply-patch+yaml", ct])
        if c == 13:
            full = dumps(obj)
            return full[: self.r.randrange(max(1, len(full)))], ct
        if c == 14:
            full = dumps(obj)
            cut = self.r.randint(0, len(full))
            bad = self.pick([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\xc0\xae"])
            return full[:cut] + bad + full[cut:], self.pick(["application/json", "application/yaml", ct])
        if c == 15:
            return self.protobuf_body(), self.pick(["application/vnd.kubernetes.protobuf", ct,
                                                    "application/vnd.kubernetes.protobuf;stream=watch"])
        if c == 16:
            return self.r.randbytes(self.r.randint(0, 200)), ct
        if c == 17:
            return self.pick(YAML_GARBAGE), self.pick(["application/yaml", "application/apply-patch+yaml", ct])
        if c == 18:
            return dumps(self.json_value()), ct
        return self.pick(RAW_JSON), ct

    # Patches -----------------------------------------------------------------------------------------------------
    def json_patch_doc(self) -> Any:
        if self.chance(0.1):
            return self.any_value()
        ops = []
        for _ in range(self.r.randint(0, 5)):
            op: dict[str, Any] = {"op": self.pick(["add", "remove", "replace", "move", "copy", "test", "bogus", "",
                                                   "ADD"]),
                                  "path": self.pick(POINTERS) if self.chance(0.8) else self.scalar()}
            if self.chance(0.6):
                op["value"] = self.any_value() if self.chance(0.7) else self.pick(["x", 3, {}, [], None])
            if self.chance(0.25):
                op["from"] = self.pick(POINTERS) if self.chance(0.8) else self.scalar()
            if self.chance(0.1):
                op = self.pick([{"op": "add"}, {"path": "/a"}, {}, {"op": ["add"], "path": "/a"}])
            ops.append(op)
        return ops

    def merge_patch_doc(self, r: Resource, name: str, strategic: bool) -> Any:
        if self.chance(0.1):
            return self.any_value()
        doc: Any = self.mutated_object(r, name, None)
        if isinstance(doc, dict):
            for _ in range(self.r.randint(0, 2)):
                doc.pop(self.pick(["kind", "apiVersion", "metadata", "spec", "status", "data"]), None)
            if self.chance(0.5) and isinstance(doc.get("metadata"), dict):
                doc["metadata"]["labels"] = {"app": None, "new": self.weird_string()}
            if strategic:
                extra = self.pick([
                    {"$patch": "delete"}, {"$patch": "replace"}, {"$patch": "bogus"}, {"$patch": 5},
                    {"$retainKeys": ["spec"]}, {"$retainKeys": "x"},
                    {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["b"]}},
                    {"metadata": {"$setElementOrder/finalizers": ["x", "y"]}},
                    {"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}},
                    {"spec": {"containers": [{"name": "c", "$patch": "delete"}]}},
                    {"spec": {"containers": [{"$patch": "replace"}]}},
                    {"spec": {"containers": [{"$patch": "delete"}]}},
                    {"spec": {"$setElementOrder/containers": [{"name": "zz"}], "containers": [{"name": "zz"}]}},
                    {"spec": {"$setElementOrder/containers": "x"}},
                    {"spec": {"template": {"spec": {"containers": [{"name": 5, "image": None}]}}}},
                    {"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"$patch": "x"}]}]}}}},
                    {"spec": {"ports": [{"port": "x", "$patch": "merge"}]}},
                    {"spec": {"ports": [{"port": 80, "protocol": "TCP", "$patch": "delete"}]}},
                    {"spec": {"$retainKeys": ["replicas"], "replicas": 2}},
                    {"subsets": [{"addresses": {"ip": "1"}}]}, {"data": {"$patch": "delete"}},
                    {"spec": {"containers": {"$patch": "replace"}}}, {}, {"metadata": {"$patch": "delete"}},
                    {"spec": {"template": {"spec": {"volumes": [{"name": "v", "$retainKeys": ["name"]}]}}}},
                ])
                for k, v in extra.items():
                    if isinstance(v, dict) and isinstance(doc.get(k), dict):
                        doc[k].update(v)
                    else:
                        doc[k] = v
        return doc

    def patch_body(self, r: Resource, name: str, ns: str | None, ct: str) -> bytes:
        base = ct.split(";")[0].strip().lower()
        if self.chance(0.08):
            return self.object_body(r, name, ns, ct)[0]
        if base == "application/json-patch+json":
            return dumps(self.json_patch_doc())
        if base == "application/apply-patch+yaml":
            obj = template(r, name, ns) if self.chance(0.4) else self.mutated_object(r, name, ns)
            if self.chance(0.5):
                return dumps(obj)
            try:
                return yaml.safe_dump(obj).encode()
            except (yaml.YAMLError, RecursionError):
                return b"{}"
        return dumps(self.merge_patch_doc(r, name, base == "application/strategic-merge-patch+json"))

    # Query parameters --------------------------------------------------------------------------------------------
    def continue_token(self) -> str:
        def tok(d: Any) -> str:
            return base64.urlsafe_b64encode(dumps(d)).decode().rstrip("=")

        c = self.r.randrange(6)
        if c == 0:
            return self.text()
        if c == 1:
            return tok(self.json_value())
        if c == 2:
            return self.pick(["!!!", "====", "a", "e30", base64.b64encode(b"\xff\xfe").decode(), tok([1, 2]), tok("x"),
                              tok(None), "x" * 2000])
        return tok({"v": self.pick(["meta.k8s.io/v1", "x", None]),
                    "rv": self.pick([1, "x", 10**30, -5, 0, None, [], 1.5, True, "9" * 5000]),
                    "start": self.pick(["/registry/configmaps/fuzz/fz-0", "/registry/configmaps/", "/registry/",
                                        "/registry/pods/", "/registry/secrets/kube-system/", "", None, 5, {},
                                        "/registry/configmaps/fuzz/\x00", "/registry/configmaps/fuzz/\uffff"])})

    def query_value(self, key: str) -> str:
        if key in QUERY_VALUES:
            return str(self.pick(QUERY_VALUES[key])) if self.chance(0.9) else self.text()
        if key == "labelSelector":
            x = self.r.random()
            return str(self.pick(LABEL_SELECTORS)) if x < 0.8 else self.text() if x < 0.97 else self.huge_string()[:5000]
        if key == "fieldSelector":
            return str(self.pick(FIELD_SELECTORS)) if self.chance(0.8) else self.text()
        if key in ("limit", "gracePeriodSeconds"):
            return str(self.pick(INT_ISH)) if self.chance(0.7) else str(self.r.randint(-(2**70), 2**70))
        if key == "continue":
            return self.continue_token()
        return self.text()

    def query_string(self, writes: bool = False) -> str:
        keys = self.r.sample(QUERY_KEYS, self.r.randint(0, 4))
        params = [(k, self.query_value(k)) for k in keys]
        if writes and self.chance(0.5):
            params.append(("fieldManager", "fuzzer"))
        q = urlencode(params, quote_via=quote)
        if self.chance(0.07):
            q += str(self.pick(["&&&", "&=", "&%zz=%", "&a=b=c", "&;", "&limit=1&limit=x", "&%ff%fe=%c0",
                                "&labelSelector=%", "&watch", "&x=%00", "&timeoutSeconds=1&timeoutSeconds=x"]))
        return q

    # Paths -------------------------------------------------------------------------------------------------------
    def encode_segment(self, s: str) -> str:
        how = self.r.randrange(12)
        if how < 9:
            return quote(s, safe="")
        if how == 9:
            return quote(quote(s, safe=""), safe="")  # double-encoded
        if how == 10:
            return "".join(f"%{b:02X}" for b in s.encode())  # everything escaped, even letters
        return quote(s, safe="/.~")  # slashes left alone

    def resource_path(self, r: Resource, shape: int, sub: str) -> tuple[str, str | None, str | None]:
        """(path, namespace, name) for a served resource: collection, item or subresource, odd shapes too."""
        ns = self.namespace() if r.namespaced else None
        name: str | None = None
        if shape == 0:
            segs = ["namespaces", ns, r.plural] if ns is not None else [r.plural]
        elif shape == 1:
            segs, ns = [r.plural], None  # across all namespaces (or a cluster-scoped collection)
        else:
            name = self.name()
            segs = ["namespaces", ns, r.plural, name] if ns is not None else [r.plural, name]
            if shape == 3:
                segs.append(sub)
            elif shape == 4 and self.chance(0.5):
                segs = [r.plural, name]  # namespaced object without a namespace
        if self.chance(0.03):
            segs.insert(0, "watch")
        path = resource_base(r) + "/" + "/".join(self.encode_segment(s) for s in segs)
        if self.chance(0.04):
            path += str(self.pick(["/", "//", "/..", "/.", "/%2e%2e", "#frag", "/extra", "/status/status"]))
        return path, ns, name

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        x = self.r.random()
        if x < 0.02:
            h["Authorization"] = str(self.pick(["Bearer", "Basic eDp5", "Bearer x" + self.token,
                                                "bearer " + self.token[:-1], "Bearer " + self.token + " extra",
                                                "Bearer\t" + self.token, "Bearer " + self.token.upper(),
                                                "Negotiate " + self.token]))
        elif x < 0.025:
            h["Authorization"] = "bearer  " + self.token
        if self.chance(0.25):
            h["Accept"] = str(self.pick(ACCEPTS))
        if self.chance(0.15):
            h["User-Agent"] = str(self.pick(["kubectl/v1.32.0 (linux/amd64)", "", "/", "a" * 300, "x/y/z", "fuzzer",
                                             "..", "Mozilla/5.0", "kube-controller-manager/v1.32"]))
        return h


CATEGORIES = (["create"] * 12 + ["update"] * 16 + ["patch"] * 22 + ["read"] * 18 + ["delete"] * 8 + ["watch"] * 2
              + ["anything"] * 10 + ["garbage"] * 12)


def build_request(token: str, category: str, r: Resource, ct: str, shape: int, sub: str, method: str,
                  rnd: random.Random) -> FuzzRequest:
    g = Gen(rnd, token)
    headers = g.headers()
    body: bytes | None = None
    if category == "create":
        # A valid object (keeps the population alive) or a mutated one, into a live namespace.
        # fz-0.. are namespaces too: the fuzzer deletes them, so the namespace controller empties them meanwhile.
        ns = g.pick([FUZZ_NS, FUZZ_NS, "default", "kube-system", "fz-0", "fz-1"]) if r.namespaced else None
        name = g.pick([FUZZ_NS, "fuzz-b", *LIVE_NAMES, "fz-x"] if r.kind == "Namespace" else LIVE_NAMES)
        if g.chance(0.35):
            body, ct = g.object_body(r, name, ns, ct)
        else:
            body, ct = dumps(template(r, name, ns)), "application/json"
        headers["Content-Type"] = ct
        return FuzzRequest("POST", _with_query(collection_path(r, ns), g.query_string(writes=True) if g.chance(0.5)
                                               else ""), headers, body)
    if category == "update":
        path, ns, name = g.resource_path(r, max(shape, 2), sub)
        body, ct = g.object_body(r, name or "fz-0", ns, ct)
        headers["Content-Type"] = ct
        return FuzzRequest("PUT", _with_query(path, g.query_string(writes=True)), headers, body)
    if category == "patch":
        if g.chance(0.25):
            path, ns, name = g.resource_path(r, max(shape, 2), sub)
            name = name or "fz-0"
        else:
            ns = g.pick([FUZZ_NS, "default"]) if r.namespaced else None
            name = g.pick(LIVE_NAMES) if r.kind != "Namespace" else g.pick([FUZZ_NS, "default", "kube-node-lease",
                                                                            "fz-0"])
            s = g.pick(["", "", "", "status", "scale"])
            path = item_path(r, ns, name) + (f"/{s}" if s else "")
        ct = g.pick(PATCH_CTS) if g.chance(0.85) else ct
        headers["Content-Type"] = ct
        body = g.patch_body(r, name, ns, ct)
        q = g.query_string(writes=True)
        if ct.startswith("application/apply-patch") and g.chance(0.7):
            q = "&".join(x for x in (q, "fieldManager=" + g.pick(["fuzzer", "fuzzer-2", "kubectl"]),
                                     g.pick(["", "force=true", "force=false"])) if x)
        return FuzzRequest("PATCH", _with_query(path, q), headers, body)
    if category == "read":
        path, _, _ = g.resource_path(r, shape, sub)
        return FuzzRequest(g.pick(["GET", "GET", "GET", "HEAD"]), _with_query(path, g.query_string()), headers)
    if category == "delete":
        path, ns, name = g.resource_path(r, shape, sub)
        if r.kind == "Namespace" and name in UNDELETABLE_BY_FUZZER:
            path = item_path(r, None, "fz-2")
        if g.chance(0.5):
            opts: Any = {"kind": "DeleteOptions", "apiVersion": "v1"}
            for k in g.r.sample(["gracePeriodSeconds", "propagationPolicy", "preconditions", "orphanDependents",
                                 "dryRun", "kind", "apiVersion"], g.r.randint(0, 3)):
                opts[k] = g.any_value() if g.chance(0.4) else g.pick(
                    [0, 1, -1, 2**63, 10**20, "Foreground", "Orphan", "x", True, {"uid": "x"},
                     {"resourceVersion": "1"}, {"uid": ["a"]}, ["All"], 1.5, 10**400])
            if g.chance(0.15):
                opts = g.any_value()
            body = dumps(opts)
            headers["Content-Type"] = g.pick(["application/json", "application/json", "application/yaml", ct])
        return FuzzRequest("DELETE", _with_query(path, g.query_string()), headers, body)
    if category == "watch":
        # Watches, bounded by timeoutSeconds (or cut by the runner after a moment when unbounded).
        path, _, _ = g.resource_path(r, shape, sub)
        q = g.query_string().replace("timeoutSeconds=", "ts=").replace("watch=", "w=")
        params = [("watch", g.pick(["true", "1", "TRUE"])),
                  ("timeoutSeconds", g.pick(["1", "1", "0", "-1", "-1", "-1", "x", "99999999999999999999", "1" * 400,
                                             ""]))]
        if g.chance(0.5):
            params += [("allowWatchBookmarks", "true"), ("sendInitialEvents", "true"),
                       ("resourceVersionMatch", "NotOlderThan")]
        return FuzzRequest("GET", _with_query(path, "&".join(x for x in (q, urlencode(params)) if x)), headers)
    if category == "anything":
        # Any method on real, bogus and weirdly encoded paths.
        path = g.pick(DISCOVERY_PATHS) if g.chance(0.5) else g.resource_path(r, shape, sub)[0]
        if method in ("POST", "PUT", "PATCH", "DELETE") or g.chance(0.15):
            body, ct = g.object_body(r, "fz-0", None, ct)
            headers["Content-Type"] = ct
        return FuzzRequest(method, _with_query(path, g.query_string()), headers, body)
    # Garbage bodies on the write verbs of real resources.
    path, ns, name = g.resource_path(r, shape, sub)
    m = g.pick(["POST", "PUT", "PATCH", "DELETE"])
    body, ct = g.object_body(r, name or "fz-0", ns, ct)
    if m == "PATCH" and g.chance(0.5):
        ct = g.pick(PATCH_CTS)
    headers["Content-Type"] = ct
    return FuzzRequest(m, _with_query(path, g.query_string(writes=True)), headers, body)


def _with_query(path: str, q: str) -> str:
    return f"{path}?{q}" if q else path


_salt = itertools.count()


def _fresh(rnd: random.Random) -> random.Random:
    # Hypothesis's generator repeats itself a lot (mutating earlier examples, favouring small seeds): salting
    # the seed keeps ~100% of the requests distinct instead of ~20%.
    return random.Random(f"{rnd.getrandbits(64)}-{next(_salt)}")


def fuzz_requests(token: str) -> st.SearchStrategy[FuzzRequest]:
    """The Hypothesis strategy: structure drawn by Hypothesis, payload from its seeded ``Random``."""
    return st.builds(
        build_request,
        st.just(token),
        st.sampled_from(CATEGORIES),
        st.sampled_from(RESOURCES),
        st.sampled_from(["application/json"] * 6 + BODY_CTS),
        st.sampled_from([0, 1, 2, 2, 2, 3, 3, 4]),  # collection, all-namespaces, item, subresource, odd item
        st.sampled_from(["status", "status", "scale", "scale", "binding", "finalize", *SUBRESOURCES]),
        st.sampled_from(METHODS),
        st.randoms(use_true_random=True).map(_fresh),
    )


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
                        limits=httpx.Limits(max_connections=24, max_keepalive_connections=24),
                        headers={"Authorization": f"Bearer {token}"})


class Runner:
    """Sends fuzz requests on one keep-alive client and checks every answer.

    Plain requests go out one after another from a sender thread (so Hypothesis generates the next batch
    while the server answers); requests that may stream (watches) run on a small pool next to it.
    """

    def __init__(self, client: httpx.Client, hang_timeout: float = 15.0) -> None:
        self.client = client
        self.hang_timeout = hang_timeout
        self.sent = 0
        self.submitted = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        self.failures: list[Failure] = []
        self.transport_errors_in_a_row = 0
        self.gone: ServerGone | None = None
        self.recent: collections.deque[FuzzRequest] = collections.deque(maxlen=15)  # for post-mortems
        self._lock = threading.Lock()
        self._watch_pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="fuzz-watch")
        self._watches: list[Future[None]] = []
        self._queue: queue.Queue[list[FuzzRequest] | None] = queue.Queue(maxsize=20)
        self._sender = threading.Thread(target=self._send_loop, name="fuzz-sender", daemon=True)
        self._sender.start()

    # Public -----------------------------------------------------------------------------------------------------
    def submit(self, batch: list[FuzzRequest]) -> None:
        """Queue a batch for the sender thread (dropped once the server is gone)."""
        if self.gone is not None:
            return
        self.submitted += len(batch)
        self._queue.put(batch)

    def finish(self) -> None:
        """Wait for everything submitted (plain requests, then the streamed watches) to be answered."""
        self._queue.put(None)
        self._sender.join()
        for f in self._watches:
            f.result()
        self._watches.clear()
        self._watch_pool.shutdown(wait=True)

    def close(self) -> None:
        if self._sender.is_alive():
            self._queue.put(None)
        self._watch_pool.shutdown(wait=False, cancel_futures=True)

    def send(self, req: FuzzRequest) -> None:
        self.recent.append(req)
        if req.is_watch:
            self._watches.append(self._watch_pool.submit(self._send_stream_guarded, req))
            return
        try:
            resp = self.client.send(self._build(req, httpx.Timeout(self.hang_timeout)))
        except httpx.TimeoutException as ex:
            self._fail(req, f"no answer within {self.hang_timeout}s (hang): {ex!r}")
            return
        except httpx.TransportError as ex:
            self._transport_error(req, ex)
            return
        self._record(req, resp.status_code, resp.headers.get("content-type", ""), resp.content)

    # Internals --------------------------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            for req in batch:
                if self.gone is not None:
                    break
                try:
                    self.send(req)
                except Exception as ex:  # a bug in the runner itself must not pass silently
                    self._fail(req, f"runner error: {ex!r}")

    def _build(self, req: FuzzRequest, timeout: httpx.Timeout) -> httpx.Request:
        # The raw request-target goes on the wire untouched (httpx would normalize `..` and escapes).
        return self.client.build_request(req.method, "/", headers=req.headers, content=req.body, timeout=timeout,
                                         extensions={"target": req.target.encode("ascii")})

    def _send_stream_guarded(self, req: FuzzRequest) -> None:
        try:
            self._send_stream(req)
        except Exception as ex:  # a bug in the runner itself must not pass silently
            self._fail(req, f"runner error: {ex!r}")

    def _send_stream(self, req: FuzzRequest) -> None:
        n = req.watch_timeout
        bounded = n is not None and n <= 1 and n != 0
        # Bounded watches must end by themselves (the server closes them); unbounded ones (0 or absent: no
        # timeout) are cut by us after a moment of silence, which also exercises disconnect handling.
        timeout = httpx.Timeout(self.hang_timeout, read=self.hang_timeout if bounded else 0.5)
        chunks: list[bytes] = []
        try:
            resp = self.client.send(self._build(req, timeout), stream=True)
        except httpx.TimeoutException as ex:
            self._fail(req, f"watch: no response headers (hang): {ex!r}")
            return
        except httpx.TransportError as ex:
            self._transport_error(req, ex)
            return
        cut = False
        try:
            for chunk in resp.iter_raw():
                chunks.append(chunk)
        except httpx.ReadTimeout:
            if bounded or resp.status_code != 200:
                self._fail(req, f"watch with timeoutSeconds={n!r} did not end (HTTP {resp.status_code})")
                return
            cut = True
        except httpx.TransportError as ex:
            self._fail(req, f"watch stream broke: {ex!r} (HTTP {resp.status_code})")
            return
        finally:
            resp.close()
        body = b"".join(chunks)
        ct = resp.headers.get("content-type", "")
        if resp.status_code == 200 and ct.startswith("application/json") and (cut or b'"type"' in body[:20]
                                                                               or not body):
            lines = body.splitlines()
            if cut and lines and not body.endswith(b"\n"):
                lines = lines[:-1]  # we hung up mid-event
            for line in lines:
                try:
                    ev = json.loads(line)
                except ValueError:
                    self._fail(req, f"watch event is not JSON: {line[:200]!r}")
                    return
                if not isinstance(ev, dict) or ev.get("type") not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"):
                    self._fail(req, f"bad watch event: {line[:300]!r}")
                    return
            self._record(req, 200, ct, b"{}")
            return
        self._record(req, resp.status_code, ct, body)

    def _transport_error(self, req: FuzzRequest, ex: Exception) -> None:
        self._fail(req, f"transport error (server crashed or dropped the connection): {ex!r}")
        with self._lock:
            self.transport_errors_in_a_row += 1
            if self.transport_errors_in_a_row >= 10 and self.gone is None:
                self.gone = ServerGone(f"{self.transport_errors_in_a_row} transport errors in a row; last: {ex!r}")

    def _fail(self, req: FuzzRequest, problem: str) -> None:
        with self._lock:
            self.sent += 1
            self.statuses[-1] += 1
            self.failures.append(Failure(req, problem))

    def _record(self, req: FuzzRequest, code: int, ct: str, body: bytes) -> None:
        problem = check_answer(req, code, ct, body)
        with self._lock:
            self.sent += 1
            self.statuses[code] += 1
            self.transport_errors_in_a_row = 0
            if problem:
                self.failures.append(Failure(req, problem))


def check_answer(req: FuzzRequest, code: int, ct: str, body: bytes) -> str | None:
    """What is wrong with an answer (None when it is fine)."""
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


def summarize(runner: Runner, elapsed: float) -> str:
    hist = ", ".join(f"{'error' if k < 0 else k}: {v}" for k, v in sorted(runner.statuses.items()))
    return f"{runner.sent} requests in {elapsed:.1f}s ({runner.sent / max(elapsed, 1e-9):.0f}/s); statuses {{{hist}}}"
