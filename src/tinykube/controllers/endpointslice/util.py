"""Pure rules of the EndpointSlice controller: the endpoints a service wants, and how existing slices change to
hold them with as few writes as possible (no I/O).

Desired endpoints
    Every selected pod that has an IP and is not in a terminal phase is an endpoint, terminating
    ones included: ``serving`` is the pod's readiness, ``terminating`` whether its deletion has
    started, and ``ready`` is ``serving and not terminating`` — or always true under
    ``publishNotReadyAddresses``. An endpoint has the pod's IPs of the slice's address type,
    ``nodeName``, ``zone`` (the node's ``topology.kubernetes.io/zone``), a ``targetRef`` to the pod
    and ``hostname`` under the same rule as Endpoints. A pod whose node is unknown is left out
    (and reported, so the caller retries) unless ``publishNotReadyAddresses`` is set.

    Ports resolve per pod as for Endpoints, and pods whose resolved ports differ (a named
    ``targetPort`` that resolves differently, or not at all) land in different groups: a slice
    holds endpoints of one port group only. A service gets slices of each address type it
    supports (its ``ipFamilies``; without them the family of its cluster IP; a headless one
    without families both).

Reconciling (:func:`reconcile`)
    Existing slices are matched to desired groups by their ports. For each group:

    1. every existing slice keeps the endpoints still desired (taking their desired form) and
       drops the rest; a slice left empty is deleted, a changed one updated, one whose labels
       went stale updated, the others left alone;
    2. endpoints not placed yet first fill the slices already being updated, fullest first;
    3. what is left goes, when it is less than a slice's worth, into the untouched slice it
       fills closest to full, else into new slices (``generateName: <service>-``), at most
       ``max_per_slice`` (100) endpoints each.

    Slices of groups or address types no longer wanted, and slices the service does not own
    (a previous service of the same name), are deleted. A service with no endpoints keeps one
    placeholder slice of each address type (no ports, no endpoints). Before writing, creates
    take over the names of slices about to be deleted (same address type and owner), turning a
    delete and a create into one update.

    Slices carry the service's labels (reserved keys excepted), ``kubernetes.io/service-name``,
    ``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io``,
    ``service.kubernetes.io/headless`` for services without a cluster IP, and a controller
    ownerReference to the service (so the garbage collector removes them with it).

Staleness (:class:`SliceTracker`)
    The informer may not have seen the controller's own last writes yet. The tracker records
    the resourceVersion of every slice written and every deletion asked for; a sync whose
    cache lacks a written slice, holds an older version of it, or still holds one being
    deleted waits (the caller retries with backoff) instead of acting on old state and
    creating duplicates. Echoes of its own writes do not queue the service again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...api.meta import meta_of as _meta
from ..endpoints import util as eputil

Obj = dict[str, Any]

MAX_ENDPOINTS_PER_SLICE = 100
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
LABEL_ZONE = "topology.kubernetes.io/zone"
RESERVED_LABELS = frozenset({LABEL_SERVICE_NAME, LABEL_MANAGED_BY, eputil.HEADLESS_LABEL})
ADDRESS_TYPES = ("IPv4", "IPv6")

PortsKey = tuple[tuple[str, int, str, str], ...]
EndpointKey = tuple[tuple[str, ...], str, str, str]


# -- what a service wants -----------------------------------------------------------------------------------------
def address_types(svc: Mapping[str, Any]) -> list[str]:
    spec = svc.get("spec") or {}
    families = [f for f in spec.get("ipFamilies") or [] if f in ADDRESS_TYPES]
    if families:
        return list(dict.fromkeys(families))
    cip = spec.get("clusterIP")
    if cip and cip != "None":
        return ["IPv6" if eputil.is_ipv6(str(cip)) else "IPv4"]
    return list(ADDRESS_TYPES)


def endpoint_ports(svc: Mapping[str, Any], pod: Mapping[str, Any]) -> list[Obj]:
    """The service's ports as they resolve for ``pod`` (ports that do not resolve are left out)."""
    out: list[Obj] = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        number = eputil.find_port(pod, sp)
        if number is None:
            continue
        port: Obj = {"name": sp.get("name") or "", "port": number, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def ports_key(ports: Iterable[Mapping[str, Any]] | None) -> PortsKey:
    """Identity of a set of slice ports, whatever their order."""
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
                         str(p.get("appProtocol") or "")) for p in ports or []))


def endpoint_key(ep: Mapping[str, Any]) -> EndpointKey:
    """What makes two endpoints the same one (their conditions, node and zone may differ)."""
    ref = ep.get("targetRef") or {}
    return (tuple(sorted(ep.get("addresses") or [])), str(ep.get("hostname") or ""), str(ref.get("namespace") or ""),
            str(ref.get("name") or ""))


def pod_endpoint(pod: Mapping[str, Any], svc: Mapping[str, Any], address_type: str,
                 node: Mapping[str, Any] | None) -> Obj | None:
    """The pod as an endpoint of a slice of ``address_type``, or None when it has no IP of that type."""
    want_v6 = address_type == "IPv6"
    addresses = [ip for ip in eputil.pod_ips(pod) if eputil.is_ipv6(ip) == want_v6]
    if not addresses:
        return None
    serving = eputil.is_pod_ready(pod)
    terminating = eputil.is_terminating(pod)
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    ep: Obj = {"addresses": addresses,
               "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                              "terminating": terminating}}
    if eputil.should_set_hostname(pod, svc):
        ep["hostname"] = (pod.get("spec") or {})["hostname"]
    ep["targetRef"] = eputil.target_ref(pod)
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        ep["nodeName"] = node_name
    zone = ((_meta(node).get("labels") or {}) if node is not None else {}).get(LABEL_ZONE)
    if zone:
        ep["zone"] = zone
    return ep


@dataclass
class Group:
    """Endpoints that share one set of resolved ports."""

    ports: list[Obj]
    endpoints: dict[EndpointKey, Obj] = field(default_factory=dict)


Desired = dict[str, dict[PortsKey, Group]]  # address type -> ports -> group


def desired_endpoints(svc: Mapping[str, Any], pods: Iterable[Mapping[str, Any]],
                      node_of: Callable[[str], Mapping[str, Any] | None]) -> tuple[Desired, list[str]]:
    """The service's endpoints by address type and port group, and the names of pods left out because their
    node is unknown."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    types = address_types(svc)
    desired: Desired = {t: {} for t in types}
    missing: list[str] = []
    for pod in pods:
        if not eputil.should_be_endpoint(pod, include_terminating=True):
            continue
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        node = node_of(node_name) if node_name else None
        if node is None and not publish:
            missing.append(str(_meta(pod).get("name")))
            continue
        ports = endpoint_ports(svc, pod)
        pk = ports_key(ports)
        for t in types:
            ep = pod_endpoint(pod, svc, t, node)
            if ep is not None:
                desired[t].setdefault(pk, Group(ports)).endpoints[endpoint_key(ep)] = ep
    for groups in desired.values():
        for g in groups.values():
            g.endpoints = dict(sorted(g.endpoints.items()))
    return desired, missing


# -- slices -------------------------------------------------------------------------------------------------------
def slice_labels(svc: Mapping[str, Any]) -> dict[str, str]:
    md = _meta(svc)
    labels = {k: v for k, v in (md.get("labels") or {}).items() if k not in RESERVED_LABELS}
    if eputil.is_headless(svc):
        labels[eputil.HEADLESS_LABEL] = ""
    labels[LABEL_SERVICE_NAME] = str(md.get("name"))
    labels[LABEL_MANAGED_BY] = CONTROLLER_NAME
    return labels


def managed_service_key(slice_: Mapping[str, Any]) -> str | None:
    """``namespace/service`` of a slice this controller manages, else None."""
    md = _meta(slice_)
    labels = md.get("labels") or {}
    svc = labels.get(LABEL_SERVICE_NAME)
    if not svc or labels.get(LABEL_MANAGED_BY) != CONTROLLER_NAME:
        return None
    return f"{md.get('namespace')}/{svc}"


def owner_ref(svc: Mapping[str, Any]) -> Obj:
    md = _meta(svc)
    return {"apiVersion": "v1", "kind": "Service", "name": md.get("name"), "uid": md.get("uid"), "controller": True,
            "blockOwnerDeletion": True}


def owned_by(slice_: Mapping[str, Any], svc: Mapping[str, Any]) -> bool:
    uid = _meta(svc).get("uid")
    return any(r.get("uid") == uid and r.get("kind") == "Service" and r.get("apiVersion") == "v1"
               for r in _meta(slice_).get("ownerReferences") or [])


def new_slice(svc: Mapping[str, Any], ports: list[Obj], address_type: str) -> Obj:
    md = _meta(svc)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{md.get('name')}-", "namespace": md.get("namespace"),
                         "labels": slice_labels(svc), "ownerReferences": [owner_ref(svc)]},
            "addressType": address_type, "endpoints": [], "ports": list(ports)}


def _endpoints(slice_: Mapping[str, Any]) -> list[Obj]:
    eps: list[Obj] = slice_.get("endpoints") or []
    return eps


def _revised(slice_: Mapping[str, Any], endpoints: list[Obj] | None = None,
             labels: dict[str, str] | None = None) -> Obj:
    """A new slice dict from an existing (possibly shared) one, with new endpoints and/or labels."""
    new = dict(slice_)
    new["metadata"] = dict(_meta(slice_))
    new["endpoints"] = list(_endpoints(slice_)) if endpoints is None else endpoints
    if labels is not None:
        new["metadata"]["labels"] = labels
    return new


def is_placeholder(slice_: Mapping[str, Any], svc: Mapping[str, Any], address_type: str) -> bool:
    return (slice_.get("addressType") == address_type and not _endpoints(slice_) and not slice_.get("ports")
            and owned_by(slice_, svc) and dict(_meta(slice_).get("labels") or {}) == slice_labels(svc))


@dataclass
class Plan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def _closest_fit(slices: list[Obj], n: int, max_per_slice: int) -> Obj | None:
    """The slice that ``n`` more endpoints fill closest to ``max_per_slice`` without overflowing it."""
    best: Obj | None = None
    best_room = max_per_slice
    for s in slices:
        room = max_per_slice - n - len(_endpoints(s))
        if 0 <= room < best_room:
            best, best_room = s, room
            if room == 0:
                break
    return best


def _reconcile_group(svc: Mapping[str, Any], address_type: str, group: Group, existing: list[Obj],
                     max_per_slice: int) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """(create, update, delete) for one port group's slices."""
    labels = slice_labels(svc)
    left = dict(group.endpoints)  # desired endpoints not placed yet
    updated: list[Obj] = []
    untouched: list[Obj] = []
    deleted: list[Obj] = []
    for s in existing:
        kept: list[Obj] = []
        changed = False
        for ep in _endpoints(s):
            want = left.pop(endpoint_key(ep), None)
            if want is None:
                changed = True  # no longer desired (or a duplicate of one placed already)
                continue
            kept.append(want)
            changed = changed or want != ep
        if changed and not kept:
            deleted.append(s)
        elif changed or dict(_meta(s).get("labels") or {}) != labels:
            updated.append(_revised(s, kept, labels))
        else:
            untouched.append(s)

    def fill(s: Obj) -> None:
        eps = s["endpoints"]
        while left and len(eps) < max_per_slice:
            eps.append(left.pop(next(iter(left))))

    if left:
        for s in sorted(updated, key=lambda s: -len(s["endpoints"])):
            fill(s)
    created: list[Obj] = []
    while left:
        target = _closest_fit(untouched, len(left), max_per_slice) if len(left) < max_per_slice else None
        if target is None:
            s = new_slice(svc, group.ports, address_type)
            created.append(s)
        else:
            untouched.remove(target)
            s = _revised(target)
            updated.append(s)
        fill(s)
    return created, updated, deleted


def _reconcile_type(svc: Mapping[str, Any], address_type: str, groups: dict[PortsKey, Group],
                    existing: list[Obj], max_per_slice: int, plan: Plan) -> None:
    create: list[Obj] = []
    update: list[Obj] = []
    delete: list[Obj] = []
    by_ports: dict[PortsKey, list[Obj]] = {}
    for s in existing:
        if owned_by(s, svc):
            by_ports.setdefault(ports_key(s.get("ports")), []).append(s)
        else:
            delete.append(s)  # left over from an earlier service of the same name
    for pk, group in groups.items():
        c, u, d = _reconcile_group(svc, address_type, group, by_ports.get(pk, []), max_per_slice)
        create += c
        update += u
        delete += d
    for pk, slices in by_ports.items():
        if pk not in groups:
            delete += slices
    if len(delete) == len(existing) and not create:
        # No endpoints at all: one placeholder slice stands for the service.
        if len(delete) == 1 and is_placeholder(delete[0], svc, address_type):
            delete = []
        else:
            create.append(new_slice(svc, [], address_type))
    # A create and a delete become one update of the slice that would go.
    i = 0
    while create and i < len(delete):
        old = delete[i]
        if old.get("addressType") == address_type and owned_by(old, svc):
            s = create.pop()
            omd = _meta(old)
            s["metadata"] = {**s["metadata"], "name": omd.get("name"), "resourceVersion": omd.get("resourceVersion")}
            update.append(s)
            del delete[i]
        else:
            i += 1
    plan.create += create
    plan.update += update
    plan.delete += delete


def reconcile(svc: Mapping[str, Any], desired: Desired, existing: Iterable[Obj],
              max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> Plan:
    """The creates, updates and deletes that turn ``existing`` slices (the service's managed ones, none being
    deleted) into slices holding ``desired`` (see the module docstring). Returned objects may share parts with
    the inputs; copy before handing them to anything that changes objects."""
    plan = Plan()
    by_type: dict[str, list[Obj]] = {t: [] for t in desired}
    for s in sorted(existing, key=lambda s: str(_meta(s).get("name"))):
        t = s.get("addressType")
        if isinstance(t, str) and t in by_type:
            by_type[t].append(s)
        else:
            plan.delete.append(s)
    for t, groups in desired.items():
        _reconcile_type(svc, t, groups, by_type[t], max_per_slice, plan)
    return plan


def finalized(slice_: Mapping[str, Any], trigger_time: float | None) -> Obj:
    """A slice as written: the trigger-time annotation set (or cleared), empty lists as null (as upstream
    stores them)."""
    new = dict(slice_)
    md = dict(_meta(slice_))
    ann = dict(md.get("annotations") or {})
    if trigger_time is not None:
        ann[eputil.LAST_CHANGE_TRIGGER_TIME] = eputil.format_time(trigger_time)
    else:
        ann.pop(eputil.LAST_CHANGE_TRIGGER_TIME, None)
    if ann:
        md["annotations"] = ann
    else:
        md.pop("annotations", None)
    new["metadata"] = md
    new["endpoints"] = list(_endpoints(slice_)) or None
    new["ports"] = list(slice_.get("ports") or []) or None
    return new


# -- staleness ----------------------------------------------------------------------------------------------------
def _rv(obj: Mapping[str, Any]) -> int:
    try:
        return int(_meta(obj).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


_DELETING = -1


class SliceTracker:
    """The slices this controller wrote or deleted, per service, to tell a stale cache from a current one."""

    def __init__(self) -> None:
        self._by_service: dict[str, dict[str, int]] = {}

    def wrote(self, key: str, slice_: Mapping[str, Any]) -> None:
        self._by_service.setdefault(key, {})[str(_meta(slice_).get("uid"))] = _rv(slice_)

    def expect_deletion(self, key: str, slice_: Mapping[str, Any]) -> None:
        self._by_service.setdefault(key, {})[str(_meta(slice_).get("uid"))] = _DELETING

    def should_sync(self, key: str, slice_: Mapping[str, Any]) -> bool:
        """Whether an add/update of a slice is news (not the echo of this controller's own write)."""
        want = self._by_service.get(key, {}).get(str(_meta(slice_).get("uid")))
        return want is None or want == _DELETING or _rv(slice_) > want

    def handle_deletion(self, key: str, slice_: Mapping[str, Any]) -> bool:
        """Forget a deleted slice; True when this controller had asked for the deletion."""
        tracked = self._by_service.get(key)
        if tracked is None:
            return False
        want = tracked.pop(str(_meta(slice_).get("uid")), None)
        if not tracked:
            del self._by_service[key]
        return want == _DELETING

    def stale(self, key: str, slices: Iterable[Mapping[str, Any]]) -> bool:
        """Whether ``slices`` (the cache's, those being deleted left out) predate what this controller did."""
        tracked = self._by_service.get(key)
        if not tracked:
            return False
        seen = {str(_meta(s).get("uid")): _rv(s) for s in slices}
        for uid, want in tracked.items():
            have = seen.get(uid)
            if want == _DELETING:
                if have is not None:
                    return True
            elif have is None or have < want:
                return True
        return False

    def forget(self, key: str) -> None:
        self._by_service.pop(key, None)
