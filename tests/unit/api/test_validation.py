"""Validation: upstream's messages and field paths, update rules, quantities, and junk that never crashes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinykube.api import validation as V
from tinykube.api.defaults import apply_defaults
from tinykube.api.errors import invalid
from tinykube.api.resources import RESOURCES, Resource, by_kind
from tinykube.api.validation import (
    format_quantity,
    parse_quantity,
    validate,
    validate_scale_replicas,
    validate_status,
)


def _res(group: str, kind: str) -> Resource:
    r = by_kind(group, "v1", kind)
    assert r is not None
    return r


DEPLOY = _res("apps", "Deployment")
RS = _res("apps", "ReplicaSet")
POD = _res("", "Pod")
SVC = _res("", "Service")
CM = _res("", "ConfigMap")
SECRET = _res("", "Secret")
NS = _res("", "Namespace")
NODE = _res("", "Node")
LEASE = _res("coordination.k8s.io", "Lease")
EPS = _res("discovery.k8s.io", "EndpointSlice")
EP = _res("", "Endpoints")
SA = _res("", "ServiceAccount")
EVENT = _res("", "Event")

DNS1123_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_LABEL = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QNAME_NAME_PART = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
CONFIG_KEY = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
PORT_RANGE = "must be between 1 and 65535, inclusive"


# ---------------------------------------------------------------------------
# Seed manifests (valid after defaulting)
# ---------------------------------------------------------------------------


def deployment() -> dict[str, Any]:
    """A Deployment with env fieldRef, resources and imagePullSecrets."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "imagePullSecrets": [{"name": "regcred"}],
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "name": "http"}],
                            "env": [
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "MODE", "value": "prod"},
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "64Mi"},
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                            },
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                        }
                    ],
                },
            },
        },
    }


def storefront() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "storefront", "namespace": "shop"},
        "spec": {
            "replicas": 3,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "selector": {"matchLabels": {"app": "storefront", "tier": "frontend"}},
            "template": {
                "metadata": {"labels": {"app": "storefront", "tier": "frontend", "version": "v2"}},
                "spec": {"containers": [{"name": "storefront", "image": "registry.example.com/shop/storefront:2.1"}]},
            },
        },
    }


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "cm"}}, {"name": "scratch"}],
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def replicaset() -> dict[str, Any]:
    d = storefront()
    d["kind"] = "ReplicaSet"
    del d["spec"]["strategy"]
    return d


def defaulted(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    apply_defaults(resource, obj)
    return obj


def messages(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [str(e) for e in validate(resource, obj, old)]


SEEDS: list[tuple[Resource, Callable[[], dict[str, Any]]]] = [
    (DEPLOY, deployment),
    (DEPLOY, storefront),
    (RS, replicaset),
    (POD, pod),
    (SVC, service),
    (
        SVC,
        lambda: {
            "metadata": {"name": "np", "namespace": "d"},
            "spec": {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80, "nodePort": 30080}]},
        },
    ),
    (
        SVC,
        lambda: {
            "metadata": {"name": "lb", "namespace": "d"},
            "spec": {
                "type": "LoadBalancer",
                "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
                "externalTrafficPolicy": "Local",
            },
        },
    ),
    (
        SVC,
        lambda: {"metadata": {"name": "db", "namespace": "d"}, "spec": {"clusterIP": "None", "selector": {"a": "b"}}},
    ),
    (
        SVC,
        lambda: {
            "metadata": {"name": "ext", "namespace": "d"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com."},
        },
    ),
    (CM, lambda: {"metadata": {"name": "cfg", "namespace": "d"}, "data": {"app.properties": "a=b", "KEY_1": "x"}}),
    (
        SECRET,
        lambda: {
            "metadata": {"name": "s", "namespace": "d"},
            "data": {"password": "c2VjcmV0"},
            "stringData": {"user": "admin"},
        },
    ),
    (
        SECRET,
        lambda: {
            "metadata": {"name": "tls", "namespace": "d"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
        },
    ),
    (NS, lambda: {"metadata": {"name": "team-a"}}),
    (NODE, lambda: {"metadata": {"name": "node-1"}, "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}}),
    (LEASE, lambda: {"metadata": {"name": "l", "namespace": "kube-system"}, "spec": {"leaseDurationSeconds": 15}}),
    (
        EPS,
        lambda: {
            "metadata": {"name": "web-abc", "namespace": "d"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.5"]}],
            "ports": [{"name": "http", "port": 80}],
        },
    ),
    (
        EP,
        lambda: {
            "metadata": {"name": "web", "namespace": "d"},
            "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}],
        },
    ),
    (SA, lambda: {"metadata": {"name": "default", "namespace": "d"}}),
    (
        EVENT,
        lambda: {
            "metadata": {"name": "p.1", "namespace": "d"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "d"},
            "reason": "Scheduled",
            "message": "ok",
        },
    ),
]


@pytest.mark.parametrize(("resource", "make"), SEEDS, ids=lambda x: getattr(x, "kind", ""))
def test_seed_manifests_are_valid(resource: Resource, make: Callable[[], dict[str, Any]]) -> None:
    obj = defaulted(resource, make())
    assert messages(resource, obj) == []
    # and an unchanged update is valid too
    assert messages(resource, obj, copy.deepcopy(obj)) == []


# ---------------------------------------------------------------------------
# Create rules, table-driven: (resource, manifest factory, mutation, expected messages)
# ---------------------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting a dotted path (``[n]`` indexes lists); ``value`` ``...`` deletes."""

    def mutate(obj: dict[str, Any]) -> None:
        parts: list[Any] = []
        for seg in path.split("."):
            while "[" in seg:
                name, _, rest = seg.partition("[")
                if name:
                    parts.append(name)
                idx, _, seg = rest.partition("]")
                parts.append(int(idx))
            if seg:
                parts.append(seg)
        cur: Any = obj
        for p in parts[:-1]:
            cur = cur[p]
        if value is ...:
            del cur[parts[-1]]
        else:
            cur[parts[-1]] = value

    return mutate


C0 = "spec.template.spec.containers[0]"

CREATE_CASES: list[tuple[str, Resource, Callable[[], dict[str, Any]], Callable[[dict[str, Any]], None], list[str]]] = [
    # --- ObjectMeta
    (
        "name-format",
        DEPLOY,
        deployment,
        _set("metadata.name", "Foo"),
        [f'metadata.name: Invalid value: "Foo": {DNS1123_SUBDOMAIN}'],
    ),
    (
        "name-required",
        DEPLOY,
        deployment,
        _set("metadata.name", ...),
        ["metadata.name: Required value: name or generateName is required"],
    ),
    ("namespace-required", DEPLOY, deployment, _set("metadata.namespace", ...), ["metadata.namespace: Required value"]),
    (
        "namespace-format",
        DEPLOY,
        deployment,
        _set("metadata.namespace", "a.b"),
        ['metadata.namespace: Invalid value: "a.b": must not contain dots'],
    ),
    (
        "generate-name",
        DEPLOY,
        deployment,
        _set("metadata.generateName", "Web-"),
        [f'metadata.generateName: Invalid value: "Web-": {DNS1123_SUBDOMAIN}'],
    ),
    (
        "label-key",
        DEPLOY,
        deployment,
        _set("metadata.labels", {"bad key": "v"}),
        [f'metadata.labels: Invalid value: "bad key": {QNAME_NAME_PART}'],
    ),
    (
        "label-key-prefix",
        DEPLOY,
        deployment,
        _set("metadata.labels", {"Example.com/app": "v"}),
        [f'metadata.labels: Invalid value: "Example.com/app": prefix part {DNS1123_SUBDOMAIN}'],
    ),
    (
        "label-key-two-slashes",
        DEPLOY,
        deployment,
        _set("metadata.labels", {"a/b/c": "v"}),
        [
            'metadata.labels: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, '
            "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
            "or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
            "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ],
    ),
    (
        "label-value",
        DEPLOY,
        deployment,
        _set("metadata.labels", {"app": "-x"}),
        [f'metadata.labels: Invalid value: "-x": {LABEL_VALUE}'],
    ),
    (
        "label-value-too-long",
        DEPLOY,
        deployment,
        _set("metadata.labels", {"app": "a" * 64}),
        [f'metadata.labels: Invalid value: "{"a" * 64}": must be no more than 63 characters'],
    ),
    (
        "annotations-too-big",
        DEPLOY,
        deployment,
        _set("metadata.annotations", {"big": "x" * (256 * 1024)}),
        ["metadata.annotations: Too long: must have at most 262144 bytes"],
    ),
    (
        "owner-reference",
        DEPLOY,
        deployment,
        _set("metadata.ownerReferences", [{"apiVersion": "", "kind": "", "name": "", "uid": ""}]),
        [
            'metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty',
            'metadata.ownerReferences.kind: Invalid value: "": must not be empty',
            'metadata.ownerReferences.name: Invalid value: "": must not be empty',
            'metadata.ownerReferences.uid: Invalid value: "": must not be empty',
        ],
    ),
    (
        "finalizer",
        DEPLOY,
        deployment,
        _set("metadata.finalizers", ["custom"]),
        [
            'metadata.finalizers[0]: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified'
        ],
    ),
    # --- Deployment spec
    (
        "replicas",
        DEPLOY,
        deployment,
        _set("spec.replicas", -1),
        ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
    ),
    (
        "selector-mismatch",
        DEPLOY,
        deployment,
        _set("spec.template.metadata.labels", {"app": "x"}),
        [
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`'
        ],
    ),
    (
        "selector-required",
        DEPLOY,
        deployment,
        _set("spec.selector", ...),
        [
            "spec.selector: Required value",
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`',
        ],
    ),
    (
        "template-labels-required",
        DEPLOY,
        deployment,
        _set("spec.template.metadata.labels", ...),
        [
            "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`"
        ],
    ),
    (
        "selector-empty",
        DEPLOY,
        deployment,
        _set("spec.selector", {}),
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ],
    ),
    (
        "selector-bad-operator",
        DEPLOY,
        deployment,
        _set("spec.selector", {"matchExpressions": [{"key": "app", "operator": "Foo", "values": ["web"]}]}),
        [
            'spec.selector.matchExpressions[0].operator: Invalid value: "Foo": not a valid selector operator',
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
            'MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"app", Operator:"Foo", '
            'Values:[]string{"web"}}}}: invalid label selector',
        ],
    ),
    (
        "max-unavailable-percent",
        DEPLOY,
        storefront,
        _set("spec.strategy.rollingUpdate.maxUnavailable", "110%"),
        [
            'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"110%"}: must not be greater than 100%'
        ],
    ),
    (
        "max-surge-format",
        DEPLOY,
        storefront,
        _set("spec.strategy.rollingUpdate.maxSurge", "1x"),
        [
            'spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"1x"}: '
            "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
            "regex used for validation is '[0-9]+%')"
        ],
    ),
    (
        "max-surge-negative",
        DEPLOY,
        storefront,
        _set("spec.strategy.rollingUpdate.maxSurge", -1),
        ["spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"],
    ),
    (
        "both-zero",
        DEPLOY,
        storefront,
        _set("spec.strategy.rollingUpdate", {"maxSurge": 0, "maxUnavailable": "0%"}),
        [
            'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"0%"}: may not be 0 when `maxSurge` is 0'
        ],
    ),
    (
        "recreate-with-rolling-update",
        DEPLOY,
        storefront,
        _set("spec.strategy.type", "Recreate"),
        ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"],
    ),
    (
        "strategy-type",
        DEPLOY,
        storefront,
        _set("spec.strategy", {"type": "BlueGreen"}),
        [
            'spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", '
            'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", "RollingUpdate"'
        ],
    ),
    (
        "revision-history",
        DEPLOY,
        deployment,
        _set("spec.revisionHistoryLimit", -2),
        ["spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0"],
    ),
    (
        "min-ready",
        DEPLOY,
        deployment,
        _set("spec.minReadySeconds", -1),
        ["spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0"],
    ),
    (
        "progress-deadline",
        DEPLOY,
        deployment,
        _set("spec.minReadySeconds", 600),
        ["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"],
    ),
    (
        "template-restart-policy",
        DEPLOY,
        deployment,
        _set("spec.template.spec.restartPolicy", "Never"),
        ['spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'],
    ),
    (
        "template-active-deadline",
        DEPLOY,
        deployment,
        _set("spec.template.spec.activeDeadlineSeconds", 10),
        ["spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"],
    ),
    (
        "template-label-value",
        DEPLOY,
        deployment,
        _set("spec.template.metadata.labels", {"app": "web", "v": "a b"}),
        [f'spec.template.labels: Invalid value: "a b": {LABEL_VALUE}'],
    ),
    # --- ReplicaSet
    (
        "rs-replicas",
        RS,
        replicaset,
        _set("spec.replicas", -3),
        ["spec.replicas: Invalid value: -3: must be greater than or equal to 0"],
    ),
    (
        "rs-selector-mismatch",
        RS,
        replicaset,
        _set("spec.selector.matchLabels.tier", "backend"),
        [
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"storefront", "tier":"frontend", '
            '"version":"v2"}: `selector` does not match template `labels`'
        ],
    ),
    # --- PodSpec (in a template)
    (
        "containers-required",
        DEPLOY,
        deployment,
        _set("spec.template.spec.containers", []),
        ["spec.template.spec.containers: Required value"],
    ),
    ("image-required", DEPLOY, deployment, _set(f"{C0}.image", ...), [f"{C0}.image: Required value"]),
    ("container-name-required", DEPLOY, deployment, _set(f"{C0}.name", ""), [f"{C0}.name: Required value"]),
    (
        "container-name-format",
        DEPLOY,
        deployment,
        _set(f"{C0}.name", "Web_1"),
        [f'{C0}.name: Invalid value: "Web_1": {DNS1123_LABEL}'],
    ),
    (
        "container-name-duplicate",
        DEPLOY,
        deployment,
        lambda o: o["spec"]["template"]["spec"]["containers"].append({"name": "web", "image": "x"}),
        ['spec.template.spec.containers[1].name: Duplicate value: "web"'],
    ),
    (
        "container-port-range",
        DEPLOY,
        deployment,
        _set(f"{C0}.ports[0].containerPort", 70000),
        [f"{C0}.ports[0].containerPort: Invalid value: 70000: {PORT_RANGE}"],
    ),
    (
        "container-port-required",
        DEPLOY,
        deployment,
        _set(f"{C0}.ports[0].containerPort", 0),
        [f"{C0}.ports[0].containerPort: Required value"],
    ),
    (
        "container-port-protocol",
        DEPLOY,
        deployment,
        _set(f"{C0}.ports[0].protocol", "HTTP"),
        [f'{C0}.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'],
    ),
    (
        "container-port-name",
        DEPLOY,
        deployment,
        _set(f"{C0}.ports[0].name", "http-port-too-long"),
        [f'{C0}.ports[0].name: Invalid value: "http-port-too-long": must be no more than 15 characters'],
    ),
    (
        "container-port-name-letter",
        DEPLOY,
        deployment,
        _set(f"{C0}.ports[0].name", "8080"),
        [f'{C0}.ports[0].name: Invalid value: "8080": must contain at least one letter (a-z)'],
    ),
    (
        "env-name",
        DEPLOY,
        deployment,
        _set(f"{C0}.env[1].name", "A=B"),
        [
            f"{C0}.env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"
        ],
    ),
    ("env-name-required", DEPLOY, deployment, _set(f"{C0}.env[1].name", ""), [f"{C0}.env[1].name: Required value"]),
    (
        "env-field-path",
        DEPLOY,
        deployment,
        _set(f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "spec.foo"),
        [
            f'{C0}.env[0].valueFrom.fieldRef.fieldPath: Invalid value: "spec.foo": error converting fieldPath: field label not supported: spec.foo'
        ],
    ),
    (
        "env-field-path-unsupported",
        DEPLOY,
        deployment,
        _set(f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "status.phase"),
        [
            f'{C0}.env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": supported values: '
            '"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", '
            '"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"'
        ],
    ),
    (
        "env-value-and-value-from",
        DEPLOY,
        deployment,
        _set(f"{C0}.env[0].value", "x"),
        [f'{C0}.env[0].valueFrom: Invalid value: "": may not be specified when `value` is not empty'],
    ),
    (
        "env-value-from-empty",
        DEPLOY,
        deployment,
        _set(f"{C0}.env[0].valueFrom", {}),
        [
            f'{C0}.env[0].valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`'
        ],
    ),
    (
        "env-secret-key",
        DEPLOY,
        deployment,
        _set(f"{C0}.env[0].valueFrom", {"secretKeyRef": {"name": "s", "key": "a b"}}),
        [f'{C0}.env[0].valueFrom.secretKeyRef.key: Invalid value: "a b": {CONFIG_KEY}'],
    ),
    (
        "requests-over-limits",
        DEPLOY,
        deployment,
        _set(f"{C0}.resources.requests.cpu", "1"),
        [f'{C0}.resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 500m'],
    ),
    (
        "quantity-syntax",
        DEPLOY,
        deployment,
        _set(f"{C0}.resources.limits.memory", "1 GB"),
        [
            f'{C0}.resources.limits[memory]: Invalid value: "1 GB": quantities must match the regular expression '
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        ],
    ),
    (
        "quantity-negative",
        DEPLOY,
        deployment,
        _set(f"{C0}.resources.requests.memory", "-1Mi"),
        [f'{C0}.resources.requests[memory]: Invalid value: "-1Mi": must be greater than or equal to 0'],
    ),
    (
        "resource-name",
        DEPLOY,
        deployment,
        _set(f"{C0}.resources.limits.gpu", "1"),
        [
            f'{C0}.resources.limits[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified',
            f'{C0}.resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        ],
    ),
    (
        "restart-policy",
        POD,
        pod,
        _set("spec.restartPolicy", "Sometimes"),
        ['spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'],
    ),
    (
        "dns-policy",
        POD,
        pod,
        _set("spec.dnsPolicy", "Google"),
        [
            'spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'
        ],
    ),
    (
        "pull-policy",
        POD,
        pod,
        _set("spec.containers[0].imagePullPolicy", "Sometimes"),
        [
            'spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'
        ],
    ),
    (
        "volume-duplicate",
        POD,
        pod,
        _set("spec.volumes[1].name", "cfg"),
        ['spec.volumes[1].name: Duplicate value: "cfg"'],
    ),
    (
        "volume-mount-unknown",
        POD,
        pod,
        _set("spec.containers[0].volumeMounts", [{"name": "data", "mountPath": "/data"}]),
        ['spec.containers[0].volumeMounts[0].name: Not found: "data"'],
    ),
    (
        "volume-mount-path-unique",
        POD,
        pod,
        _set(
            "spec.containers[0].volumeMounts",
            [{"name": "cfg", "mountPath": "/etc/x"}, {"name": "scratch", "mountPath": "/etc/x"}],
        ),
        ['spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/etc/x": must be unique'],
    ),
    (
        "probe-two-handlers",
        POD,
        pod,
        _set("spec.containers[0].livenessProbe", {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}),
        ["spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"],
    ),
    (
        "probe-no-handler",
        POD,
        pod,
        _set("spec.containers[0].livenessProbe", {"periodSeconds": 5}),
        ["spec.containers[0].livenessProbe: Required value: must specify a handler type"],
    ),
    (
        "probe-port",
        POD,
        pod,
        _set("spec.containers[0].readinessProbe", {"tcpSocket": {"port": 0}}),
        [f"spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: 0: {PORT_RANGE}"],
    ),
    (
        "liveness-success-threshold",
        POD,
        pod,
        _set("spec.containers[0].livenessProbe", {"exec": {"command": ["true"]}, "successThreshold": 2}),
        ["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"],
    ),
    (
        "active-deadline",
        POD,
        pod,
        _set("spec.activeDeadlineSeconds", 0),
        ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"],
    ),
    ("pod-name", POD, pod, _set("metadata.name", "p_1"), [f'metadata.name: Invalid value: "p_1": {DNS1123_SUBDOMAIN}']),
    (
        "pod-image-whitespace",
        POD,
        pod,
        _set("spec.containers[0].image", " busybox"),
        ['spec.containers[0].image: Invalid value: " busybox": must not have leading or trailing whitespace'],
    ),
    (
        "toleration-operator",
        POD,
        pod,
        _set("spec.tolerations", [{"operator": "Equal", "value": "x"}]),
        [
            'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means "match all values and all keys"'
        ],
    ),
    # --- Service
    (
        "svc-name",
        SVC,
        service,
        _set("metadata.name", "1web"),
        [f'metadata.name: Invalid value: "1web": {DNS1035_LABEL}'],
    ),
    ("svc-ports-required", SVC, service, _set("spec.ports", []), ["spec.ports: Required value"]),
    (
        "svc-port-range",
        SVC,
        service,
        _set("spec.ports[0].port", 0),
        [f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}"],
    ),
    (
        "svc-port-names",
        SVC,
        service,
        lambda o: o["spec"]["ports"].append({"port": 443}),
        ["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"],
    ),
    (
        "svc-port-name-duplicate",
        SVC,
        service,
        lambda o: o["spec"].__setitem__("ports", [{"name": "a", "port": 80}, {"name": "a", "port": 81}]),
        ['spec.ports[1].name: Duplicate value: "a"'],
    ),
    (
        "svc-protocol",
        SVC,
        service,
        _set("spec.ports[0].protocol", "ICMP"),
        ['spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'],
    ),
    (
        "svc-type",
        SVC,
        service,
        _set("spec.type", "Magic"),
        [
            'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'
        ],
    ),
    (
        "svc-node-port-on-cluster-ip",
        SVC,
        service,
        _set("spec.ports[0].nodePort", 30080),
        ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
    ),
    (
        "svc-target-port-name",
        SVC,
        service,
        _set("spec.ports[0].targetPort", "HTTP"),
        [
            'spec.ports[0].targetPort: Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
            'spec.ports[0].targetPort: Invalid value: "HTTP": must contain at least one letter (a-z)',
        ],
    ),
    (
        "svc-target-port-number",
        SVC,
        service,
        _set("spec.ports[0].targetPort", 65536),
        [f"spec.ports[0].targetPort: Invalid value: 65536: {PORT_RANGE}"],
    ),
    (
        "svc-selector",
        SVC,
        service,
        _set("spec.selector", {"app": "a b"}),
        [f'spec.selector: Invalid value: "a b": {LABEL_VALUE}'],
    ),
    (
        "svc-session-affinity",
        SVC,
        service,
        _set("spec.sessionAffinity", "Cookie"),
        ['spec.sessionAffinity: Unsupported value: "Cookie": supported values: "ClientIP", "None"'],
    ),
    (
        "svc-cluster-ip",
        SVC,
        service,
        _set("spec.clusterIP", "10.0.0.300"),
        [
            'spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'
        ],
    ),
]


def _svc_typed(stype: str, **spec: Any) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        s = service()
        s["spec"]["type"] = stype
        s["spec"].update(spec)
        return s

    return make


CREATE_CASES += [
    (
        "svc-none-for-node-port",
        SVC,
        _svc_typed("NodePort", clusterIP="None"),
        lambda o: None,
        ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"],
    ),
    (
        "svc-node-port-range",
        SVC,
        _svc_typed("NodePort"),
        _set("spec.ports[0].nodePort", 80),
        [
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        ],
    ),
    (
        "svc-external-name-required",
        SVC,
        _svc_typed("ExternalName"),
        lambda o: None,
        ["spec.externalName: Required value"],
    ),
    (
        "svc-external-name-format",
        SVC,
        _svc_typed("ExternalName", externalName="DB.example.com"),
        lambda o: None,
        [f'spec.externalName: Invalid value: "DB.example.com": {DNS1123_SUBDOMAIN}'],
    ),
    # --- ConfigMap / Secret
    (
        "cm-key",
        CM,
        lambda: {"metadata": {"name": "c", "namespace": "d"}, "data": {"bad key": "v"}},
        lambda o: None,
        [f'data[bad key]: Invalid value: "bad key": {CONFIG_KEY}'],
    ),
    (
        "cm-key-dots",
        CM,
        lambda: {"metadata": {"name": "c", "namespace": "d"}, "data": {"..x": "v"}},
        lambda o: None,
        ["data[..x]: Invalid value: \"..x\": must not start with '..'"],
    ),
    (
        "cm-duplicate-binary",
        CM,
        lambda: {"metadata": {"name": "c", "namespace": "d"}, "data": {"k": "v"}, "binaryData": {"k": "dg=="}},
        lambda o: None,
        ['data[k]: Invalid value: "k": duplicate of key present in binaryData'],
    ),
    (
        "cm-too-big",
        CM,
        lambda: {"metadata": {"name": "c", "namespace": "d"}, "data": {"k": "x" * (1024 * 1024 + 1)}},
        lambda o: None,
        [": Too long: must have at most 1048576 bytes"],
    ),
    (
        "secret-base64",
        SECRET,
        lambda: {"metadata": {"name": "s", "namespace": "d"}, "data": {"k": "not base64!"}},
        lambda o: None,
        ['data[k]: Invalid value: "<secret contents redacted>": illegal base64 data at input byte 3'],
    ),
    (
        "secret-key",
        SECRET,
        lambda: {"metadata": {"name": "s", "namespace": "d"}, "data": {"a/b": "eA=="}},
        lambda o: None,
        [f'data[a/b]: Invalid value: "a/b": {CONFIG_KEY}'],
    ),
    (
        "secret-tls",
        SECRET,
        lambda: {"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {}},
        lambda o: None,
        ["data[tls.crt]: Required value", "data[tls.key]: Required value"],
    ),
    # --- others
    (
        "ns-name",
        NS,
        lambda: {"metadata": {"name": "team.a"}},
        lambda o: None,
        ['metadata.name: Invalid value: "team.a": must not contain dots'],
    ),
    (
        "eps-address-type",
        EPS,
        lambda: {"metadata": {"name": "e", "namespace": "d"}, "addressType": "IPX"},
        lambda o: None,
        ['addressType: Unsupported value: "IPX": supported values: "FQDN", "IPv4", "IPv6"'],
    ),
    (
        "eps-address-type-required",
        EPS,
        lambda: {"metadata": {"name": "e", "namespace": "d"}},
        lambda o: None,
        ["addressType: Required value"],
    ),
    (
        "lease-duration",
        LEASE,
        lambda: {
            "metadata": {"name": "l", "namespace": "d"},
            "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1},
        },
        lambda o: None,
        [
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
        ],
    ),
    (
        "endpoints-ip",
        EP,
        lambda: {"metadata": {"name": "e", "namespace": "d"}, "subsets": [{"addresses": [{"ip": "127.0.0.1"}]}]},
        lambda o: None,
        [
            'subsets[0].addresses[0].ip: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)'
        ],
    ),
    (
        "sa-name",
        SA,
        lambda: {"metadata": {"name": "A", "namespace": "d"}},
        lambda o: None,
        [f'metadata.name: Invalid value: "A": {DNS1123_SUBDOMAIN}'],
    ),
    (
        "event-namespace",
        EVENT,
        lambda: {"metadata": {"name": "e", "namespace": "d"}, "involvedObject": {"kind": "Pod", "namespace": "other"}},
        lambda o: None,
        ['involvedObject.namespace: Invalid value: "other": does not match event.namespace'],
    ),
]


@pytest.mark.parametrize(
    ("resource", "make", "mutate", "expected"),
    [c[1:] for c in CREATE_CASES],
    ids=[c[0] for c in CREATE_CASES],
)
def test_create_rules(
    resource: Resource,
    make: Callable[[], dict[str, Any]],
    mutate: Callable[[dict[str, Any]], None],
    expected: list[str],
) -> None:
    obj = make()
    mutate(obj)
    apply_defaults(resource, obj)
    assert messages(resource, obj) == expected


def test_status_message_reads_like_upstream() -> None:
    obj = defaulted(DEPLOY, deployment())
    obj["spec"]["replicas"] = -1
    err = invalid("Deployment", "web", validate(DEPLOY, obj), "apps")
    assert err.code == 422
    assert err.message == (
        'Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )


def test_errors_come_in_upstream_order() -> None:
    obj = defaulted(DEPLOY, deployment())
    obj["metadata"]["name"] = "Web"
    obj["spec"]["replicas"] = -1
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    obj["spec"]["revisionHistoryLimit"] = -1
    assert [e.field for e in validate(DEPLOY, obj)] == [
        "metadata.name",
        "spec.replicas",
        f"{C0}.image",
        "spec.revisionHistoryLimit",
    ]


# ---------------------------------------------------------------------------
# Update rules
# ---------------------------------------------------------------------------


def _stored(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    obj = defaulted(resource, obj)
    obj["metadata"].update({"uid": "1111", "resourceVersion": "7", "creationTimestamp": "2024-01-01T00:00:00Z"})
    return obj


def test_deployment_selector_is_immutable() -> None:
    old = _stored(DEPLOY, deployment())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert messages(DEPLOY, new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"x"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    ]


def test_deployment_update_of_replicas_and_image_is_fine() -> None:
    old = _stored(DEPLOY, deployment())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert messages(DEPLOY, new, old) == []


def test_replicaset_selector_is_immutable() -> None:
    old = _stored(RS, replicaset())
    new = copy.deepcopy(old)
    new["spec"]["selector"]["matchLabels"] = {"app": "storefront"}
    assert [e.field for e in validate(RS, new, old)] == ["spec.selector"]


def test_metadata_name_and_namespace_are_immutable() -> None:
    old = _stored(DEPLOY, deployment())
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "other"
    new["metadata"]["namespace"] = "elsewhere"
    new["metadata"]["uid"] = "2222"
    assert messages(DEPLOY, new, old) == [
        'metadata.name: Invalid value: "other": field is immutable',
        'metadata.namespace: Invalid value: "elsewhere": field is immutable',
        'metadata.uid: Invalid value: "2222": field is immutable',
    ]


def test_update_may_leave_system_metadata_out() -> None:
    old = _stored(DEPLOY, deployment())
    new = copy.deepcopy(old)
    del new["metadata"]["uid"], new["metadata"]["creationTimestamp"]
    assert messages(DEPLOY, new, old) == []


def test_namespace_name_is_immutable() -> None:
    old = _stored(NS, {"metadata": {"name": "a"}})
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "b"
    assert messages(NS, new, old) == ['metadata.name: Invalid value: "b": field is immutable']


def test_service_cluster_ip_is_immutable() -> None:
    old = service()
    old["spec"]["clusterIP"] = "10.96.0.10"
    old = _stored(SVC, old)
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.11"
    new["spec"]["clusterIPs"] = ["10.96.0.11"]
    assert messages(SVC, new, old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set'
    ]


def test_configmap_immutable_data() -> None:
    old = _stored(CM, {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "1"}, "immutable": True})
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert messages(CM, new, old) == ["data: Forbidden: field is immutable when `immutable` is set"]
    new = copy.deepcopy(old)
    new["immutable"] = False
    assert messages(CM, new, old) == ["immutable: Forbidden: field is immutable when `immutable` is set"]


def test_secret_type_and_immutable_data() -> None:
    old = _stored(SECRET, {"metadata": {"name": "s", "namespace": "d"}, "data": {"a": "eA=="}, "immutable": True})
    new = copy.deepcopy(old)
    new["type"] = "kubernetes.io/basic-auth"
    new["data"] = {"username": "eA=="}
    assert messages(SECRET, new, old) == [
        'type: Invalid value: "kubernetes.io/basic-auth": field is immutable',
        "data: Forbidden: field is immutable when `immutable` is set",
    ]


def test_pod_update_may_change_image_only() -> None:
    old = _stored(POD, pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:1.36"
    new["spec"]["activeDeadlineSeconds"] = 100
    new["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    assert messages(POD, new, old) == []
    new["spec"]["containers"][0]["command"] = ["sh"]
    errs = validate(POD, new, old)
    assert len(errs) == 1
    assert errs[0].field == "spec"
    assert errs[0].type == "Forbidden"
    assert errs[0].detail.startswith(
        "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
        "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
    )
    assert "Containers" in errs[0].detail


def test_pod_update_may_not_add_containers() -> None:
    old = _stored(POD, pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"].append({"name": "d", "image": "x"})
    apply_defaults(POD, new)
    assert "spec.containers: Forbidden: pod updates may not add or remove containers" in messages(POD, new, old)


def test_pod_active_deadline_may_only_decrease() -> None:
    old = _stored(POD, pod())
    old["spec"]["activeDeadlineSeconds"] = 10
    new = copy.deepcopy(old)
    new["spec"]["activeDeadlineSeconds"] = 20
    assert messages(POD, new, old) == [
        "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"
    ]


def test_new_finalizers_refused_while_deleting() -> None:
    old = _stored(CM, {"metadata": {"name": "c", "namespace": "d"}})
    old["metadata"]["deletionTimestamp"] = "2024-01-02T00:00:00Z"
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/x"]
    assert messages(CM, new, old) == [
        'metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/x"}'
    ]


# ---------------------------------------------------------------------------
# Status and scale
# ---------------------------------------------------------------------------


def test_validate_status_deployment() -> None:
    old = _stored(DEPLOY, deployment())
    new = copy.deepcopy(old)
    new["status"] = {"replicas": -1}
    assert (
        messages_status(DEPLOY, new, old)[0] == "status.replicas: Invalid value: -1: must be greater than or equal to 0"
    )
    new["status"] = {"replicas": 1, "readyReplicas": 2, "availableReplicas": 3}
    assert messages_status(DEPLOY, new, old) == [
        "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
        "status.availableReplicas: Invalid value: 3: cannot be greater than status.replicas",
        "status.availableReplicas: Invalid value: 3: cannot be greater than readyReplicas",
    ]
    new["status"] = {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3}
    assert messages_status(DEPLOY, new, old) == []


def test_validate_status_namespace_phase() -> None:
    old = _stored(NS, {"metadata": {"name": "a"}})
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Terminating"}
    assert messages_status(NS, new, old) == [
        "status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty"
    ]


def messages_status(resource: Resource, obj: dict[str, Any], old: dict[str, Any]) -> list[str]:
    return [str(e) for e in validate_status(resource, obj, old)]


def test_validate_scale_replicas() -> None:
    assert validate_scale_replicas(3) == []
    assert [str(e) for e in validate_scale_replicas(-1)] == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    ]
    assert [e.field for e in validate_scale_replicas("3")] == ["spec.replicas"]


# ---------------------------------------------------------------------------
# Quantities
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Decimal("0.1")),
        ("64Mi", Decimal(64 * 2**20)),
        ("1e3", Decimal(1000)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("2", Decimal(2)),
        ("0.5", Decimal("0.5")),
        ("1k", Decimal(1000)),
        ("1E", Decimal(10**18)),
        ("-1Ki", Decimal(-1024)),
        ("1.", Decimal(1)),
        ("0.1n", Decimal("1e-9")),  # rounded up to nano
        ("12e-1", Decimal("1.2")),
    ],
)
def test_parse_quantity(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1 GB", "1e", "1Kb", "1.2.3", "--1", "1ii", "1Mi5"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0.5", "500m"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("1000", "1k"),
        ("1e3", "1e3"),
        ("100m", "100m"),
        ("0", "0"),
        ("512", "512"),
        ("0.5Ki", "512"),
        ("1500m", "1500m"),
        (2, "2"),
        (0.25, "250m"),
    ],
)
def test_format_quantity(text: str | int | float, canonical: str) -> None:
    assert format_quantity(text) == canonical


def test_format_quantity_rounds_to_millis() -> None:
    assert format_quantity("0.0001", round_milli=True) == "1m"
    assert format_quantity("1.0005", round_milli=True) == "1001m"


# ---------------------------------------------------------------------------
# Type garbage never raises
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "obj", "field"),
    [
        (DEPLOY, {"metadata": {"name": "a", "namespace": "b"}, "spec": "x"}, "spec"),
        (DEPLOY, {"metadata": {"name": "a", "namespace": "b"}, "spec": {"replicas": "abc"}}, "spec.replicas"),
        (POD, {"metadata": {"name": "a", "namespace": "b"}, "spec": {"containers": {}}}, "spec.containers"),
        (SVC, {"metadata": {"name": "a", "namespace": "b"}, "spec": {"ports": [{"port": "80"}]}}, "spec.ports[0].port"),
        (CM, {"metadata": {"name": "a", "namespace": "b"}, "data": {"k": 1}}, "data[k]"),
        (NS, {"metadata": ["x"]}, "metadata"),
    ],
)
def test_wrong_types_are_field_errors(resource: Resource, obj: dict[str, Any], field: str) -> None:
    apply_defaults(resource, obj)
    errs = validate(resource, obj)
    assert field in [e.field for e in errs]
    assert all(e.detail != "" or e.type != "Invalid" for e in errs)


def test_replicas_as_string_reads_like_a_type_error() -> None:
    obj = defaulted(DEPLOY, deployment())
    obj["spec"]["replicas"] = "abc"
    assert messages(DEPLOY, obj) == ['spec.replicas: Invalid value: "abc": must be of type integer']


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["", "None", "Always", "-1", "1Gi", "25%", "..", "/x", "In", "1.2.3.4", "metadata.name", "1e99"]),
)
_JUNK = st.recursive(
    _SCALARS,
    lambda ch: st.one_of(st.lists(ch, max_size=3), st.dictionaries(st.text(max_size=5), ch, max_size=3)),
    max_leaves=8,
)


def _paths(o: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(o, dict):
        for k, v in o.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            out += _paths(v, (*prefix, i))
    return out


_FUZZ_SEEDS = [(r, m) for r, m in SEEDS] + [(DEPLOY, lambda: defaulted(DEPLOY, deployment()))]


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_junk_never_raises(data: st.DataObject) -> None:
    """Replace or drop random parts of valid manifests with junk: validation returns errors, never raises."""
    resource, make = data.draw(st.sampled_from(_FUZZ_SEEDS))
    old = defaulted(resource, make())
    obj: Any = copy.deepcopy(old)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(obj)))
        junk = data.draw(_JUNK)
        if not path:
            obj = junk
            continue
        parent = obj
        for p in path[:-1]:
            parent = parent[p]
        if isinstance(parent, dict) and data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = junk
    if isinstance(obj, dict):
        apply_defaults(resource, obj)
    # the private entry points have no safety net: any exception fails the test
    for errs in (
        V._validate(resource, obj, None),
        V._validate(resource, obj, old),
        V._validate_status(resource, obj, old),
    ):
        for e in errs:
            assert isinstance(str(e), str)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(RESOURCES), _JUNK, st.one_of(st.none(), _JUNK))
def test_arbitrary_json_never_raises(resource: Resource, obj: Any, old: Any) -> None:
    if isinstance(obj, dict):
        apply_defaults(resource, obj)
    V._validate(resource, obj, old)
    V._validate_status(resource, obj, old)
