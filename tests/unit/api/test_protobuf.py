"""Decoding Kubernetes protobuf request bodies (what kubectl 1.32's typed clients send).

The fixtures under ``fixtures/`` are real bodies: ``NAME.pb`` is what kubectl POSTed for the
command in :data:`CASES`, captured by the tiny HTTP server below, and ``NAME.json`` is kubectl's
own JSON rendering of the same object (``--dry-run=client -o json``). Decoding the first must give
the second. Regenerate both with ``python tests/unit/api/test_protobuf.py`` (needs kubectl on PATH).

Hand-built bodies (a small encoder below) cover what kubectl's create commands never send: times,
raw extensions, packed fields, unknown fields, presence rules and malformed input.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinykube.api import protobuf
from tinykube.api.errors import ApiError
from tinykube.api.resources import RESOURCES

FIXTURES = Path(__file__).parent / "fixtures"
BLOB = bytes(range(0, 256, 7)) + b"\xff\xfe"  # binary ConfigMap data (not UTF-8)

# fixture name -> kubectl arguments (run with --server and -n default)
CASES: dict[str, list[str]] = {
    "deployment": ["create", "deployment", "web", "--image=nginx:1.25", "--replicas=3", "--port=80"],
    "deployment_multi": ["create", "deployment", "multi", "--image=nginx:1.25", "--image=redis:7"],
    "configmap": ["create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=hello"],
    "configmap_binary": ["create", "configmap", "bin", "--from-file=blob={blob}", "--from-literal=k=v"],
    "secret": ["create", "secret", "generic", "s", "--from-literal=password=hunter2"],
    "namespace": ["create", "namespace", "team-a"],
    "service": ["create", "service", "nodeport", "x", "--tcp=80:8080"],
    "service_clusterip": ["create", "service", "clusterip", "headless", "--clusterip=None"],
    "serviceaccount": ["create", "serviceaccount", "robot"],
    "quota": ["create", "quota", "q", "--hard=cpu=1500m,memory=1Gi,pods=2", "--scopes=BestEffort"],
    "pdb": ["create", "pdb", "budget", "--selector=app=web", "--min-available=50%"],
    "hpa": ["autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=80"],
}


def _fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.pb").read_bytes()


def _expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


# --- a throwaway API server that records what kubectl sends --------------------------------------

# Kinds kubectl may create that tinykube does not serve: (group, version) -> APIResource entries.
_EXTRA_RESOURCES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("", "v1"): [{"name": "resourcequotas", "singularName": "resourcequota", "namespaced": True,
                  "kind": "ResourceQuota", "verbs": ["create", "get", "list"]}],
    ("policy", "v1"): [{"name": "poddisruptionbudgets", "singularName": "poddisruptionbudget", "namespaced": True,
                        "kind": "PodDisruptionBudget", "verbs": ["create", "get", "list"]}],
    ("autoscaling", "v1"): [{"name": "horizontalpodautoscalers", "singularName": "horizontalpodautoscaler",
                             "namespaced": True, "kind": "HorizontalPodAutoscaler", "verbs": ["create", "get"]}],
}
_WEB = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def _kinds() -> dict[str, tuple[str, str]]:
    """plural -> (apiVersion, kind) for every resource the capture server knows."""
    out = {r.plural: (r.api_version, r.kind) for r in RESOURCES}
    for (group, version), entries in _EXTRA_RESOURCES.items():
        for e in entries:
            out[e["name"]] = (f"{group}/{version}" if group else version, e["kind"])
    return out


class _Recorder(BaseHTTPRequestHandler):
    """Answers discovery (legacy form) and records the body of every write."""

    protocol_version = "HTTP/1.1"
    bodies: list[tuple[str, str, bytes]]  # set per server: (path, content type, body)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, doc: Any) -> None:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        from tinykube.apiserver import discovery

        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if path == "/api":
            return self._send(200, discovery.api_versions("127.0.0.1"))
        if path == "/apis":
            doc = json.loads(discovery.api_group_list())
            for group, version in _EXTRA_RESOURCES:
                if group:
                    gv = {"groupVersion": f"{group}/{version}", "version": version}
                    doc["groups"].append({"name": group, "versions": [gv], "preferredVersion": gv})
            return self._send(200, doc)
        if (parts[0] == "api" and len(parts) == 2) or (parts[0] == "apis" and len(parts) == 3):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            listed = discovery.resource_list(group, version)
            doc = json.loads(listed) if listed else {"kind": "APIResourceList", "apiVersion": "v1",
                                                     "groupVersion": f"{group}/{version}", "resources": []}
            doc["resources"] += _EXTRA_RESOURCES.get((group, version), [])
            return self._send(200 if doc["resources"] else 404, doc)
        if path == "/apis/apps/v1/namespaces/default/deployments/web":  # kubectl autoscale reads its target
            return self._send(200, _WEB)
        self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                         "code": 404, "message": "not found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.bodies.append((self.path, self.headers.get("Content-Type", ""), body))
        api_version, kind = _kinds().get(self.path.split("?", 1)[0].rsplit("/", 1)[-1], ("v1", "Status"))
        self._send(201, {"apiVersion": api_version, "kind": kind, "metadata": {"name": "created"}})


@contextlib.contextmanager
def _capture_server() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    bodies: list[tuple[str, str, bytes]] = []
    handler = type("Recorder", (_Recorder,), {"bodies": bodies})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", bodies
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


def _kubectl(server: str, args: list[str], home: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=home, KUBECONFIG=os.path.join(home, "no-kubeconfig"))
    blob = os.path.join(home, "blob.bin")
    Path(blob).write_bytes(BLOB)
    args = [a.replace("{blob}", blob) for a in args]
    return subprocess.run(["kubectl", "--server", server, "-n", "default", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def capture(names: list[str]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Run each case against the recorder: (protobuf body kubectl sent, kubectl's dry-run JSON of it)."""
    out: dict[str, tuple[bytes, dict[str, Any]]] = {}
    with _capture_server() as (server, bodies), tempfile.TemporaryDirectory() as home:
        for name in names:
            bodies.clear()
            done = _kubectl(server, CASES[name], home)
            assert done.returncode == 0, done.stderr
            sent = [b for _, ct, b in bodies if protobuf.is_protobuf(ct)]
            assert len(sent) == 1, f"{name}: expected one protobuf body, got {[(p, ct) for p, ct, _ in bodies]}"
            dry = _kubectl(server, [*CASES[name], "--dry-run=client", "-o", "json"], home)
            assert dry.returncode == 0, dry.stderr
            out[name] = (sent[0], json.loads(dry.stdout))
    return out


def regenerate() -> None:
    FIXTURES.mkdir(exist_ok=True)
    for name, (body, expected) in capture(list(CASES)).items():
        (FIXTURES / f"{name}.pb").write_bytes(body)
        (FIXTURES / f"{name}.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
        print(f"{name}: {len(body)} bytes", file=sys.stderr)


# --- a tiny encoder for hand-built bodies ---------------------------------------------------------

def _uvarint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f(num: int, value: int | bool | str | bytes) -> bytes:
    """One field: ints/bools as varints, str/bytes (including nested messages) length-delimited."""
    if isinstance(value, (bool, int)):
        return _uvarint(num << 3) + _uvarint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return _uvarint(num << 3 | 2) + _uvarint(len(data)) + data


def m(*fields: bytes) -> bytes:
    return b"".join(fields)


def envelope(api_version: str, kind: str, raw: bytes, *extra: bytes) -> bytes:
    return protobuf.MAGIC + m(f(1, m(f(1, api_version), f(2, kind))), f(2, raw), *extra)


def meta(name: str, **more: bytes) -> bytes:
    """ObjectMeta as gogoproto writes it: every non-pointer field, even empty, and creationTimestamp."""
    return m(f(1, name), f(2, ""), f(3, "default"), f(4, ""), f(5, ""), f(6, ""), f(7, 0), f(8, b""),
             *more.values())


def _bad(body: bytes) -> ApiError:
    with pytest.raises(ApiError) as exc:
        protobuf.decode(body)
    assert exc.value.code == 400
    return exc.value


# --- real kubectl bodies --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_kubectl_bodies_decode_to_their_json_form(name: str) -> None:
    assert protobuf.decode(_fixture(name)) == _expected(name)


def test_deployment() -> None:
    d = protobuf.decode(_fixture("deployment"))
    assert d["apiVersion"] == "apps/v1" and d["kind"] == "Deployment"
    assert d["metadata"] == {"name": "web", "namespace": "default", "labels": {"app": "web"},
                             "creationTimestamp": None}
    spec = d["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"] == {"matchLabels": {"app": "web"}}
    assert spec["strategy"] == {}
    assert spec["template"]["metadata"] == {"labels": {"app": "web"}, "creationTimestamp": None}
    assert spec["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}], "resources": {}}]
    assert d["status"] == {}


def test_secret_configmap_and_service() -> None:
    secret = protobuf.decode(_fixture("secret"))
    assert secret["data"] == {"password": base64.b64encode(b"hunter2").decode()}
    cm = protobuf.decode(_fixture("configmap_binary"))
    assert cm["data"] == {"k": "v"}
    assert base64.b64decode(cm["binaryData"]["blob"]) == BLOB
    svc = protobuf.decode(_fixture("service"))
    assert svc["spec"]["ports"] == [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert svc["spec"]["type"] == "NodePort"
    assert protobuf.decode(_fixture("namespace")) == {"apiVersion": "v1", "kind": "Namespace", "spec": {},
                                                      "metadata": {"name": "team-a", "creationTimestamp": None},
                                                      "status": {}}


def test_quantities_and_int_or_string() -> None:
    quota = protobuf.decode(_fixture("quota"))
    assert quota["spec"] == {"hard": {"cpu": "1500m", "memory": "1Gi", "pods": "2"}, "scopes": ["BestEffort"]}
    pdb = protobuf.decode(_fixture("pdb"))
    assert pdb["spec"]["minAvailable"] == "50%"


def test_live_capture_matches_kubectl_json() -> None:
    for name, (body, expected) in capture(["deployment", "secret"]).items():
        assert protobuf.decode(body) == expected, name


# --- hand-built bodies ------------------------------------------------------------------------------

def _deployment(spec: bytes) -> dict[str, Any]:
    return protobuf.decode(envelope("apps/v1", "Deployment", m(f(1, meta("d")), f(2, spec))))


def test_pointer_fields_keep_zero_and_value_fields_drop_it() -> None:
    # replicas (*int32) = 0 is kept; minReadySeconds/paused (int32/bool, omitempty) = 0 are dropped.
    d = _deployment(m(f(1, 0), f(5, 0), f(7, False)))
    assert d["spec"] == {"replicas": 0}
    assert d["metadata"] == {"name": "d", "namespace": "default", "creationTimestamp": None}
    assert _deployment(m(f(5, 7), f(7, True)))["spec"] == {"minReadySeconds": 7, "paused": True}
    assert "spec" not in protobuf.decode(envelope("apps/v1", "Deployment", f(1, meta("d"))))


def test_required_value_fields_keep_zero() -> None:
    container = m(f(1, "c"), f(6, m(f(3, 0))))  # ports: [{containerPort: 0}] (required: no omitempty)
    pod = protobuf.decode(envelope("v1", "Pod", m(f(1, meta("p")), f(2, f(2, container)))))
    assert pod["spec"]["containers"] == [{"name": "c", "ports": [{"containerPort": 0}]}]


def test_negative_ints() -> None:
    d = _deployment(m(f(1, -1), f(6, -5)))
    assert d["spec"] == {"replicas": -1, "revisionHistoryLimit": -5}


def test_times() -> None:
    nov23 = 1795428000  # 2026-11-23T10:00:00Z
    event = m(
        f(1, meta("e")),
        f(6, m(f(1, nov23), f(2, 999_000_000))),  # firstTimestamp: nanoseconds are dropped
        f(7, m(f(1, 0))),  # lastTimestamp: the epoch is a real time
        f(10, m(f(1, nov23), f(2, 123_456_789))),  # eventTime (MicroTime)
    )
    e = protobuf.decode(envelope("v1", "Event", event))
    assert e["firstTimestamp"] == "2026-11-23T10:00:00Z"
    assert e["lastTimestamp"] == "1970-01-01T00:00:00Z"
    assert e["eventTime"] == "2026-11-23T10:00:00.123456Z"
    lease = protobuf.decode(envelope("coordination.k8s.io/v1", "Lease", m(
        f(1, meta("l")), f(2, m(f(1, "me"), f(2, 15), f(4, m(f(1, nov23))), f(5, 0))))))
    assert lease["spec"] == {"holderIdentity": "me", "leaseDurationSeconds": 15,
                             "renewTime": "2026-11-23T10:00:00.000000Z", "leaseTransitions": 0}
    with_deletion = protobuf.decode(envelope("v1", "ConfigMap", f(1, meta("c", d=f(9, m(f(1, nov23)))))))
    assert with_deletion["metadata"]["deletionTimestamp"] == "2026-11-23T10:00:00Z"


def test_managed_fields_and_raw_extensions() -> None:
    fields_v1 = b'{"f:data":{"f:a":{}}}'
    entry = m(f(1, "kubectl"), f(2, "Update"), f(3, "v1"), f(4, m(f(1, 1795428000))), f(6, "FieldsV1"),
              f(7, f(1, fields_v1)))
    cm = protobuf.decode(envelope("v1", "ConfigMap", f(1, meta("c", mf=f(17, entry)))))
    assert cm["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2026-11-23T10:00:00Z",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]
    nested = envelope("v1", "ConfigMap", m(f(1, meta("inner")), f(2, f(1, "k") + f(2, "v"))))
    lst = protobuf.decode(envelope("v1", "List", m(f(1, b""), f(2, f(1, b'{"kind":"Pod","apiVersion":"v1"}')),
                                                   f(2, f(1, nested)), f(2, b""))))
    assert lst["metadata"] == {}
    assert lst["items"] == [
        {"kind": "Pod", "apiVersion": "v1"},
        {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
         "metadata": {"name": "inner", "namespace": "default", "creationTimestamp": None}},
        None,
    ]


def test_int_or_string_forms() -> None:
    def port(target: bytes) -> Any:
        svc = protobuf.decode(envelope("v1", "Service", m(f(1, meta("s")), f(2, f(1, m(f(3, 80), f(4, target)))))))
        return svc["spec"]["ports"][0]["targetPort"]

    assert port(m(f(1, 1), f(2, 0), f(3, "http"))) == "http"
    assert port(m(f(1, 0), f(2, 8080), f(3, ""))) == 8080
    assert port(b"") == 0


def test_repeated_scalars_packed_and_unpacked() -> None:
    def groups(security_context: bytes) -> Any:
        pod = protobuf.decode(envelope("v1", "Pod", m(f(1, meta("p")), f(2, f(14, security_context)))))
        return pod["spec"]["securityContext"]["supplementalGroups"]

    assert groups(m(f(4, 1), f(4, 2))) == [1, 2]
    assert groups(f(4, _uvarint(1) + _uvarint(300) + _uvarint(-3))) == [1, 300, -3]


def test_unknown_fields_are_skipped() -> None:
    junk = m(f(99, 5), f(100, b"\x01\x02"), _uvarint(101 << 3 | 5) + b"abcd", _uvarint(102 << 3 | 1) + b"12345678")
    cm = protobuf.decode(envelope("v1", "ConfigMap", m(junk, f(1, meta("c")), f(2, m(f(1, "k"), f(2, "v"), junk)))))
    assert cm == {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
                  "metadata": {"name": "c", "namespace": "default", "creationTimestamp": None}}
    # and in the envelope
    body = envelope("v1", "ConfigMap", f(1, meta("c")), f(9, "x"), f(3, ""), f(4, protobuf.CONTENT_TYPE))
    assert protobuf.decode(body)["metadata"]["name"] == "c"


def test_map_entries_with_missing_key_or_value() -> None:
    cm = protobuf.decode(envelope("v1", "ConfigMap", m(f(1, meta("c")), f(2, f(1, "only-key")), f(2, f(2, "v")))))
    assert cm["data"] == {"only-key": "", "": "v"}
    quota = protobuf.decode(envelope("v1", "ResourceQuota", m(f(1, meta("q")), f(2, f(1, f(1, "cpu"))))))
    assert quota["spec"]["hard"] == {"cpu": "0"}


def test_meta_kinds_and_embedded_json() -> None:
    opts = protobuf.decode(envelope("v1", "DeleteOptions", m(f(1, 0), f(4, "Foreground"), f(5, "All"))))
    assert opts == {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                    "propagationPolicy": "Foreground", "dryRun": ["All"]}
    status = protobuf.decode(envelope("v1", "Status", m(f(1, b""), f(2, "Failure"), f(6, 404))))
    assert status == {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": 404}
    as_json = envelope("v1", "ConfigMap", b'{"data": {"a": "b"}}', f(4, "application/json"))
    assert protobuf.decode(as_json) == {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}


def test_is_protobuf() -> None:
    assert protobuf.is_protobuf("application/vnd.kubernetes.protobuf")
    assert protobuf.is_protobuf("Application/Vnd.Kubernetes.Protobuf; charset=utf-8")
    assert not protobuf.is_protobuf("application/json")
    assert not protobuf.is_protobuf("")


# --- malformed input ----------------------------------------------------------------------------------

def test_malformed_bodies_are_bad_requests() -> None:
    good = _fixture("deployment")
    assert "prefix" in _bad(b"{}").message
    assert "prefix" in _bad(b"").message
    assert "truncated varint" in _bad(protobuf.MAGIC + b"\x0a\x80").message
    assert "past the end" in _bad(good[:40]).message
    assert "truncated varint" in _bad(good[:-3]).message  # cut inside the trailing contentEncoding field
    assert "wrong wire type" in _bad(envelope("apps/v1", "Deployment", f(1, 5))).message
    assert "wrong wire type" in _bad(envelope("apps/v1", "Deployment", f(2, f(1, "three")))).message
    assert "unsupported wire type" in _bad(envelope("v1", "ConfigMap", _uvarint(7 << 3 | 3))).message
    assert "no apiVersion or kind" in _bad(protobuf.MAGIC + f(2, b"")).message
    unknown = _bad(envelope("v1", "Frobnicator", b""))
    assert unknown.message == 'no kind "Frobnicator" is registered for version "v1" in the protobuf schema'
    assert "contentEncoding" in _bad(envelope("v1", "ConfigMap", b"", f(3, "gzip"))).message
    assert "does not hold JSON" in _bad(envelope("v1", "List", f(2, f(1, b"\x00not json")))).message
    assert "out of range" in _bad(envelope("v1", "ConfigMap", f(1, f(8, f(1, 1 << 62))))).message
    assert "10 bytes" in _bad(envelope("v1", "ConfigMap", b"\xff" * 11)).message
    assert "field number 0" in _bad(envelope("v1", "ConfigMap", f(0, 1))).message


def test_deep_nesting_is_rejected() -> None:
    body = envelope("v1", "ConfigMap", b"")
    for _ in range(150):
        body = envelope("v1", "List", f(2, f(1, body)))
    assert "nested too deeply" in _bad(body).message


def _decodes_or_bad_request(body: bytes) -> None:
    try:
        obj = protobuf.decode(body)
    except ApiError as e:
        assert e.code == 400
        return
    assert isinstance(obj, dict)
    orjson.dumps(obj)  # JSON-shaped all the way down


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bodies(data: bytes) -> None:
    _decodes_or_bad_request(data)
    _decodes_or_bad_request(protobuf.MAGIC + data)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(protobuf.schema_table()["types"])), st.binary(max_size=300))
def test_fuzz_random_objects(type_key: str, raw: bytes) -> None:
    api_version, _, kind = type_key.rpartition("/")
    _decodes_or_bad_request(envelope(api_version, kind, raw))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(CASES)), st.data())
def test_fuzz_mutated_kubectl_bodies(name: str, data: st.DataObject) -> None:
    body = bytearray(_fixture(name))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(4, len(body)))
    _decodes_or_bad_request(bytes(body[:cut]))


# --- the schema table ---------------------------------------------------------------------------------

def test_every_served_kind_has_a_message() -> None:
    messages = protobuf.schema_table()["messages"]
    kinds = {(r.api_version, r.kind) for r in RESOURCES} | {(r.api_version, r.list_kind) for r in RESOURCES}
    kinds |= {("autoscaling/v1", "Scale"), ("v1", "Binding"), ("policy/v1", "Eviction"), ("v1", "DeleteOptions")}
    for api_version, kind in sorted(kinds):
        name = protobuf.message_for(api_version, kind)
        assert name is not None and name in messages, (api_version, kind)
        assert name.endswith("." + kind)


def test_table_shape() -> None:
    table = protobuf.schema_table()
    text = (Path(protobuf.__file__).parent / "protoschema.json").read_text()
    assert "\n" not in text.strip() and ": " not in text[:1000]  # compact
    scalar = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float"}
    for name, fields in table["messages"].items():
        for num, (json_name, kind, ref, repeated, omit) in fields.items():
            assert int(num) > 0 and json_name and repeated in (0, 1) and omit in (0, 1)
            if kind == "message":
                assert ref in table["messages"], (name, json_name)
            elif kind == "map":
                assert ref[0] == "string" and (ref[1] != "message" or ref[2] in table["messages"])
            else:
                assert kind in scalar and ref is None, (name, json_name)
    deployment_spec = table["messages"]["k8s.io.api.apps.v1.DeploymentSpec"]
    assert deployment_spec["1"] == ["replicas", "int32", None, 0, 0]
    assert deployment_spec["5"] == ["minReadySeconds", "int32", None, 0, 1]
    secret = table["messages"]["k8s.io.api.core.v1.Secret"]
    assert secret["2"] == ["data", "map", ["string", "bytes", None], 0, 0]


def test_deployment_decodes_fast() -> None:
    body = _fixture("deployment")
    protobuf.decode(body)
    n = 300
    start = time.perf_counter()
    for _ in range(n):
        protobuf.decode(body)
    assert (time.perf_counter() - start) / n < 0.001


if __name__ == "__main__":
    regenerate()
