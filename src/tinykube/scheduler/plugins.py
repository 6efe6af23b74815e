"""Filter and score plugins, as pure functions over a pod's scheduling view and a node's cached state.

The filters run in upstream's default-profile order and a node's verdict is the
first one that rejects it (upstream's framework stops at the first failing
filter):

=====================  ========================================================  ===========
plugin                 reason(s)                                                 preemption
=====================  ========================================================  ===========
NodeUnschedulable      ``node(s) were unschedulable``                            no help
TaintToleration        ``node(s) had untolerated taint {<key>: <value>}``        no help
NodeAffinity           ``node(s) didn't match Pod's node affinity/selector``     no help
NodePorts              ``node(s) didn't have free ports for the requested pod    may help
                       ports``
NodeResourcesFit       ``Too many pods``, ``Insufficient <resource>`` (each)     may help
=====================  ========================================================  ===========

"no help" is upstream's ``UnschedulableAndUnresolvable``: preemption skips such
nodes with ``Preemption is not helpful for scheduling``.

NodeAffinity's PreFilter narrows the nodes up front when every required term
pins ``metadata.name``; the others are then reported as ``node(s) didn't
satisfy plugin(s) [NodeAffinity]`` (terms that pin disjoint names: ``pod
affinity terms conflict``).

Scores (see :mod:`.candidates` for how they combine): the number of untolerated
PreferNoSchedule taints (TaintToleration), the pod's controller-mates already on
the node (default PodTopologySpread on hostname), least-allocated CPU and memory
over non-zero requests (NodeResourcesFit, LeastAllocated) and preferred node
affinity weights (NodeAffinity).

:func:`fit_error_message` renders upstream's ``FitError.Error()`` (v1.32): the
reason histogram as ``"<count> <reason>"`` strings sorted lexicographically
(so ``10 …`` sorts before ``2 …``, as Go's ``sort.Strings`` does), then the
PostFilter (preemption) message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..machinery.informer import controller_ref
from .cache import UNSCHEDULABLE_TAINT, NodeInfo, PodRecord
from .resources import CPU, EPHEMERAL, MEMORY, HostPort, PodResources, host_ports, pod_resources

MAX_NODE_SCORE = 100

ERR_UNSCHEDULABLE = "node(s) were unschedulable"
ERR_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
ERR_AFFINITY_CONFLICT = "pod affinity terms conflict"
ERR_PORTS = "node(s) didn't have free ports for the requested pod ports"
ERR_TOO_MANY_PODS = "Too many pods"
ERR_NO_NODES = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
PREEMPTION_NEVER = "not eligible due to preemptionPolicy=Never."
NOTE_LENGTH_LIMIT = 1024


def taint_reason(taint: dict[str, Any]) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"


def prefilter_reason(plugins: Iterable[str]) -> str:
    return f"node(s) didn't satisfy plugin(s) [{' '.join(sorted(plugins))}]"


# -- the pod's scheduling view -------------------------------------------------------------------------------
@dataclass(slots=True)
class PodInfo:
    """What scheduling reads from a pod, parsed once; ``signature`` is equal for pods that schedule alike."""

    key: str
    res: PodResources
    owner: str | None
    priority: int
    preemption_never: bool
    tolerations: list[dict[str, Any]]
    node_selector: dict[str, str]
    required_terms: list[dict[str, Any]] | None
    preferred_terms: list[tuple[int, dict[str, Any]]]
    prefilter_names: frozenset[str] | None
    ports: tuple[HostPort, ...]
    signature: bytes

    @property
    def preferred_weight(self) -> int:
        return sum(w for w, _ in self.preferred_terms)


def _required_terms(spec: dict[str, Any]) -> list[dict[str, Any]] | None:
    na = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is None:
        return None
    return list(req.get("nodeSelectorTerms") or [])


def _prefilter_names(terms: list[dict[str, Any]] | None) -> frozenset[str] | None:
    """NodeAffinity PreFilter: the node names every term pins with ``metadata.name In``, or None (all nodes)."""
    if not terms:
        return None
    names: set[str] = set()
    for term in terms:
        term_names: set[str] | None = None
        for req in term.get("matchFields") or []:
            if req.get("key") == "metadata.name" and req.get("operator") == "In":
                vals = set(req.get("values") or [])
                term_names = vals if term_names is None else term_names & vals
        if term_names is None:
            return None  # this term does not pin names, and terms are ORed
        names |= term_names
    return frozenset(names)


@dataclass(slots=True, frozen=True)
class _Template:
    res: PodResources
    tolerations: list[dict[str, Any]]
    node_selector: dict[str, str]
    required_terms: list[dict[str, Any]] | None
    preferred_terms: list[tuple[int, dict[str, Any]]]
    prefilter_names: frozenset[str] | None
    ports: tuple[HostPort, ...]
    signature: bytes


# Pods of one controller share their spec: parse each distinct spec once.
_TEMPLATES: dict[bytes, _Template] = {}
_TEMPLATE_LIMIT = 4096


def _template(spec: dict[str, Any]) -> _Template:
    raw = orjson.dumps([spec.get("containers"), spec.get("initContainers"), spec.get("overhead"),
                        spec.get("nodeSelector"), spec.get("affinity"), spec.get("tolerations")])
    t = _TEMPLATES.get(raw)
    if t is not None:
        return t
    res = pod_resources(spec)
    na = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    preferred = [(int(p.get("weight") or 0), p.get("preference") or {})
                 for p in na.get("preferredDuringSchedulingIgnoredDuringExecution") or [] if p.get("weight")]
    required = _required_terms(spec)
    ports = host_ports(spec)
    tolerations = list(spec.get("tolerations") or [])
    node_selector = dict(spec.get("nodeSelector") or {})
    signature = orjson.dumps([res.cpu, res.memory, res.ephemeral, res.scalars, res.nz_cpu, res.nz_memory,
                              ports, node_selector, na, tolerations], option=orjson.OPT_SORT_KEYS)
    t = _Template(res, tolerations, node_selector, required, preferred, _prefilter_names(required), ports, signature)
    if len(_TEMPLATES) >= _TEMPLATE_LIMIT:
        _TEMPLATES.clear()
    _TEMPLATES[raw] = t
    return t


def pod_info(pod: dict[str, Any], key: str = "") -> PodInfo:
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    t = _template(spec)
    ref = controller_ref(pod)
    owner = ref.get("uid") if ref and not md.get("deletionTimestamp") else None
    signature = t.signature if owner is None else t.signature + b"|" + owner.encode()
    return PodInfo(key or f"{md.get('namespace', '')}/{md.get('name', '')}", t.res, owner,
                   int(spec.get("priority") or 0), spec.get("preemptionPolicy") == "Never", t.tolerations,
                   t.node_selector, t.required_terms, t.preferred_terms, t.prefilter_names, t.ports, signature)


def pod_record(pod: dict[str, Any], node: str, key: str = "", info: PodInfo | None = None) -> PodRecord:
    """The cache's record of a pod bound (or assumed) to ``node``."""
    info = info or pod_info(pod, key)
    owner = None if (pod.get("metadata") or {}).get("deletionTimestamp") else info.owner
    return PodRecord(info.key, node, info.res, owner, info.priority, info.ports)


# -- tolerations ---------------------------------------------------------------------------------------------
def tolerates(tol: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Upstream ``Toleration.ToleratesTaint``: empty effect matches every effect, empty key every key."""
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (tol.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taint(taints: Iterable[dict[str, Any]], tolerations: list[dict[str, Any]],
                      effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> dict[str, Any] | None:
    """The first taint with one of ``effects`` that no toleration tolerates (upstream FindMatchingUntoleratedTaint)."""
    for taint in taints:
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def prefer_no_schedule_count(taints: Iterable[dict[str, Any]], tolerations: list[dict[str, Any]]) -> int:
    """TaintToleration score input: PreferNoSchedule taints the pod's PreferNoSchedule tolerations miss."""
    prefer = [t for t in tolerations if (t.get("effect") or "") in ("", "PreferNoSchedule")]
    return sum(1 for taint in taints
               if taint.get("effect") == "PreferNoSchedule" and not any(tolerates(t, taint) for t in prefer))


# -- node selectors ------------------------------------------------------------------------------------------
def _to_int(s: Any) -> int | None:
    try:
        return int(str(s))
    except ValueError:
        return None


def _match_expression(req: dict[str, Any], value: str | None) -> bool:
    """One NodeSelectorRequirement against the value of its key (None: the key is absent)."""
    op = req.get("operator")
    vals = req.get("values") or []
    if op == "In":
        return value is not None and value in vals
    if op == "NotIn":
        return value is None or value not in vals
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(vals) != 1:
            return False
        have, want = _to_int(value), _to_int(vals[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def match_term(term: dict[str, Any], labels: dict[str, str], name: str) -> bool:
    """A NodeSelectorTerm: its expressions and fields are ANDed; a term with neither matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    for req in exprs:
        if not _match_expression(req, labels.get(req.get("key", ""))):
            return False
    for req in fields:
        if req.get("key") != "metadata.name" or req.get("operator") not in ("In", "NotIn"):
            return False
        if not _match_expression(req, name):
            return False
    return True


def match_node_selector_terms(terms: list[dict[str, Any]], labels: dict[str, str], name: str) -> bool:
    """Terms are ORed."""
    return any(match_term(t, labels, name) for t in terms)


def matches_node_affinity(info: PodInfo, ni: NodeInfo) -> bool:
    labels = ni.labels
    for k, v in info.node_selector.items():
        if labels.get(k) != v:
            return False
    if info.required_terms is not None and not match_node_selector_terms(info.required_terms, labels, ni.name):
        return False
    return True


def preferred_affinity_score(info: PodInfo, ni: NodeInfo) -> int:
    """Preferred node affinity, normalised to 0..100 by the pod's total preferred weight."""
    total = info.preferred_weight
    if not total:
        return 0
    got = sum(w for w, term in info.preferred_terms if match_term(term, ni.labels, ni.name))
    return MAX_NODE_SCORE * got // total


# -- filters -------------------------------------------------------------------------------------------------
@dataclass(slots=True, frozen=True)
class Rejection:
    """A node's filter verdict: the failing plugin's reasons; ``unresolvable`` when preemption cannot help."""

    reasons: tuple[str, ...]
    unresolvable: bool
    plugin: str


def static_filters(info: PodInfo, ni: NodeInfo) -> Rejection | None:
    """NodeUnschedulable, TaintToleration, NodeAffinity: verdicts that depend on the node's spec only."""
    if ni.unschedulable and not any(
            tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in info.tolerations):
        return Rejection((ERR_UNSCHEDULABLE,), True, "NodeUnschedulable")
    taint = untolerated_taint(ni.taints, info.tolerations)
    if taint is not None:
        return Rejection((taint_reason(taint),), True, "TaintToleration")
    if not matches_node_affinity(info, ni):
        return Rejection((ERR_AFFINITY,), True, "NodeAffinity")
    return None


def ports_conflict(ports: tuple[HostPort, ...], used: Counter[HostPort] | dict[HostPort, int]) -> bool:
    """Upstream HostPortInfo.CheckConflict: 0.0.0.0 clashes with every IP on the same protocol and port."""
    if not ports or not used:
        return False
    for ip, proto, port in ports:
        if ip == "0.0.0.0":
            if any(u_proto == proto and u_port == port for _, u_proto, u_port in used):
                return True
        elif (ip, proto, port) in used or ("0.0.0.0", proto, port) in used:
            return True
    return False


def insufficient_resources(res: PodResources, ni: NodeInfo) -> list[str]:
    """NodeResourcesFit's reasons, in upstream's order: pod count, cpu, memory, ephemeral-storage, scalars."""
    out: list[str] = []
    alloc = ni.alloc
    if len(ni.pods) + 1 > alloc.pods:
        out.append(ERR_TOO_MANY_PODS)
    if res.empty:
        return out
    if res.cpu > 0 and res.cpu > alloc.cpu - ni.req_cpu:
        out.append(f"Insufficient {CPU}")
    if res.memory > 0 and res.memory > alloc.memory - ni.req_memory:
        out.append(f"Insufficient {MEMORY}")
    if res.ephemeral > 0 and res.ephemeral > alloc.ephemeral - ni.req_ephemeral:
        out.append(f"Insufficient {EPHEMERAL}")
    for name, q in res.scalars:
        if q > alloc.scalars.get(name, 0) - ni.req_scalars.get(name, 0):
            out.append(f"Insufficient {name}")
    return out


def fits(info: PodInfo, ni: NodeInfo) -> bool:
    """The dynamic filters (NodePorts, NodeResourcesFit) as one fast yes/no."""
    res = info.res
    alloc = ni.alloc
    if len(ni.pods) >= alloc.pods:
        return False
    if res.cpu and res.cpu > alloc.cpu - ni.req_cpu:
        return False
    if res.memory and res.memory > alloc.memory - ni.req_memory:
        return False
    if res.ephemeral and res.ephemeral > alloc.ephemeral - ni.req_ephemeral:
        return False
    for name, q in res.scalars:
        if q > alloc.scalars.get(name, 0) - ni.req_scalars.get(name, 0):
            return False
    return not (info.ports and ports_conflict(info.ports, ni.ports))


def dynamic_filters(info: PodInfo, ni: NodeInfo) -> Rejection | None:
    if info.ports and ports_conflict(info.ports, ni.ports):
        return Rejection((ERR_PORTS,), False, "NodePorts")
    reasons = insufficient_resources(info.res, ni)
    if reasons:
        return Rejection(tuple(reasons), False, "NodeResourcesFit")
    return None


def run_filters(info: PodInfo, ni: NodeInfo) -> Rejection | None:
    """Every filter in upstream's order; None when the pod fits the node."""
    return static_filters(info, ni) or dynamic_filters(info, ni)


def filter_pod_on_node(pod: dict[str, Any], node: dict[str, Any], pods_on_node: Iterable[dict[str, Any]] = ()
                       ) -> list[str]:
    """Convenience over plain objects: the reasons ``pod`` cannot go to ``node`` (empty when it can)."""
    ni = NodeInfo.of(node, tuple(pod_record(p, node["metadata"]["name"], f"{i}") for i, p in enumerate(pods_on_node)))
    info = pod_info(pod)
    names = info.prefilter_names
    if names is not None and ni.name not in names:
        return [prefilter_reason(["NodeAffinity"])]
    rej = run_filters(info, ni)
    return list(rej.reasons) if rej else []


# -- scores --------------------------------------------------------------------------------------------------
def least_requested(requested: int, capacity: int) -> int:
    if capacity <= 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def least_allocated_score(res: PodResources, ni: NodeInfo) -> int:
    """NodeResourcesFit LeastAllocated over cpu and memory (weights 1 and 1), on non-zero requests."""
    alloc = ni.alloc
    return (least_requested(ni.nz_cpu + res.nz_cpu, alloc.cpu)
            + least_requested(ni.nz_memory + res.nz_memory, alloc.memory)) // 2


# -- FitError ------------------------------------------------------------------------------------------------
def fit_error_message(num_all_nodes: int, histogram: dict[str, int] | Counter[str], prefilter_msg: str = "",
                      postfilter_msg: str = "") -> str:
    """Upstream's ``FitError.Error()``: ``0/N nodes are available: <prefilter>. <histogram>. <postfilter>``."""
    msg = f"0/{num_all_nodes} nodes are available:"
    if prefilter_msg:
        msg += f" {prefilter_msg}."
    else:
        items = sorted(f"{count} {reason}" for reason, count in histogram.items())
        if items:
            msg += f" {', '.join(items)}."
    if postfilter_msg:
        msg += f" {postfilter_msg}"
    return msg


def preemption_message(num_all_nodes: int, histogram: dict[str, int] | Counter[str]) -> str:
    """The DefaultPreemption PostFilter message when no node has victims whose eviction would make room."""
    return "preemption: " + fit_error_message(num_all_nodes, histogram)


def truncate_message(msg: str, limit: int = NOTE_LENGTH_LIMIT) -> str:
    """Event notes are cut at 1024 characters with a ``" ..."`` suffix, as upstream's truncateMessage."""
    if len(msg) <= limit:
        return msg
    suffix = " ..."
    return msg[:limit - len(suffix)] + suffix


def preemption_dry_run(info: PodInfo, ni: NodeInfo) -> tuple[bool, Rejection | None]:
    """Preemption's check of one node whose rejection was resolvable: (any victims?, rejection without them).

    Victims are the node's pods of lower priority. With none, upstream reports
    ``No preemption victims found for incoming pod``; otherwise the filters run as
    if every victim were gone, and a rejection then is the node's preemption
    verdict. No rejection means evicting them would make room (upstream would
    then preempt, which tinykube does not do).
    """
    if not any(rec.priority < info.priority for rec in ni.pods.values()):
        return False, None
    trial = NodeInfo.of(ni.node or {"metadata": {"name": ni.name}},
                        tuple(rec for rec in ni.pods.values() if rec.priority >= info.priority))
    return True, dynamic_filters(info, trial)


def diagnose(info: PodInfo, nodes: list[NodeInfo]) -> tuple[str, list[str]]:
    """Why the pod fits none of ``nodes``: upstream's FitError text, with its preemption (PostFilter) part.

    Also returns the names of nodes that do fit (empty when the pod truly fits nowhere).
    """
    total = len(nodes)
    if total == 0:
        return ERR_NO_NODES, []
    never = info.preemption_never
    names = info.prefilter_names
    if names is not None and not names:
        post = f"preemption: {PREEMPTION_NEVER}" if never else \
            preemption_message(total, {PREEMPTION_NOT_HELPFUL: total})
        return fit_error_message(total, {}, ERR_AFFINITY_CONFLICT, post), []
    hist: Counter[str] = Counter()
    preempt: Counter[str] = Counter()
    feasible: list[str] = []
    could_preempt = False
    for ni in nodes:
        if names is not None and ni.name not in names:
            hist[prefilter_reason(["NodeAffinity"])] += 1
            preempt[PREEMPTION_NOT_HELPFUL] += 1
            continue
        rej = run_filters(info, ni)
        if rej is None:
            feasible.append(ni.name)
            continue
        hist.update(rej.reasons)
        if never:
            continue
        if rej.unresolvable:
            preempt[PREEMPTION_NOT_HELPFUL] += 1
            continue
        has_victims, trial = preemption_dry_run(info, ni)
        if not has_victims:
            preempt[NO_VICTIMS] += 1
        elif trial is None:
            could_preempt = True
        else:
            preempt.update(trial.reasons)
    if never:
        post = f"preemption: {PREEMPTION_NEVER}"
    elif could_preempt:
        post = ""  # upstream would evict lower-priority pods and nominate the node; tinykube does not preempt
    else:
        post = preemption_message(total, preempt)
    return fit_error_message(total, hist, "", post), feasible


def diagnose_pod(pod: dict[str, Any], nodes: list[dict[str, Any]],
                 pods_by_node: dict[str, list[dict[str, Any]]] | None = None) -> str:
    """:func:`diagnose` over plain objects (tests and tools)."""
    infos = []
    for node in nodes:
        name = node["metadata"]["name"]
        on = (pods_by_node or {}).get(name, [])
        infos.append(NodeInfo.of(node, tuple(pod_record(p, name, f"{name}/{i}") for i, p in enumerate(on))))
    return diagnose(pod_info(pod), infos)[0]
