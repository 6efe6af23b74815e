"""Unknown-field detection for fieldValidation=Strict|Warn."""

from __future__ import annotations

import copy
import time
from typing import Any

from tinykube.api import fieldcheck

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "labels": {"app": "web", "any-key": "ok"},
        "annotations": {"x/y": "z"},
    },
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "sidecar", "image": "busybox"},
                    {
                        "name": "web",
                        "image": "nginx",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "A", "value": "1"}],
                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                    },
                ],
                "nodeSelector": {"kubernetes.io/os": "linux"},
            },
        },
    },
    "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]},
}


def _dep() -> dict[str, Any]:
    return copy.deepcopy(DEPLOYMENT)


def test_clean_object_has_no_unknown_fields() -> None:
    assert fieldcheck.unknown_fields("apps", "v1", "Deployment", _dep()) == []


def test_unknown_field_deep_in_container() -> None:
    d = _dep()
    d["spec"]["template"]["spec"]["containers"][1]["imagee"] = "nginx"
    d["spec"]["template"]["spec"]["containers"][1]["ports"][0]["hostPortt"] = 1
    # Body order: "ports" precedes the "imagee" key appended last.
    assert fieldcheck.unknown_fields("apps", "v1", "Deployment", d) == [
        "spec.template.spec.containers[1].ports[0].hostPortt",
        "spec.template.spec.containers[1].imagee",
    ]


def test_unknown_field_in_metadata_and_template_metadata() -> None:
    d = _dep()
    d["metadata"]["nam"] = "x"
    d["spec"]["template"]["metadata"]["labelz"] = {}
    assert fieldcheck.unknown_fields("apps", "v1", "Deployment", d) == [
        "metadata.nam",
        "spec.template.metadata.labelz",
    ]


def test_map_keys_are_free() -> None:
    d = _dep()
    d["metadata"]["labels"]["whatever.example.com/x"] = "y"
    d["spec"]["template"]["spec"]["nodeSelector"]["anything"] = "z"
    assert fieldcheck.unknown_fields("apps", "v1", "Deployment", d) == []


def test_top_level_unknown_field_has_no_leading_dot() -> None:
    d = {"foo": 1, **_dep(), "bar": {"x": 1}}
    assert fieldcheck.unknown_fields("apps", "v1", "Deployment", d) == ["foo", "bar"]


def test_body_order_is_kept() -> None:
    d = _dep()
    d["spec"] = {"zzz": 1, **d["spec"], "aaa": 2}
    d["metadata"]["unknown"] = 1
    assert fieldcheck.unknown_fields("apps", "v1", "Deployment", d) == ["metadata.unknown", "spec.zzz", "spec.aaa"]


def test_wrong_types_and_nulls_are_ignored() -> None:
    d = _dep()
    d["spec"]["template"] = "not an object"
    d["spec"]["selector"] = None
    d["metadata"]["labels"] = ["a"]
    assert fieldcheck.unknown_fields("apps", "v1", "Deployment", d) == []


def test_opaque_types_accept_anything() -> None:
    d = _dep()
    d["metadata"]["managedFields"] = [
        {
            "manager": "kubectl",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        },
    ]
    assert fieldcheck.unknown_fields("apps", "v1", "Deployment", d) == []
    d["metadata"]["managedFields"][0]["managr"] = "x"
    assert fieldcheck.unknown_fields("apps", "v1", "Deployment", d) == ["metadata.managedFields[0].managr"]


def test_other_kinds() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}, "dta": {}}
    assert fieldcheck.unknown_fields("", "v1", "ConfigMap", cm) == ["dta"]
    ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "hi", "message": "core only"}
    assert fieldcheck.unknown_fields("events.k8s.io", "v1", "Event", ev) == ["message"]
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 3, "replica": 1}}
    assert fieldcheck.unknown_fields("autoscaling", "v1", "Scale", scale) == ["spec.replica"]


def test_unknown_kind() -> None:
    assert fieldcheck.unknown_fields("example.com", "v1", "Widget", {"anything": 1}) == []


def test_error_count_is_capped() -> None:
    d = {f"f{i}": i for i in range(150)}
    assert len(fieldcheck.unknown_fields("", "v1", "ConfigMap", d)) == fieldcheck.MAX_ERRORS


def test_strict_error() -> None:
    err = fieldcheck.strict_error(["spec.foo", "spec.template.spec.containers[0].imagee"])
    assert err.code == 400
    assert err.reason == "BadRequest"
    assert err.message == (
        'strict decoding error: unknown field "spec.foo", unknown field "spec.template.spec.containers[0].imagee"'
    )
    st = err.status()
    assert st["reason"] == "BadRequest" and st["code"] == 400


def test_strict_error_for_create() -> None:
    err = fieldcheck.strict_error(["spec.replicass"], "Deployment", "v1")
    assert err.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: '
        'strict decoding error: unknown field "spec.replicass"'
    )


def test_warnings() -> None:
    assert fieldcheck.warnings(["spec.foo", "bar"]) == ['unknown field "spec.foo"', 'unknown field "bar"']
    assert fieldcheck.warnings([]) == []


def test_fast() -> None:
    d = _dep()
    fieldcheck.unknown_fields("apps", "v1", "Deployment", d)  # compile once
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        fieldcheck.unknown_fields("apps", "v1", "Deployment", d)
    per_call = (time.perf_counter() - start) / n
    assert per_call < 0.001, per_call
