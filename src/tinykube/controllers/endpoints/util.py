"""Pure rules of the Endpoints controller, shared with the EndpointSlice controller (no I/O).

Which pods count
    A pod selected by a service is an endpoint when it has an IP, is not in a terminal
    phase (``Succeeded``/``Failed``) and, unless the caller tolerates it, is not being
    deleted. The Endpoints controller tolerates terminating pods only under
    ``publishNotReadyAddresses``; the EndpointSlice controller always keeps them (it
    reports them with ``terminating: true``).

Addresses
    One IP per pod, of the service's first IP family (``spec.ipFamilies[0]``; without
    families, the family of a set cluster IP, else of the pod's first IP), with
    ``nodeName``, a ``targetRef`` to the pod (kind, namespace, name, uid) and
    ``hostname`` when the pod names the service as its ``subdomain`` and sets a
    ``hostname``.

Ports
    Each service port resolves per pod: a numeric ``targetPort`` as is, a named one to
    the ``containerPort`` of the same name and protocol in the pod's containers (or its
    sidecars, init containers with ``restartPolicy: Always``). A pod where the name does
    not resolve is left out for that port only.

Subsets
    Every (address, port) pair starts as a subset of its own; :func:`repack_subsets`
    then puts them in the canonical shape: ports offered by exactly the same set of
    addresses (with the same readiness) share a subset, an address ready anywhere for a
    port is ready for it, and everything is sorted (ports by name/number/protocol,
    addresses by IP then pod uid, subsets by their ports then addresses), so equal
    inputs always give equal outputs and a sync can compare before writing. A headless
    service without ports gets port-less subsets; a service with a cluster IP and no
    ports gets none.

Capacity
    At most :data:`MAX_ADDRESSES` addresses are kept (:func:`truncate_subsets`): ready
    addresses first, shared between subsets in proportion to their size; the object then
    carries ``endpoints.kubernetes.io/over-capacity: truncated``.

Trigger time
    :class:`TriggerTimeTracker` remembers, per service, the creation time of the service
    and the Ready-condition transition time of each selected pod as of the last sync. A
    sync reports the earliest of those that moved forward since (or the service's
    creation time when it first sees the service); written objects carry it as
    ``endpoints.kubernetes.io/last-change-trigger-time``, and lose the annotation when a
    write has no such time (a pod deletion, say).

Pod changes
    :func:`pod_change` tells whether a pod update can change any service's endpoints
    (deletion started, readiness, IPs, phase turning terminal, node) and whether it can
    change which services select it (labels, hostname, subdomain);
    :func:`services_to_sync` turns that into the services to queue.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...api.meta import meta_of as _meta
from ...api.meta import now_rfc3339, parse_timestamp
from ...api.meta import spec_of as _spec

Obj = dict[str, Any]

LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
HEADLESS_LABEL = "service.kubernetes.io/headless"
# Endpoints used as leader-election locks have no service and are never garbage.
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
MAX_ADDRESSES = 1000
TERMINAL_PHASES = ("Succeeded", "Failed")

AddrKey = tuple[str, str]
PortKey = tuple[str, int, str, str]


# -- pods ---------------------------------------------------------------------------------------------------------
def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == "Ready":
            return c
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    c = _ready_condition(pod)
    return c is not None and c.get("status") == "True"


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def pod_ips(pod: Mapping[str, Any]) -> list[str]:
    """``status.podIPs`` (falling back to ``status.podIP``), in order."""
    st = pod.get("status") or {}
    ips = [e["ip"] for e in st.get("podIPs") or [] if isinstance(e, Mapping) and e.get("ip")]
    if not ips and st.get("podIP"):
        ips = [str(st["podIP"])]
    return ips


def should_be_endpoint(pod: Mapping[str, Any], include_terminating: bool) -> bool:
    if is_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not is_terminating(pod)


def is_ipv6(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ":" in ip
    return addr.version == 6 and addr.ipv4_mapped is None


# -- services -----------------------------------------------------------------------------------------------------
def selector_of(svc: Mapping[str, Any]) -> Mapping[str, str] | None:
    """The service's selector, or None when it has none (an empty map counts as none, as it does upstream
    once the object has been through storage)."""
    sel = _spec(svc).get("selector")
    return sel if isinstance(sel, Mapping) and sel else None


def selects(selector: Mapping[str, str], labels: Mapping[str, str] | None) -> bool:
    if not labels:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def manages(svc: Mapping[str, Any]) -> bool:
    """Whether the controllers compute endpoints for the service: it has a selector and is not ExternalName.
    Endpoints of other services are their owners' and are left alone."""
    return _spec(svc).get("type") != "ExternalName" and selector_of(svc) is not None


def is_headless(svc: Mapping[str, Any]) -> bool:
    """No cluster IP set (``None`` or empty), as upstream's IsServiceIPSet says in reverse."""
    ip = _spec(svc).get("clusterIP")
    return not ip or ip == "None"


def ip_family_for(svc: Mapping[str, Any], pod: Mapping[str, Any]) -> str:
    families = _spec(svc).get("ipFamilies") or []
    if families:
        return str(families[0])
    cip = _spec(svc).get("clusterIP")
    if cip and cip != "None":
        return "IPv6" if is_ipv6(str(cip)) else "IPv4"
    ips = pod_ips(pod)
    return "IPv6" if ips and is_ipv6(ips[0]) else "IPv4"


def pod_ip_of_family(pod: Mapping[str, Any], family: str) -> str | None:
    want_v6 = family == "IPv6"
    for ip in pod_ips(pod):
        if is_ipv6(ip) == want_v6:
            return ip
    return None


def should_set_hostname(pod: Mapping[str, Any], svc: Mapping[str, Any]) -> bool:
    ps = _spec(pod)
    return bool(ps.get("hostname")) and ps.get("subdomain") == _meta(svc).get("name") \
        and _meta(pod).get("namespace") == _meta(svc).get("namespace")


def find_port(pod: Mapping[str, Any], service_port: Mapping[str, Any]) -> int | None:
    """The pod's port for a service port: a numeric targetPort as is; a named one looked up in the containers'
    (and sidecars') ports by name and protocol; None when it does not resolve."""
    target = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = service_port.get("port")
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if not isinstance(target, str):
        return None
    proto = service_port.get("protocol") or "TCP"
    ps = _spec(pod)
    containers = list(ps.get("containers") or [])
    containers += [c for c in ps.get("initContainers") or [] if isinstance(c, Mapping)
                   and c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in (c.get("ports") if isinstance(c, Mapping) else None) or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == proto and p.get("containerPort"):
                return int(p["containerPort"])
    return None


def target_ref(pod: Mapping[str, Any]) -> Obj:
    md = _meta(pod)
    return {"kind": "Pod", "namespace": md.get("namespace", ""), "name": md.get("name", ""), "uid": md.get("uid", "")}


def endpoint_address(svc: Mapping[str, Any], pod: Mapping[str, Any]) -> Obj | None:
    """The pod's EndpointAddress for the service, or None when it has no IP of the service's family."""
    ip = pod_ip_of_family(pod, ip_family_for(svc, pod))
    if ip is None:
        return None
    addr: Obj = {"ip": ip}
    if should_set_hostname(pod, svc):
        addr["hostname"] = _spec(pod)["hostname"]
    node = _spec(pod).get("nodeName")
    if node:
        addr["nodeName"] = node
    addr["targetRef"] = target_ref(pod)
    return addr


def endpoint_port(service_port: Mapping[str, Any], number: int) -> Obj:
    port: Obj = {}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    port["port"] = number
    port["protocol"] = service_port.get("protocol") or "TCP"
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


# -- subsets ------------------------------------------------------------------------------------------------------
def _addr_key(a: Mapping[str, Any]) -> AddrKey:
    return (str(a.get("ip") or ""), str((a.get("targetRef") or {}).get("uid") or ""))


def _port_key(p: Mapping[str, Any]) -> PortKey:
    return (str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
            str(p.get("appProtocol") or ""))


def _subset_key(ss: Mapping[str, Any]) -> tuple[Any, ...]:
    return (tuple(_port_key(p) for p in ss.get("ports") or []),
            tuple(_addr_key(a) for a in ss.get("addresses") or []),
            tuple(_addr_key(a) for a in ss.get("notReadyAddresses") or []))


def endpoint_subsets(svc: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The service's subsets from its selected pods, repacked (not yet truncated)."""
    spec = _spec(svc)
    publish = bool(spec.get("publishNotReadyAddresses"))
    ports = [p for p in spec.get("ports") or [] if isinstance(p, Mapping)]
    headless = is_headless(svc)
    pieces: list[Obj] = []
    for pod in pods:
        if not should_be_endpoint(pod, include_terminating=publish):
            continue
        addr = endpoint_address(svc, pod)
        if addr is None:
            continue
        where = "addresses" if publish or is_pod_ready(pod) else "notReadyAddresses"
        if not ports:
            if headless:
                pieces.append({where: [addr]})
            continue
        for sp in ports:
            number = find_port(pod, sp)
            if number is not None:
                pieces.append({where: [addr], "ports": [endpoint_port(sp, number)]})
    return repack_subsets(pieces)


def repack_subsets(subsets: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The canonical form of a list of subsets (see the module docstring)."""
    # port (None for "no ports") -> address key -> [address, ready]
    by_port: dict[PortKey | None, tuple[Mapping[str, Any] | None, dict[AddrKey, list[Any]]]] = {}
    for ss in subsets:
        ports: list[Mapping[str, Any] | None] = list(ss.get("ports") or []) or [None]
        for p in ports:
            pk = _port_key(p) if p is not None else None
            addrs = by_port.setdefault(pk, (p, {}))[1]
            for a in ss.get("addresses") or []:
                k = _addr_key(a)
                if k in addrs:
                    addrs[k][1] = True
                else:
                    addrs[k] = [a, True]
            for a in ss.get("notReadyAddresses") or []:
                addrs.setdefault(_addr_key(a), [a, False])
    # Ports served by the same addresses (with the same readiness) go together.
    groups: dict[frozenset[tuple[AddrKey, bool]], tuple[dict[AddrKey, list[Any]], list[Mapping[str, Any]]]] = {}
    for p, addrs in by_port.values():
        if not addrs:
            continue
        sig = frozenset((k, bool(v[1])) for k, v in addrs.items())
        group = groups.setdefault(sig, (addrs, []))
        if p is not None:
            group[1].append(p)
    out: list[Obj] = []
    for addrs, group_ports in groups.values():
        ready = sorted((v[0] for v in addrs.values() if v[1]), key=_addr_key)
        not_ready = sorted((v[0] for v in addrs.values() if not v[1]), key=_addr_key)
        packed: Obj = {}
        if ready:
            packed["addresses"] = ready
        if not_ready:
            packed["notReadyAddresses"] = not_ready
        if group_ports:
            packed["ports"] = sorted(group_ports, key=_port_key)
        out.append(packed)
    out.sort(key=_subset_key)
    return out


def address_count(subsets: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(ready, not ready) addresses over all subsets."""
    ready = not_ready = 0
    for ss in subsets:
        ready += len(ss.get("addresses") or [])
        not_ready += len(ss.get("notReadyAddresses") or [])
    return ready, not_ready


def truncate_subsets(subsets: list[Obj], limit: int = MAX_ADDRESSES) -> tuple[list[Obj], bool]:
    """At most ``limit`` addresses: ready ones first, each subset keeping a share proportional to its size
    (rounded up, so later subsets may get less). Returns the subsets and whether anything was cut."""
    ready_total, not_ready_total = address_count(subsets)
    total = ready_total + not_ready_total
    if total <= limit:
        return subsets, False
    ready_budget = min(ready_total, limit)
    not_ready_budget = limit - ready_budget
    out: list[Obj] = []
    for ss in subsets:
        ready = list(ss.get("addresses") or [])
        not_ready = list(ss.get("notReadyAddresses") or [])
        share = min(math.ceil((len(ready) + len(not_ready)) * limit / total), ready_budget + not_ready_budget)
        keep_ready = min(len(ready), share, ready_budget)
        ready_budget -= keep_ready
        keep_not_ready = min(len(not_ready), share - keep_ready, not_ready_budget)
        not_ready_budget -= keep_not_ready
        if keep_ready + keep_not_ready == 0:
            continue  # a subset must list some address
        cut: Obj = {k: v for k, v in ss.items() if k not in ("addresses", "notReadyAddresses")}
        if keep_ready:
            cut["addresses"] = ready[:keep_ready]
        if keep_not_ready:
            cut["notReadyAddresses"] = not_ready[:keep_not_ready]
        out.append(cut)
    out.sort(key=_subset_key)
    return out, True


# -- the Endpoints object -----------------------------------------------------------------------------------------
def endpoints_labels(svc: Mapping[str, Any]) -> dict[str, str]:
    """The service's labels, plus ``service.kubernetes.io/headless`` when it has no cluster IP."""
    labels = {k: v for k, v in (_meta(svc).get("labels") or {}).items() if k != HEADLESS_LABEL}
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    return labels


def format_time(t: float) -> str:
    return now_rfc3339(t)


def desired_endpoints(svc: Mapping[str, Any], current: Mapping[str, Any] | None, subsets: list[Obj],
                      trigger_time: float | None) -> Obj | None:
    """The Endpoints object to write for ``svc`` given its computed ``subsets``, or None when ``current`` already
    says the same (subsets, labels, over-capacity mark; the trigger time alone never causes a write). The result
    may share parts with its inputs: copy it before handing it to anything that changes objects."""
    final, truncated = truncate_subsets(subsets)
    labels = endpoints_labels(svc)
    if current is not None:
        cmd = _meta(current)
        ann = cmd.get("annotations") or {}
        if (list(current.get("subsets") or []) == final and dict(cmd.get("labels") or {}) == labels
                and ann.get(OVER_CAPACITY) == ("truncated" if truncated else None)):
            return None
        new: Obj = {k: v for k, v in current.items() if k != "subsets"}
        md: Obj = {k: v for k, v in cmd.items() if k not in ("labels", "annotations")}
        annotations = dict(ann)
    else:
        smd = _meta(svc)
        new = {"apiVersion": "v1", "kind": "Endpoints"}
        md = {"name": smd.get("name"), "namespace": smd.get("namespace")}
        annotations = {}
    if trigger_time is not None:
        annotations[LAST_CHANGE_TRIGGER_TIME] = format_time(trigger_time)
    else:
        annotations.pop(LAST_CHANGE_TRIGGER_TIME, None)
    if truncated:
        annotations[OVER_CAPACITY] = "truncated"
    else:
        annotations.pop(OVER_CAPACITY, None)
    if labels:
        md["labels"] = labels
    if annotations:
        md["annotations"] = annotations
    new["metadata"] = md
    if final:
        new["subsets"] = final
    return new


# -- trigger times ------------------------------------------------------------------------------------------------
def pod_trigger_time(pod: Mapping[str, Any]) -> float | None:
    c = _ready_condition(pod)
    return parse_timestamp(c.get("lastTransitionTime")) if c is not None else None


@dataclass
class _TriggerState:
    service: float
    pods: dict[str, float] = field(default_factory=dict)


class TriggerTimeTracker:
    """What each service's endpoints last reflected, to tell when the change being written was triggered."""

    def __init__(self) -> None:
        self._states: dict[str, _TriggerState] = {}

    def compute(self, key: str, svc: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> float | None:
        """The trigger time of the change a sync of ``svc`` (selecting ``pods``) is about to write, if any."""
        old = self._states.get(key)
        created = parse_timestamp(_meta(svc).get("creationTimestamp")) or 0.0
        state = _TriggerState(created)
        moved: list[float] = []
        for pod in pods:
            t = pod_trigger_time(pod)
            if t is None:
                continue
            name = str(_meta(pod).get("name"))
            state.pods[name] = t
            if old is not None and t > old.pods.get(name, -math.inf):
                moved.append(t)
        if old is not None and created > old.service:
            moved.append(created)
        self._states[key] = state
        if old is None:
            return created or None
        return min(moved) if moved else None

    def forget(self, key: str) -> None:
        self._states.pop(key, None)


# -- pod changes --------------------------------------------------------------------------------------------------
def _endpoint_view(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    return (is_terminating(pod), is_pod_ready(pod), tuple(pod_ips(pod)), is_terminal(pod), _spec(pod).get("nodeName"))


def _membership_view(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    ps = _spec(pod)
    return (_meta(pod).get("labels") or {}, ps.get("hostname"), ps.get("subdomain"))


def pod_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[bool, bool]:
    """(whether the pod's endpoints may differ, whether the services selecting it may differ)."""
    return _endpoint_view(old) != _endpoint_view(new), _membership_view(old) != _membership_view(new)


def services_to_sync(old_keys: set[str], new_keys: set[str], endpoint_changed: bool,
                     membership_changed: bool) -> set[str]:
    """The services a pod update concerns: all that selected it before or after when its endpoint changed;
    otherwise, when only its labels did, those that started or stopped selecting it."""
    if not membership_changed:
        return set(new_keys) if endpoint_changed else set()
    return old_keys | new_keys if endpoint_changed else old_keys ^ new_keys
