"""Defaulting: what kube-apiserver v1.32 fills in before validation, kind by kind."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinykube.api.defaults import (
    apply_defaults,
    default_pod_status,
    default_pull_policy,
    image_tag,
    pod_qos_class,
)
from tinykube.api.resources import RESOURCES, Resource, by_kind
from tinykube.api.validation import validate


def _res(group: str, kind: str) -> Resource:
    r = by_kind(group, "v1", kind)
    assert r is not None
    return r


DEPLOY = _res("apps", "Deployment")
RS = _res("apps", "ReplicaSet")
POD = _res("", "Pod")
SVC = _res("", "Service")
SECRET = _res("", "Secret")
NS = _res("", "Namespace")
NODE = _res("", "Node")
EPS = _res("discovery.k8s.io", "EndpointSlice")
EP = _res("", "Endpoints")
CM = _res("", "ConfigMap")

DEFAULTED_CONTAINER_FIELDS = {
    "imagePullPolicy": "IfNotPresent",
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}
DEFAULTED_POD_SPEC_FIELDS = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "securityContext": {},
    "schedulerName": "default-scheduler",
}


def minimal_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }


def test_minimal_deployment() -> None:
    obj = minimal_deployment()
    apply_defaults(DEPLOY, obj)
    assert obj == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": "web"}, "creationTimestamp": None},
                "spec": {
                    "containers": [{"name": "web", "image": "nginx:1.25", **DEFAULTED_CONTAINER_FIELDS}],
                    **DEFAULTED_POD_SPEC_FIELDS,
                },
            },
        },
    }
    assert validate(DEPLOY, obj) == []


def test_deployment_keeps_what_is_set() -> None:
    obj = minimal_deployment()
    obj["spec"].update(
        {
            "replicas": 0,
            "revisionHistoryLimit": 0,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
        }
    )
    apply_defaults(DEPLOY, obj)
    assert obj["spec"]["replicas"] == 0
    assert obj["spec"]["revisionHistoryLimit"] == 0
    assert obj["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"},
    }


def test_recreate_strategy_gets_no_rolling_update() -> None:
    obj = minimal_deployment()
    obj["spec"]["strategy"] = {"type": "Recreate"}
    apply_defaults(DEPLOY, obj)
    assert obj["spec"]["strategy"] == {"type": "Recreate"}


def test_replicaset() -> None:
    obj = minimal_deployment()
    obj["kind"] = "ReplicaSet"
    apply_defaults(RS, obj)
    assert obj["spec"]["replicas"] == 1
    assert "strategy" not in obj["spec"]
    assert obj["spec"]["template"]["spec"]["schedulerName"] == "default-scheduler"
    # templates get no Pod-only defaults
    assert "enableServiceLinks" not in obj["spec"]["template"]["spec"]
    assert "priority" not in obj["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("docker.io/library/nginx:latest", "Always"),
        ("localhost:5000/app", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("registry.example.com:5000/team/app:v2", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
        ("Nginx", "IfNotPresent"),  # does not parse: upstream falls back to IfNotPresent
        ("", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy
    obj: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": image}]}}
    apply_defaults(POD, obj)
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_image_tag() -> None:
    assert image_tag("nginx") == "latest"
    assert image_tag("nginx:1.2") == "1.2"
    assert image_tag("nginx@sha256:" + "0" * 64) == ""


def test_explicit_pull_policy_is_kept() -> None:
    obj: dict[str, Any] = {"spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Never"}]}}
    apply_defaults(POD, obj)
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_pod_defaults() -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox:1.36",
                    "ports": [{"containerPort": 8080}],
                    "resources": {"limits": {"cpu": "0.5", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "livenessProbe": {"httpGet": {"port": 8080}},
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
                    "lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/stop"}}},
                }
            ],
            "initContainers": [{"name": "init", "image": "busybox", "resources": {"limits": {"cpu": "1"}}}],
        },
    }
    apply_defaults(POD, obj)
    spec = obj["spec"]
    c = spec["containers"][0]
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    # canonical quantities; requests default to limits on Pods
    assert c["resources"] == {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    }
    assert spec["initContainers"][0]["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}
    assert spec["initContainers"][0]["imagePullPolicy"] == "Always"
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "metadata.name", "apiVersion": "v1"}
    assert c["livenessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 8080, "path": "/stop", "scheme": "HTTP"}
    for key, value in DEFAULTED_POD_SPEC_FIELDS.items():
        assert spec[key] == value
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert validate(POD, obj) == []


def test_pod_priority_class() -> None:
    obj: dict[str, Any] = {"spec": {"priorityClassName": "system-node-critical", "containers": []}}
    apply_defaults(POD, obj)
    assert obj["spec"]["priority"] == 2000001000


def test_host_network_ports() -> None:
    obj: dict[str, Any] = {
        "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 53}]}]}
    }
    apply_defaults(POD, obj)
    assert obj["spec"]["containers"][0]["ports"][0]["hostPort"] == 53


def test_volumes() -> None:
    obj: dict[str, Any] = {
        "spec": {
            "containers": [],
            "volumes": [
                {"name": "scratch"},
                {"name": "cfg", "configMap": {"name": "cm"}},
                {"name": "sec", "secret": {"secretName": "s", "defaultMode": 256}},
                {
                    "name": "dapi",
                    "downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]},
                },
                {"name": "proj", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                {"name": "host", "hostPath": {"path": "/var/log"}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1024Mi"}},
            ],
        }
    }
    apply_defaults(POD, obj)
    vols = {v["name"]: v for v in obj["spec"]["volumes"]}
    assert vols["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert vols["cfg"]["configMap"] == {"name": "cm", "defaultMode": 420}
    assert vols["sec"]["secret"]["defaultMode"] == 256
    assert vols["dapi"]["downwardAPI"] == {
        "items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels", "apiVersion": "v1"}}],
        "defaultMode": 420,
    }
    assert vols["proj"]["projected"] == {
        "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}],
        "defaultMode": 420,
    }
    assert vols["host"]["hostPath"] == {"path": "/var/log", "type": ""}
    assert vols["mem"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ([{}], "BestEffort"),
        ([{"requests": {"cpu": "100m"}}], "Burstable"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}], "Burstable"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
        ([{"limits": {"cpu": "1"}}], "Burstable"),
        ([{"requests": {"example.com/gpu": "1"}}], "BestEffort"),
    ],
)
def test_qos_class(resources: list[dict[str, Any]], qos: str) -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "p", "namespace": "d"},
        "spec": {"containers": [{"name": f"c{i}", "image": "x", "resources": r} for i, r in enumerate(resources)]},
    }
    apply_defaults(POD, obj)
    assert pod_qos_class(obj) == qos
    default_pod_status(obj)
    assert obj["status"] == {"phase": "Pending", "qosClass": qos}


def test_qos_class_before_defaulting() -> None:
    obj = {
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}
    }
    assert pod_qos_class(obj) == "Guaranteed"


def test_pod_status_replaces_what_was_sent() -> None:
    obj: dict[str, Any] = {
        "spec": {"containers": [{"name": "c", "image": "x"}], "schedulingGates": [{"name": "g"}]},
        "status": {"phase": "Running"},
    }
    apply_defaults(POD, obj)
    default_pod_status(obj)
    assert obj["status"]["phase"] == "Pending"
    assert obj["status"]["conditions"][0]["reason"] == "SchedulingGated"


def _service(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "s", "namespace": "d"}, "spec": {"selector": {"app": "x"}, **spec}}


def test_cluster_ip_service() -> None:
    obj = _service(ports=[{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"}])
    apply_defaults(SVC, obj)
    assert obj["spec"] == {
        "selector": {"app": "x"},
        "ports": [
            {"port": 80, "protocol": "TCP", "targetPort": 80},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
        ],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack",
        "ipFamilies": ["IPv4"],
    }


def test_node_port_and_load_balancer_services() -> None:
    np = _service(type="NodePort", ports=[{"port": 80}])
    apply_defaults(SVC, np)
    assert np["spec"]["externalTrafficPolicy"] == "Cluster"
    assert "allocateLoadBalancerNodePorts" not in np["spec"]
    lb = _service(type="LoadBalancer", ports=[{"port": 80}])
    apply_defaults(SVC, lb)
    assert lb["spec"]["externalTrafficPolicy"] == "Cluster"
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True


def test_service_cluster_ips_follow_cluster_ip() -> None:
    obj = _service(clusterIP="10.96.0.10", ports=[{"port": 80}])
    apply_defaults(SVC, obj)
    assert obj["spec"]["clusterIPs"] == ["10.96.0.10"]
    v6 = _service(clusterIP="fd00::10", ports=[{"port": 80}])
    apply_defaults(SVC, v6)
    assert v6["spec"]["ipFamilies"] == ["IPv6"]


def test_headless_and_external_name_services() -> None:
    headless = _service(clusterIP="None")
    apply_defaults(SVC, headless)
    assert headless["spec"]["clusterIPs"] == ["None"]
    assert headless["spec"]["ipFamilyPolicy"] == "SingleStack"
    selectorless = {"metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": "None"}}
    apply_defaults(SVC, selectorless)
    assert selectorless["spec"]["ipFamilyPolicy"] == "RequireDualStack"
    assert selectorless["spec"]["ipFamilies"] == ["IPv4"]
    ext = {"metadata": {"name": "s", "namespace": "d"}, "spec": {"type": "ExternalName", "externalName": "a.b"}}
    apply_defaults(SVC, ext)
    assert ext["spec"] == {"type": "ExternalName", "externalName": "a.b", "sessionAffinity": "None"}


def test_client_ip_affinity() -> None:
    obj = _service(sessionAffinity="ClientIP", ports=[{"port": 80}])
    apply_defaults(SVC, obj)
    assert obj["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_secret() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "s"}, "data": {"a": "YQ=="}, "stringData": {"b": "hello", "a": "over"}}
    apply_defaults(SECRET, obj)
    assert obj == {"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "b3Zlcg==", "b": "aGVsbG8="}}


def test_namespace() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "team-a", "namespace": "ignored"}}
    apply_defaults(NS, obj)
    assert obj == {
        "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def test_namespace_finalizer_only_on_create() -> None:
    stored: dict[str, Any] = {
        "metadata": {"name": "a", "resourceVersion": "9"},
        "spec": {"finalizers": []},
        "status": {"phase": "Terminating"},
    }
    apply_defaults(NS, stored)
    assert stored["spec"]["finalizers"] == []
    assert stored["status"]["phase"] == "Terminating"
    explicit: dict[str, Any] = {"metadata": {"name": "a", "resourceVersion": "9"}, "spec": {}}
    apply_defaults(NS, explicit, creating=True)
    assert explicit["spec"]["finalizers"] == ["kubernetes"]


def test_node_allocatable() -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "n"},
        "status": {"capacity": {"cpu": "4", "memory": "8192Mi", "pods": "110"}},
    }
    apply_defaults(NODE, obj)
    assert obj["status"]["capacity"] == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert obj["status"]["allocatable"] == obj["status"]["capacity"]


def test_endpoint_ports() -> None:
    eps: dict[str, Any] = {"addressType": "IPv4", "ports": [{"port": 80}]}
    apply_defaults(EPS, eps)
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    ep: dict[str, Any] = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}
    apply_defaults(EP, ep)
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]


def test_configmap_is_untouched() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "b"}}
    before = copy.deepcopy(obj)
    apply_defaults(CM, obj)
    assert obj == before


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r.group}/{r.kind}")
def test_defaulting_is_idempotent(resource: Resource) -> None:
    obj: dict[str, Any] = minimal_deployment() if resource.kind in ("Deployment", "ReplicaSet") else _service()
    if resource.kind == "Pod":
        obj = {"spec": minimal_deployment()["spec"]["template"]["spec"]}
    apply_defaults(resource, obj)
    once = copy.deepcopy(obj)
    apply_defaults(resource, obj)
    assert obj == once


# ---------------------------------------------------------------------------
# Junk never raises
# ---------------------------------------------------------------------------

_KEYS = [
    "spec", "metadata", "status", "containers", "template", "ports", "resources", "limits", "volumes",
    "strategy", "rollingUpdate", "clusterIP", "type", "stringData", "data", "capacity", "name", "x",
]  # fmt: skip
_JUNK = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), st.sampled_from(["", "1Gi", "None"])
    ),
    lambda ch: st.one_of(st.lists(ch, max_size=3), st.dictionaries(st.sampled_from(_KEYS), ch, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(RESOURCES), _JUNK, _JUNK)
def test_junk_never_raises(resource: Resource, obj: Any, old: Any) -> None:
    apply_defaults(resource, obj)
    if isinstance(obj, dict):
        if resource.kind == "Pod":
            default_pod_status(obj)
