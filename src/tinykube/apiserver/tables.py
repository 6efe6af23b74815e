"""Server-side ``meta.k8s.io/v1`` Table rendering, as ``kubectl get`` consumes it.

``kubectl get`` sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the cells it gets
back verbatim, so the columns and cell strings here follow kube-apiserver 1.32's printers (behaviour reference:
``pkg/printers/internalversion/printers.go`` and ``k8s.io/apimachinery/pkg/util/duration``).

Like kube-apiserver, the server always renders the wide (``priority: 1``) cells; kubectl hides those columns
unless ``-o wide`` is given.  Cells keep upstream's JSON types: counts are integers even where the column's
declared type is ``"string"``.

Everything here is pure: objects in, a Table dict out.  ``now`` is injectable so ages are testable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tinykube.api.meta import parse_timestamp
from tinykube.api.resources import Resource

__all__ = [
    "columns_for",
    "format_age",
    "human_duration",
    "parse_timestamp",
    "to_table",
]

TABLE_API_VERSION = "meta.k8s.io/v1"
NONE = "<none>"
UNKNOWN = "<unknown>"

# A printer turns one object into its row cells (all of them, wide ones included).
Printer = Callable[[dict[str, Any], float], list[Any]]


# --------------------------------------------------------------------------------------------------------------
# Durations and timestamps
# --------------------------------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """A short human form of a duration with two or three significant figures (upstream ``HumanDuration``).

    Up to two seconds in the future counts as "now" (clock skew); further in the future is ``<invalid>``.
    """
    whole = math.trunc(seconds)  # Go's int(d.Seconds()) truncates toward zero
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 3 * 60:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 8 * 24:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 2 * 365 * 24:
        return f"{days}d"
    years = days // 365
    if hours < 8 * 365 * 24:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def format_age(ts: Any, now: float) -> str:
    """The AGE-style cell for a timestamp: ``<unknown>`` when unset, else the human duration since it."""
    epoch = parse_timestamp(ts)
    if epoch is None:
        return UNKNOWN
    return human_duration(now - epoch)


# --------------------------------------------------------------------------------------------------------------
# Small accessors (objects are untyped JSON; every level may be missing or null)
# --------------------------------------------------------------------------------------------------------------


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _i(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return default


def _name(obj: dict[str, Any]) -> str:
    return _s(_d(obj.get("metadata")).get("name"))


def _age(obj: dict[str, Any], now: float) -> str:
    return format_age(_d(obj.get("metadata")).get("creationTimestamp"), now)


def _format_labels(labels: Any) -> str:
    """``k=v,k2=v2`` sorted by key; ``<none>`` when empty (upstream ``labels.FormatLabels``)."""
    pairs = _d(labels)
    if not pairs:
        return NONE
    return ",".join(f"{k}={pairs[k]}" for k in sorted(pairs))


class _BadSelector(ValueError):
    pass


def _selector_string(selector: Any) -> str:
    """A LabelSelector as the label-selector query string (``a=b,c in (x,y),!d``); "" selects nothing/everything.

    Raises _BadSelector for operators or value counts a LabelSelector may not have.
    """
    if not isinstance(selector, dict):
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in _d(selector.get("matchLabels")).items():
        requirements.append((key, f"{key}={value}"))
    for expr in _l(selector.get("matchExpressions")):
        expr = _d(expr)
        key = _s(expr.get("key"))
        op = expr.get("operator")
        values = sorted({_s(v) for v in _l(expr.get("values"))})
        if op in ("In", "NotIn"):
            if not values:
                raise _BadSelector(f"values required for operator {op}")
            word = "in" if op == "In" else "notin"
            requirements.append((key, f"{key} {word} ({','.join(values)})"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise _BadSelector(f"no values allowed for operator {op}")
            requirements.append((key, key if op == "Exists" else f"!{key}"))
        else:
            raise _BadSelector(f"{op!r} is not a valid label selector operator")
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def _format_label_selector(selector: Any) -> str:
    """Upstream ``metav1.FormatLabelSelector``: ``<none>`` when it is empty, ``<error>`` when malformed."""
    try:
        text = _selector_string(selector)
    except _BadSelector:
        return "<error>"
    return text or NONE


def _container_cells(containers: Any) -> tuple[str, str]:
    names: list[str] = []
    images: list[str] = []
    for c in _l(containers):
        c = _d(c)
        names.append(_s(c.get("name")))
        images.append(_s(c.get("image")))
    return ",".join(names), ",".join(images)


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _list_with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    joined = ",".join(items)
    if more:
        return f"{joined} + {count - limit} more..."
    return joined or "<unset>"


# --------------------------------------------------------------------------------------------------------------
# Column definitions
# --------------------------------------------------------------------------------------------------------------


def _col(name: str, description: str, type_: str = "string", *, priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


_NAME_DESC = "The object's name, unique per kind within its namespace (or the cluster, for cluster-scoped kinds)."
_AGE_DESC = "How long ago the object was created, from metadata.creationTimestamp (set by the server)."
_CONTAINERS_DESC = "Names of the containers in the pod template."
_IMAGES_DESC = "Images of the containers in the pod template."


def _name_col() -> dict[str, Any]:
    return _col("Name", _NAME_DESC, fmt="name")


def _age_col() -> dict[str, Any]:
    return _col("Age", _AGE_DESC)


POD_COLUMNS = [
    _name_col(),
    _col("Ready", "Ready containers out of all containers (restartable init containers included)."),
    _col("Status", "A one-word summary of the pod and its containers' states."),
    _col("Restarts", "Container restarts in this pod, and how long ago the most recent one ended."),
    _age_col(),
    _col("IP", "The pod's primary IP address.", priority=1),
    _col("Node", "The node the pod is bound to.", priority=1),
    _col("Nominated Node", "The node the scheduler nominated for this pod after preemption.", priority=1),
    _col("Readiness Gates", "Readiness gates whose condition is True, out of all of them.", priority=1),
]

DEPLOYMENT_COLUMNS = [
    _name_col(),
    _col("Ready", "Ready pods out of desired replicas."),
    _col("Up-to-date", "Pods running the latest pod template."),
    _col("Available", "Pods ready for at least minReadySeconds."),
    _age_col(),
    _col("Containers", _CONTAINERS_DESC, priority=1),
    _col("Images", _IMAGES_DESC, priority=1),
    _col("Selector", "The label selector of the pods this deployment manages.", priority=1),
]

REPLICASET_COLUMNS = [
    _name_col(),
    _col("Desired", "Desired number of replicas (spec.replicas).", "integer"),
    _col("Current", "Most recently observed number of replicas.", "integer"),
    _col("Ready", "Pods that are ready.", "integer"),
    _age_col(),
    _col("Containers", _CONTAINERS_DESC, priority=1),
    _col("Images", _IMAGES_DESC, priority=1),
    _col("Selector", "The label selector of the pods this replica set counts.", priority=1),
]

SERVICE_COLUMNS = [
    _name_col(),
    _col("Type", "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName."),
    _col("Cluster-IP", "The service's virtual IP inside the cluster."),
    _col("External-IP", "Addresses the service is reachable on from outside the cluster."),
    _col("Port(s)", "The ports the service exposes (port[:nodePort]/protocol)."),
    _age_col(),
    _col("Selector", "The labels of the pods traffic is routed to.", priority=1),
]

NODE_COLUMNS = [
    _name_col(),
    _col("Status", "Whether the node is Ready, and SchedulingDisabled when it is cordoned."),
    _col("Roles", "Roles from the node-role.kubernetes.io/<role> labels."),
    _age_col(),
    _col("Version", "The kubelet version the node reports."),
    _col("Internal-IP", "The node's first InternalIP address.", priority=1),
    _col("External-IP", "The node's first ExternalIP address.", priority=1),
    _col("OS-Image", "The operating system image the node reports.", priority=1),
    _col("Kernel-Version", "The kernel version the node reports.", priority=1),
    _col("Container-Runtime", "The container runtime and version the node reports.", priority=1),
]

EVENT_COLUMNS = [
    _col("Last Seen", "How long ago the event was last observed."),
    _col("Type", "Type of the event (Normal or Warning)."),
    _col("Reason", "Short machine-readable reason for the event."),
    _col("Object", "The object this event is about (kind/name)."),
    _col("Subobject", "The part of the object the event is about (fieldPath).", priority=1),
    _col("Source", "The component (and host) that reported the event.", priority=1),
    _col("Message", "Human-readable description of the event."),
    _col("First Seen", "How long ago the event was first observed.", priority=1),
    _col("Count", "How many times the event has occurred.", priority=1),
    _col("Name", _NAME_DESC, priority=1, fmt="name"),
]

NAMESPACE_COLUMNS = [_name_col(), _col("Status", "The namespace phase (Active or Terminating)."), _age_col()]

CONFIGMAP_COLUMNS = [_name_col(), _col("Data", "Number of keys in data and binaryData."), _age_col()]

SECRET_COLUMNS = [
    _name_col(),
    _col("Type", "The secret's type."),
    _col("Data", "Number of keys in data."),
    _age_col(),
]

SERVICEACCOUNT_COLUMNS = [_name_col(), _col("Secrets", "Number of secrets listed by the account."), _age_col()]

ENDPOINTS_COLUMNS = [_name_col(), _col("Endpoints", "Ready addresses and ports (the first three)."), _age_col()]

ENDPOINTSLICE_COLUMNS = [
    _name_col(),
    _col("AddressType", "The type of addresses in this slice (IPv4, IPv6 or FQDN)."),
    _col("Ports", "The ports of this slice (the first three)."),
    _col("Endpoints", "The addresses of this slice (the first three)."),
    _age_col(),
]

LEASE_COLUMNS = [_name_col(), _col("Holder", "The identity of the lease's current holder."), _age_col()]

DEFAULT_COLUMNS = [_name_col(), _col("Age", _AGE_DESC, "date")]


# --------------------------------------------------------------------------------------------------------------
# Pods
# --------------------------------------------------------------------------------------------------------------

_COMPLETED_CONDITIONS: dict[str, list[dict[str, str]]] = {
    "Succeeded": [{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod succeeded."}],
    "Failed": [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}],
}


def _later(current: float | None, terminated: Any) -> float | None:
    """The later of ``current`` and a terminated state's finishedAt (an unset finishedAt never wins)."""
    if not isinstance(terminated, dict):
        return current
    finished = parse_timestamp(terminated.get("finishedAt"))
    if finished is None:
        return current
    if current is None or current < finished:
        return finished
    return current


def _condition_true(conditions: Iterable[Any], ctype: str) -> bool:
    """Whether the first condition of ``ctype`` is True."""
    for cond in conditions:
        cond = _d(cond)
        if cond.get("type") == ctype:
            return cond.get("status") == "True"
    return False


def _any_condition_true(conditions: Iterable[Any], ctype: str) -> bool:
    return any(_d(c).get("type") == ctype and _d(c).get("status") == "True" for c in conditions)


def _terminated_reason(terminated: dict[str, Any], prefix: str = "") -> str:
    reason = _s(terminated.get("reason"))
    if reason:
        return prefix + reason
    signal = _i(terminated.get("signal"))
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{_i(terminated.get('exitCode'))}"


def pod_status_summary(pod: dict[str, Any]) -> tuple[int, int, str, int, float | None]:
    """(ready, total, STATUS, restarts, last restart epoch) exactly as ``kubectl get pods`` shows them."""
    spec = _d(pod.get("spec"))
    status = _d(pod.get("status"))
    meta = _d(pod.get("metadata"))
    conditions = _l(status.get("conditions"))

    init_specs = [_d(c) for c in _l(spec.get("initContainers"))]
    sidecars = {_s(c.get("name")) for c in init_specs if c.get("restartPolicy") == "Always"}
    total = len(_l(spec.get("containers"))) + sum(1 for c in init_specs if c.get("restartPolicy") == "Always")
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: float | None = None
    last_sidecar_restart: float | None = None

    phase = _s(status.get("phase"))
    reason = _s(status.get("reason")) or phase
    for cond in conditions:
        cond = _d(cond)
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for index, cs in enumerate(_l(status.get("initContainerStatuses"))):
        cs = _d(cs)
        state = _d(cs.get("state"))
        last_terminated = _d(cs.get("lastState")).get("terminated")
        count = _i(cs.get("restartCount"))
        restarts += count
        last_restart = _later(last_restart, last_terminated)
        is_sidecar = _s(cs.get("name")) in sidecars
        if is_sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, last_terminated)
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if isinstance(terminated, dict) and _i(terminated.get("exitCode")) == 0:
            continue
        if is_sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, dict):
            reason = _terminated_reason(terminated, "Init:")
        elif isinstance(waiting, dict) and _s(waiting.get("reason")) and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + _s(waiting.get("reason"))
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(_l(status.get("containerStatuses"))):
            cs = _d(cs)
            state = _d(cs.get("state"))
            restarts += _i(cs.get("restartCount"))
            last_restart = _later(last_restart, _d(cs.get("lastState")).get("terminated"))
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if isinstance(waiting, dict) and _s(waiting.get("reason")):
                reason = _s(waiting.get("reason"))
            elif isinstance(terminated, dict):
                reason = _terminated_reason(terminated)
            elif cs.get("ready") is True and isinstance(state.get("running"), dict):
                has_running = True
                ready += 1
        # A container still running after another one completed: the pod as a whole is not "Completed".
        if reason == "Completed" and has_running:
            reason = "Running" if _any_condition_true(conditions, "Ready") else "NotReady"

    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Failed", "Succeeded"):
            reason = "Terminating"
    return ready, total, reason, restarts, last_restart


def _print_pod(pod: dict[str, Any], now: float) -> list[Any]:
    spec = _d(pod.get("spec"))
    status = _d(pod.get("status"))
    ready, total, reason, restarts, last_restart = pod_status_summary(pod)
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ips = _l(status.get("podIPs"))
    pod_ip = _s(_d(pod_ips[0]).get("ip")) if pod_ips else _s(status.get("podIP"))
    gates = _l(spec.get("readinessGates"))
    gates_cell = NONE
    if gates:
        conditions = _l(status.get("conditions"))
        passed = sum(1 for gate in gates if _condition_true(conditions, _s(_d(gate).get("conditionType"))))
        gates_cell = f"{passed}/{len(gates)}"
    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _age(pod, now),
        pod_ip or NONE,
        _s(spec.get("nodeName")) or NONE,
        _s(status.get("nominatedNodeName")) or NONE,
        gates_cell,
    ]


# --------------------------------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------------------------------


def _print_deployment(obj: dict[str, Any], now: float) -> list[Any]:
    spec = _d(obj.get("spec"))
    status = _d(obj.get("status"))
    try:
        selector = _selector_string(spec.get("selector"))
    except _BadSelector:
        selector = "<invalid>"
    names, images = _container_cells(_d(_d(spec.get("template")).get("spec")).get("containers"))
    return [
        _name(obj),
        f"{_i(status.get('readyReplicas'))}/{_i(spec.get('replicas'), 1)}",
        _i(status.get("updatedReplicas")),
        _i(status.get("availableReplicas")),
        _age(obj, now),
        names,
        images,
        selector,
    ]


def _print_replicaset(obj: dict[str, Any], now: float) -> list[Any]:
    spec = _d(obj.get("spec"))
    status = _d(obj.get("status"))
    names, images = _container_cells(_d(_d(spec.get("template")).get("spec")).get("containers"))
    return [
        _name(obj),
        _i(spec.get("replicas"), 1),
        _i(status.get("replicas")),
        _i(status.get("readyReplicas")),
        _age(obj, now),
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]


# --------------------------------------------------------------------------------------------------------------
# Services and endpoints
# --------------------------------------------------------------------------------------------------------------

_LOAD_BALANCER_WIDTH = 16


def _load_balancer_ips(status: dict[str, Any], wide: bool) -> str:
    found: set[str] = set()
    for ingress in _l(_d(status.get("loadBalancer")).get("ingress")):
        ingress = _d(ingress)
        if _s(ingress.get("ip")):
            found.add(_s(ingress.get("ip")))
        elif _s(ingress.get("hostname")):
            found.add(_s(ingress.get("hostname")))
    joined = ",".join(sorted(found))
    if not wide and len(joined) > _LOAD_BALANCER_WIDTH:
        joined = joined[: _LOAD_BALANCER_WIDTH - 3] + "..."
    return joined


def _service_external_ip(svc: dict[str, Any]) -> str:
    spec = _d(svc.get("spec"))
    external_ips = [_s(ip) for ip in _l(spec.get("externalIPs"))]
    svc_type = spec.get("type")
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else NONE
    if svc_type == "LoadBalancer":
        # kube-apiserver renders tables as wide, so the list is never clipped here.
        lb = _load_balancer_ips(_d(svc.get("status")), wide=True)
        if external_ips:
            return ",".join((lb.split(",") if lb else []) + external_ips)
        return lb or "<pending>"
    if svc_type == "ExternalName":
        return _s(spec.get("externalName"))
    return UNKNOWN


def _service_ports(ports: Any) -> str:
    pieces: list[str] = []
    for port in _l(ports):
        port = _d(port)
        protocol = _s(port.get("protocol")) or "TCP"
        node_port = _i(port.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{_i(port.get('port'))}:{node_port}/{protocol}")
        else:
            pieces.append(f"{_i(port.get('port'))}/{protocol}")
    return ",".join(pieces)


def _print_service(svc: dict[str, Any], now: float) -> list[Any]:
    spec = _d(svc.get("spec"))
    cluster_ips = _l(spec.get("clusterIPs"))
    cluster_ip = _s(cluster_ips[0]) if cluster_ips else _s(spec.get("clusterIP"))
    return [
        _name(svc),
        _s(spec.get("type")),
        cluster_ip or NONE,
        _service_external_ip(svc),
        _service_ports(spec.get("ports")) or NONE,
        _age(svc, now),
        _format_labels(spec.get("selector")),
    ]


def format_endpoints(subsets: Any) -> str:
    """The ENDPOINTS cell: up to three ``ip:port`` (or bare IPs for port-less subsets), then ``+ N more...``."""
    subsets = _l(subsets)
    if not subsets:
        return NONE
    limit = 3
    shown: list[str] = []
    more = False
    count = 0
    for subset in subsets:
        subset = _d(subset)
        addresses = [_s(_d(a).get("ip")) for a in _l(subset.get("addresses"))]
        ports = _l(subset.get("ports"))
        if not ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(ip)
            continue
        for port in ports:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(_join_host_port(ip, _i(_d(port).get("port"))))
    joined = ",".join(shown)
    if more:
        return f"{joined} + {count - limit} more..."
    return joined


def _print_endpoints(obj: dict[str, Any], now: float) -> list[Any]:
    return [_name(obj), format_endpoints(obj.get("subsets")), _age(obj, now)]


def _print_endpointslice(obj: dict[str, Any], now: float) -> list[Any]:
    limit = 3
    ports: list[str] = []
    port_count = 0
    for port in _l(obj.get("ports")):
        port = _d(port)
        if len(ports) < limit:
            if port.get("port") is not None:
                ports.append(str(_i(port.get("port"))))
            elif port.get("name") is not None:
                ports.append(_s(port.get("name")))
            else:
                ports.append("*")
        port_count += 1
    addresses: list[str] = []
    address_count = 0
    for endpoint in _l(obj.get("endpoints")):
        for address in _l(_d(endpoint).get("addresses")):
            if len(addresses) < limit:
                addresses.append(_s(address))
            address_count += 1
    return [
        _name(obj),
        _s(obj.get("addressType")),
        _list_with_more(ports, port_count > limit, port_count, limit),
        _list_with_more(addresses, address_count > limit, address_count, limit),
        _age(obj, now),
    ]


# --------------------------------------------------------------------------------------------------------------
# Nodes and the simple kinds
# --------------------------------------------------------------------------------------------------------------


def _node_roles(labels: Mapping[str, Any]) -> list[str]:
    roles: set[str] = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(_s(value))
    return sorted(roles)


def _node_address(status: dict[str, Any], kind: str) -> str:
    for address in _l(status.get("addresses")):
        address = _d(address)
        if address.get("type") == kind:
            return _s(address.get("address"))
    return NONE


def _print_node(node: dict[str, Any], now: float) -> list[Any]:
    spec = _d(node.get("spec"))
    status = _d(node.get("status"))
    info = _d(status.get("nodeInfo"))
    ready: dict[str, Any] | None = None
    for cond in _l(status.get("conditions")):
        if _d(cond).get("type") == "Ready":
            ready = _d(cond)  # the last one wins, as upstream's condition map
    states = [] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    if not states:
        states.append("Unknown")
    if spec.get("unschedulable") is True:
        states.append("SchedulingDisabled")
    roles = ",".join(_node_roles(_d(_d(node.get("metadata")).get("labels"))))
    return [
        _name(node),
        ",".join(states),
        roles or NONE,
        _age(node, now),
        _s(info.get("kubeletVersion")),
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        _s(info.get("osImage")) or UNKNOWN,
        _s(info.get("kernelVersion")) or UNKNOWN,
        _s(info.get("containerRuntimeVersion")) or UNKNOWN,
    ]


def _print_namespace(obj: dict[str, Any], now: float) -> list[Any]:
    return [_name(obj), _s(_d(obj.get("status")).get("phase")), _age(obj, now)]


def _print_configmap(obj: dict[str, Any], now: float) -> list[Any]:
    return [_name(obj), len(_d(obj.get("data"))) + len(_d(obj.get("binaryData"))), _age(obj, now)]


def _print_secret(obj: dict[str, Any], now: float) -> list[Any]:
    # stringData is write-only and folded into data on the way in; count the union in case it is still there.
    keys = set(_d(obj.get("data"))) | set(_d(obj.get("stringData")))
    return [_name(obj), _s(obj.get("type")), len(keys), _age(obj, now)]


def _print_serviceaccount(obj: dict[str, Any], now: float) -> list[Any]:
    return [_name(obj), len(_l(obj.get("secrets"))), _age(obj, now)]


def _print_lease(obj: dict[str, Any], now: float) -> list[Any]:
    return [_name(obj), _s(_d(obj.get("spec")).get("holderIdentity")), _age(obj, now)]


def _print_default(obj: dict[str, Any], now: float) -> list[Any]:
    return [_name(obj), _age(obj, now)]


# --------------------------------------------------------------------------------------------------------------
# Events (core/v1 and events.k8s.io/v1 share one printer, as they share one storage upstream)
# --------------------------------------------------------------------------------------------------------------


def _first(obj: dict[str, Any], *keys: str) -> Any:
    """The first present, non-null value among ``keys`` (core/v1 name first, events.k8s.io/v1 name second)."""
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _print_event(ev: dict[str, Any], now: float) -> list[Any]:
    involved = _d(_first(ev, "involvedObject", "regarding"))
    source = _d(_first(ev, "source", "deprecatedSource"))
    first_ts = _first(ev, "firstTimestamp", "deprecatedFirstTimestamp")
    last_ts = _first(ev, "lastTimestamp", "deprecatedLastTimestamp")

    if parse_timestamp(first_ts) is not None:
        first_seen = format_age(first_ts, now)
    else:
        first_seen = format_age(ev.get("eventTime"), now)
    last_seen = format_age(last_ts, now) if parse_timestamp(last_ts) is not None else first_seen

    count = _i(_first(ev, "count", "deprecatedCount"))
    series = ev.get("series")
    if isinstance(series, dict):
        last_seen = format_age(series.get("lastObservedTime"), now)
        count = _i(series.get("count"))
    elif count == 0:
        count = 1  # singleton events carry no count in the new API

    kind = _s(involved.get("kind")).lower()
    target_name = _s(involved.get("name"))
    target = f"{kind}/{target_name}" if target_name else kind

    component = _s(source.get("component")) or _s(ev.get("reportingController"))
    instance = _s(source.get("host")) or _s(ev.get("reportingInstance"))
    source_cell = f"{component}, {instance}" if instance else component

    message = _s(_first(ev, "message", "note")).strip()
    return [
        last_seen,
        _s(ev.get("type")),
        _s(ev.get("reason")),
        target,
        _s(involved.get("fieldPath")),
        source_cell,
        message,
        first_seen,
        count,
        _name(ev),
    ]


# --------------------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------------------

_PRINTERS: dict[tuple[str, str], tuple[list[dict[str, Any]], Printer]] = {
    ("", "Pod"): (POD_COLUMNS, _print_pod),
    ("", "Service"): (SERVICE_COLUMNS, _print_service),
    ("", "Endpoints"): (ENDPOINTS_COLUMNS, _print_endpoints),
    ("", "ConfigMap"): (CONFIGMAP_COLUMNS, _print_configmap),
    ("", "Secret"): (SECRET_COLUMNS, _print_secret),
    ("", "Event"): (EVENT_COLUMNS, _print_event),
    ("", "Node"): (NODE_COLUMNS, _print_node),
    ("", "Namespace"): (NAMESPACE_COLUMNS, _print_namespace),
    ("", "ServiceAccount"): (SERVICEACCOUNT_COLUMNS, _print_serviceaccount),
    ("apps", "Deployment"): (DEPLOYMENT_COLUMNS, _print_deployment),
    ("apps", "ReplicaSet"): (REPLICASET_COLUMNS, _print_replicaset),
    ("coordination.k8s.io", "Lease"): (LEASE_COLUMNS, _print_lease),
    ("discovery.k8s.io", "EndpointSlice"): (ENDPOINTSLICE_COLUMNS, _print_endpointslice),
    ("events.k8s.io", "Event"): (EVENT_COLUMNS, _print_event),
}


def _printer_for(resource: Resource) -> tuple[list[dict[str, Any]], Printer]:
    return _PRINTERS.get((resource.group, resource.kind), (DEFAULT_COLUMNS, _print_default))


def columns_for(resource: Resource) -> list[dict[str, Any]]:
    """The column definitions of ``resource``'s table (wide ones have ``priority: 1``); fresh copies."""
    return [dict(col) for col in _printer_for(resource)[0]]


def _row_object(obj: dict[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_API_VERSION,
        "metadata": _d(obj.get("metadata")),
    }


def to_table(
    resource: Resource,
    objects: list[dict[str, Any]],
    *,
    include_object: str = "Metadata",
    list_metadata: dict[str, Any] | None = None,
    now: float | None = None,
    no_headers: bool = False,
) -> dict[str, Any]:
    """Render ``objects`` of ``resource`` as a ``meta.k8s.io/v1`` Table.

    ``include_object`` is the TableOptions value: ``"None"`` (``object: null``), ``"Metadata"`` (the default; a
    PartialObjectMetadata) or ``"Object"`` (the object as given, so pass it in the served version).
    ``list_metadata`` is the list's metadata (resourceVersion, continue, remainingItemCount); leave it None for a
    single-object GET and the table takes that object's resourceVersion.  ``no_headers`` leaves the column
    definitions out (``null``), as kube-apiserver does for every watch event after the first.

    Raises ValueError for an unknown ``include_object`` (kube-apiserver answers 400 Bad Request).
    """
    if include_object == "":
        include_object = "Metadata"
    if include_object not in ("None", "Metadata", "Object"):
        raise ValueError(f'unrecognized includeObject value: "{include_object}"')
    when = time.time() if now is None else now
    columns, printer = _printer_for(resource)

    metadata: dict[str, Any] = {}
    if list_metadata is not None:
        for key in ("resourceVersion", "continue"):
            if list_metadata.get(key):
                metadata[key] = list_metadata[key]
        if list_metadata.get("remainingItemCount") is not None:
            metadata["remainingItemCount"] = list_metadata["remainingItemCount"]
    elif len(objects) == 1:
        rv = _d(objects[0].get("metadata")).get("resourceVersion")
        if rv:
            metadata["resourceVersion"] = rv

    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj, when)}
        if resource.group == "" and resource.kind == "Pod":
            conditions = _COMPLETED_CONDITIONS.get(_s(_d(obj.get("status")).get("phase")))
            if conditions:
                row["conditions"] = [dict(c) for c in conditions]
        row["object"] = _row_object(obj, include_object)
        rows.append(row)

    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": metadata,
        "columnDefinitions": None if no_headers else [dict(col) for col in columns],
        "rows": rows,
    }
