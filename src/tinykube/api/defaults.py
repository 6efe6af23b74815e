"""Defaulting of API objects, as kube-apiserver v1.32 applies it before validation.

:func:`apply_defaults` fills in what upstream's ``pkg/apis/*/v1/defaults.go``
(and the declarative ``+default`` markers) fill in, in place, for every kind in
:data:`tinykube.api.resources.RESOURCES`: a Deployment without ``replicas``
gets ``1``, a container without ``imagePullPolicy`` gets ``Always`` for
``:latest`` or untagged images and ``IfNotPresent`` otherwise, quantities are
rewritten in their canonical form (``0.5`` -> ``500m``, ``1024Mi`` -> ``1Gi``),
and so on. It is idempotent and safe to run on every write.

A few things upstream does on create only, in the registry strategies and
admission rather than in defaulting, are separate:

* :func:`default_pod_status` - a new Pod's ``status`` (``Pending`` and its QoS class).

The strategies' ``PrepareForCreate``/``PrepareForUpdate`` (system metadata,
status/spec split, ``generation``) live in :mod:`tinykube.apiserver.registry`.

Allocation (cluster IPs, node ports) and admission plugins (service account
token volume, default tolerations) are not done here.

Objects are plain JSON dicts; fields of an unexpected type are left alone (validation reports them).
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal
from typing import Any

from tinykube.api.resources import Resource
from tinykube.api.validation import format_quantity, parse_quantity

Obj = dict[str, Any]

DEFAULT_TERMINATION_GRACE_PERIOD = 30
DEFAULT_SCHEDULER_NAME = "default-scheduler"
DEFAULT_FILE_MODE = 0o644  # 420: secret, configMap, downwardAPI and projected volumes
DEFAULT_CLIENT_IP_TIMEOUT = 10800
PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
KUBE_API_ACCESS_TOKEN_EXPIRATION = 3600


def _map(d: Any, key: str) -> Obj | None:
    """``d[key]`` if ``d`` is a dict and the value is a dict."""
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    return v if isinstance(v, dict) else None


def _ensure_map(d: Obj, key: str) -> Obj | None:
    """``d[key]``, created empty when absent; ``None`` when it holds something that is not a dict."""
    v = d.get(key)
    if v is None:
        v = d[key] = {}
    return v if isinstance(v, dict) else None


def _dicts(d: Any, key: str) -> list[Obj]:
    """The dict elements of the list ``d[key]``."""
    if not isinstance(d, dict):
        return []
    v = d.get(key)
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _setdefault(d: Obj, key: str, value: Any) -> None:
    """Set ``d[key]`` when it is absent, null or the empty string (Go's zero values)."""
    if d.get(key) in (None, ""):
        d[key] = value


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
_REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_HEX64 = re.compile(r"[a-f0-9]{64}")


def image_tag(image: str) -> str:
    """The tag upstream's ``parsers.ParseImageName`` finds: ``latest`` when neither tag nor digest is given,
    ``""`` for a digest-only reference or one that does not parse."""
    m = _REFERENCE.fullmatch(image)
    if m is None or len(m.group(1)) > 255 or _HEX64.fullmatch(m.group(1)):
        return ""
    tag, digest = m.group(2) or "", m.group(3) or ""
    if not tag and not digest:
        return "latest"
    return tag


def default_pull_policy(image: Any) -> str:
    """``Always`` for ``:latest`` (or untagged) images, ``IfNotPresent`` otherwise."""
    return "Always" if isinstance(image, str) and image_tag(image) == "latest" else "IfNotPresent"


# ---------------------------------------------------------------------------
# Quantities
# ---------------------------------------------------------------------------


def _canonical_resource_list(rl: Any) -> None:
    """SetDefaults_ResourceList: round up to millis; and serialise each quantity canonically."""
    if not isinstance(rl, dict):
        return
    for name, value in list(rl.items()):
        try:
            rl[name] = format_quantity(value, round_milli=True)
        except (ValueError, ArithmeticError):
            pass  # left for validation to report


def _canonical_quantity_field(d: Obj, key: str) -> None:
    if d.get(key) is None:
        return
    try:
        d[key] = format_quantity(d[key])
    except (ValueError, ArithmeticError):
        pass


# ---------------------------------------------------------------------------
# PodSpec
# ---------------------------------------------------------------------------


def _default_http_get(handler: Any) -> None:
    http = _map(handler, "httpGet")
    if http is not None:
        _setdefault(http, "path", "/")
        _setdefault(http, "scheme", "HTTP")


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        if probe.get(key) in (None, 0):
            probe[key] = value
    _default_http_get(probe)


def _default_field_ref(holder: Any) -> None:
    ref = _map(holder, "fieldRef")
    if ref is not None:
        _setdefault(ref, "apiVersion", "v1")


def _default_container(ctr: Obj) -> None:
    if ctr.get("imagePullPolicy") in (None, ""):
        ctr["imagePullPolicy"] = default_pull_policy(ctr.get("image"))
    _setdefault(ctr, "terminationMessagePath", "/dev/termination-log")
    _setdefault(ctr, "terminationMessagePolicy", "File")
    for port in _dicts(ctr, "ports"):
        _setdefault(port, "protocol", "TCP")
    res = _ensure_map(ctr, "resources")
    if res is not None:
        _canonical_resource_list(res.get("limits"))
        _canonical_resource_list(res.get("requests"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(ctr.get(key))
    lifecycle = _map(ctr, "lifecycle")
    if lifecycle is not None:
        _default_http_get(lifecycle.get("postStart"))
        _default_http_get(lifecycle.get("preStop"))
    for env in _dicts(ctr, "env"):
        _default_field_ref(_map(env, "valueFrom"))


_VOLUME_SOURCE_KEYS = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI", "fc",
    "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
    "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)  # fmt: skip


def _default_volume(vol: Obj) -> None:
    if all(vol.get(k) is None for k in _VOLUME_SOURCE_KEYS):
        vol["emptyDir"] = {}
    empty_dir = _map(vol, "emptyDir")
    if empty_dir is not None:
        _canonical_quantity_field(empty_dir, "sizeLimit")
    host_path = _map(vol, "hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        src = _map(vol, key)
        if src is not None and src.get("defaultMode") is None:
            src["defaultMode"] = DEFAULT_FILE_MODE
    for item in _dicts(_map(vol, "downwardAPI"), "items"):
        _default_field_ref(item)
    for source in _dicts(_map(vol, "projected"), "sources"):
        token = _map(source, "serviceAccountToken")
        if token is not None and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = KUBE_API_ACCESS_TOKEN_EXPIRATION
        for item in _dicts(_map(source, "downwardAPI"), "items"):
            _default_field_ref(item)
    image = _map(vol, "image")
    if image is not None and image.get("pullPolicy") in (None, ""):
        image["pullPolicy"] = default_pull_policy(image.get("reference"))


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and everything it contains (containers, volumes, probes...)."""
    _setdefault(spec, "dnsPolicy", "ClusterFirst")
    _setdefault(spec, "restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = DEFAULT_TERMINATION_GRACE_PERIOD
    _setdefault(spec, "schedulerName", DEFAULT_SCHEDULER_NAME)
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for ctr in _dicts(spec, key):
            _default_container(ctr)
    for vol in _dicts(spec, "volumes"):
        _default_volume(vol)
    _canonical_resource_list(spec.get("overhead"))


def _default_pod_template(tmpl: Any) -> None:
    if not isinstance(tmpl, dict):
        return
    meta = _ensure_map(tmpl, "metadata")
    if meta is not None and "creationTimestamp" not in meta:
        meta["creationTimestamp"] = None  # a zero metav1.Time, as v1.32 serializes templates
    spec = _ensure_map(tmpl, "spec")
    if spec is not None:
        default_pod_spec(spec)


def _default_pod(obj: Obj) -> None:
    spec = _ensure_map(obj, "spec")
    if spec is None:
        return
    default_pod_spec(spec)
    # SetDefaults_Pod: requests default to limits (pods only, not templates).
    for key in ("containers", "initContainers"):
        for ctr in _dicts(spec, key):
            res = _map(ctr, "resources")
            limits = _map(res, "limits")
            if res is None or limits is None:
                continue
            requests = _ensure_map(res, "requests")
            if requests is None:
                continue
            for name, value in limits.items():
                requests.setdefault(name, value)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for ctr in _dicts(spec, key):
                for port in _dicts(ctr, "ports"):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    # The Priority admission plugin: no class (or an unknown one) means priority 0.
    if spec.get("priority") is None:
        pcn = spec.get("priorityClassName")
        spec["priority"] = PRIORITY_CLASSES.get(pcn, 0) if isinstance(pcn, str) else 0
    _setdefault(spec, "preemptionPolicy", "PreemptLowerPriority")


def _quantities(ctr: Obj, kind: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    res = _map(ctr, "resources")
    rl = _map(res, kind)
    for name, value in (rl or {}).items():
        if name not in ("cpu", "memory"):
            continue
        try:
            q = parse_quantity(value if isinstance(value, str) else str(value))
        except (ValueError, ArithmeticError):
            continue
        if q > 0:
            out[name] = q
    return out


def pod_qos_class(pod: Obj) -> str:
    """upstream's ``qos.GetPodQOS``: ``BestEffort``, ``Burstable`` or ``Guaranteed``."""
    spec = _map(pod, "spec") or {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for ctr in _dicts(spec, "containers") + _dicts(spec, "initContainers"):
        ctr_limits = _quantities(ctr, "limits")
        # Requests default to limits (SetDefaults_Pod), so this holds before defaulting too.
        for name, q in {**ctr_limits, **_quantities(ctr, "requests")}.items():
            requests[name] = requests.get(name, Decimal(0)) + q
        for name, q in ctr_limits.items():
            limits[name] = limits.get(name, Decimal(0)) + q
        if not {"cpu", "memory"} <= set(ctr_limits):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        for name, q in requests.items():
            if limits.get(name) != q:
                guaranteed = False
                break
    if guaranteed and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def default_pod_status(obj: Obj) -> None:
    """A new Pod's status, as upstream's pod strategy sets it on create (replacing whatever was sent).

    Call after :func:`apply_defaults` (the QoS class reads the defaulted requests).
    """
    status: Obj = {"phase": "Pending", "qosClass": pod_qos_class(obj)}
    spec = _map(obj, "spec") or {}
    if spec.get("schedulingGates"):
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": None,
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
            }
        ]
    obj["status"] = status


# ---------------------------------------------------------------------------
# Other kinds
# ---------------------------------------------------------------------------


def _default_deployment(obj: Obj) -> None:
    spec = _ensure_map(obj, "spec")
    if spec is None:
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _ensure_map(spec, "strategy")
    if strategy is not None:
        _setdefault(strategy, "type", "RollingUpdate")
        if strategy.get("type") == "RollingUpdate":
            ru = _ensure_map(strategy, "rollingUpdate")
            if ru is not None:
                if ru.get("maxUnavailable") is None:
                    ru["maxUnavailable"] = "25%"
                if ru.get("maxSurge") is None:
                    ru["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _default_pod_template(_ensure_map(spec, "template"))


def _default_replica_set(obj: Obj) -> None:
    spec = _ensure_map(obj, "spec")
    if spec is None:
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_pod_template(_ensure_map(spec, "template"))


def _ip_family(ip: Any) -> str:
    return "IPv6" if isinstance(ip, str) and ":" in ip else "IPv4"


def _default_service(obj: Obj) -> None:
    spec = _ensure_map(obj, "spec")
    if spec is None:
        return
    _setdefault(spec, "sessionAffinity", "None")
    if spec.get("sessionAffinity") == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec.get("sessionAffinity") == "ClientIP":
        cfg = _map(spec, "sessionAffinityConfig")
        cip = _map(cfg, "clientIP")
        if cip is None or cip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_TIMEOUT}}
    _setdefault(spec, "type", "ClusterIP")
    stype = spec.get("type")
    for port in _dicts(spec, "ports"):
        _setdefault(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    accessible = stype in ("LoadBalancer", "NodePort") or (stype == "ClusterIP" and bool(spec.get("externalIPs")))
    if accessible:
        _setdefault(spec, "externalTrafficPolicy", "Cluster")
    if spec.get("internalTrafficPolicy") is None and stype in ("NodePort", "LoadBalancer", "ClusterIP"):
        spec["internalTrafficPolicy"] = "Cluster"
    if stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if stype == "LoadBalancer":
        lb = _map(_map(obj, "status"), "loadBalancer")
        for ing in _dicts(lb, "ingress"):
            if ing.get("ip") and ing.get("ipMode") is None:
                ing["ipMode"] = "VIP"
    if stype == "ExternalName":
        return
    # NormalizeClusterIPs (create): a singular clusterIP seeds the plural field.
    cluster_ip = spec.get("clusterIP")
    if isinstance(cluster_ip, str) and cluster_ip and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [cluster_ip]
    # IP family fields, as the (single-stack IPv4) allocator initialises them.
    headless = cluster_ip == "None"
    if headless and not spec.get("selector"):
        if spec.get("ipFamilyPolicy") is None:
            spec["ipFamilyPolicy"] = "RequireDualStack"
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]
        return
    if spec.get("ipFamilyPolicy") is None:
        families = spec.get("ipFamilies")
        spec["ipFamilyPolicy"] = (
            "RequireDualStack" if isinstance(families, list) and len(families) == 2 else "SingleStack"
        )
    if not spec.get("ipFamilies"):
        ips = spec.get("clusterIPs")
        first = ips[0] if isinstance(ips, list) and ips and not headless else None
        spec["ipFamilies"] = [_ip_family(first)]


def _default_secret(obj: Obj) -> None:
    _setdefault(obj, "type", "Opaque")
    string_data = obj.get("stringData")
    if isinstance(string_data, dict) and all(isinstance(v, str) for v in string_data.values()):
        # v1 -> internal conversion: stringData overwrites data, and is never stored.
        data = obj.get("data")
        if data is None:
            data = obj["data"] = {}
        if isinstance(data, dict):
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode("utf-8", "surrogatepass")).decode("ascii")
            del obj["stringData"]


def _default_namespace(obj: Obj, creating: bool | None) -> None:
    meta = _map(obj, "metadata")
    name = meta.get("name") if meta is not None else None
    if meta is not None and isinstance(name, str) and name:
        labels = _ensure_map(meta, "labels")
        if labels is not None:
            labels["kubernetes.io/metadata.name"] = name
    status = _ensure_map(obj, "status")
    if status is not None:
        _setdefault(status, "phase", "Active")
    _add_kubernetes_finalizer(obj, append=bool(creating))


def _add_kubernetes_finalizer(obj: Obj, append: bool = True) -> None:
    """``spec.finalizers: [kubernetes]`` when there are none; with ``append``, also added to a list without it."""
    spec = _ensure_map(obj, "spec")
    if spec is None:
        return
    finalizers = spec.get("finalizers")
    if finalizers is None:
        spec["finalizers"] = ["kubernetes"]
    elif append and isinstance(finalizers, list) and "kubernetes" not in finalizers:
        finalizers.append("kubernetes")


def _default_node(obj: Obj) -> None:
    status = _map(obj, "status")
    if status is None:
        return
    _canonical_resource_list(status.get("capacity"))
    _canonical_resource_list(status.get("allocatable"))
    if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def _default_endpoints(obj: Obj) -> None:
    for subset in _dicts(obj, "subsets"):
        for port in _dicts(subset, "ports"):
            _setdefault(port, "protocol", "TCP")


def _default_endpoint_slice(obj: Obj) -> None:
    for port in _dicts(obj, "ports"):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


def apply_defaults(resource: Resource, obj: dict[str, Any], *, creating: bool | None = None) -> None:
    """Default ``obj`` (a ``resource`` object as JSON) in place, as upstream's defaulting does.

    Only the Namespace ``kubernetes`` finalizer depends on ``creating``: a Namespace
    without ``spec.finalizers`` always gets ``[kubernetes]``; with ``creating=True``
    the finalizer is also appended to a list that lacks it (upstream's create-time
    rule; on update the list is the namespace controller's).
    """
    if not isinstance(obj, dict):
        return
    meta = _map(obj, "metadata")
    if meta is not None and not resource.namespaced and meta.get("namespace") is not None:
        del meta["namespace"]  # rest.BeforeCreate clears it for cluster-scoped objects
    kind = (resource.group, resource.kind)
    if kind == ("", "Pod"):
        _default_pod(obj)
    elif kind == ("apps", "Deployment"):
        _default_deployment(obj)
    elif kind == ("apps", "ReplicaSet"):
        _default_replica_set(obj)
    elif kind == ("", "Service"):
        _default_service(obj)
    elif kind == ("", "Secret"):
        _default_secret(obj)
    elif kind == ("", "Namespace"):
        _default_namespace(obj, creating)
    elif kind == ("", "Node"):
        _default_node(obj)
    elif kind == ("", "Endpoints"):
        _default_endpoints(obj)
    elif kind == ("discovery.k8s.io", "EndpointSlice"):
        _default_endpoint_slice(obj)
