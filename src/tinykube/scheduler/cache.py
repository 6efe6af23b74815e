"""The scheduler's cache: per-node totals kept current incrementally, as upstream's ``NodeInfo`` snapshot.

For every node the cache holds its allocatable resources, effective taints and
labels (the *static* part, which only node events change) and the running
totals of the pods on it (the *dynamic* part): requested and non-zero-requested
resources, pod count, used host ports, and how many live pods of each
controller sit there (for spreading). Totals change by the pod's own amounts on
add and remove — nothing is ever recounted — so the cost of an event is O(1).

Pods come from two sources: bound pods from the informer, and pods the
scheduler *assumed* onto a node before its bind call returned (so the next
decision already sees them). When the informer delivers the binding, the
assumed record is simply confirmed.

Change tracking for the candidate heaps (see :mod:`.candidates`): every change
bumps the node's ``version``. Changes that can only make a node *worse* for any
pod — a pod added — are "lazy": the heaps notice them when the stale entry
surfaces. Every other change (pod removed, node added or changed) is appended
to an ordered change ``log`` that heaps replay, since it may make a node
better. ``seq`` counts all changes (failure diagnoses are cached against it).

A node that was deleted while pods still point at it stays as a placeholder with
``node = None`` (upstream's "imaginary" node), so its pods' accounting survives a
re-add.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .resources import Allocatable, HostPort, PodResources, node_allocatable

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

# Versions and static generations are unique across NodeInfo objects, so a node deleted and re-created under
# the same name never matches an entry computed for its previous incarnation.
_STAMPS = itertools.count(1)


def effective_taints(node: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The node's taints plus the ones the node lifecycle controller would add for its Ready condition.

    Upstream has no readiness filter: the node lifecycle controller taints a node
    ``not-ready`` (Ready=False or no condition yet, as kubelet registers) or
    ``unreachable`` (Ready=Unknown) with NoSchedule and NoExecute, and the
    TaintToleration filter does the rest. Without that controller here, the same
    taints are derived from the condition, unless the node already carries them.
    """
    taints = list((node.get("spec") or {}).get("taints") or [])
    status = "False"
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            status = cond.get("status") or "Unknown"
            break
    if status != "True":
        key = UNREACHABLE_TAINT if status == "Unknown" else NOT_READY_TAINT
        have = {(t.get("key"), t.get("effect")) for t in taints}
        for effect in ("NoSchedule", "NoExecute"):
            if (key, effect) not in have:
                taints.append({"key": key, "effect": effect})
    return tuple(taints)


@dataclass(slots=True)
class PodRecord:
    """One pod as the cache counts it on a node."""

    key: str
    node: str
    res: PodResources
    owner: str | None  # controller uid; None once terminating (upstream does not count those for spreading)
    priority: int = 0
    ports: tuple[HostPort, ...] = ()
    assumed: bool = False


class NodeInfo:
    __slots__ = ("alloc", "labels", "name", "node", "nz_cpu", "nz_memory", "owner_counts", "pods", "ports",
                 "req_cpu", "req_ephemeral", "req_memory", "req_scalars", "static_gen", "static_key", "taints",
                 "unschedulable", "version")

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: dict[str, Any] | None = None
        self.labels: dict[str, str] = {}
        self.taints: tuple[dict[str, Any], ...] = ()
        self.unschedulable = False
        self.alloc = Allocatable()
        self.static_key: Any = None
        self.static_gen = 0
        self.req_cpu = 0
        self.req_memory = 0
        self.req_ephemeral = 0
        self.req_scalars: dict[str, int] = {}
        self.nz_cpu = 0
        self.nz_memory = 0
        self.pods: dict[str, PodRecord] = {}
        self.owner_counts: dict[str, int] = {}
        self.ports: Counter[HostPort] = Counter()
        self.version = 0

    @classmethod
    def of(cls, node: dict[str, Any], pods: tuple[PodRecord, ...] = ()) -> NodeInfo:
        """A standalone NodeInfo for one node and the given pods (tests and one-off checks)."""
        ni = cls(node["metadata"]["name"])
        ni.set_node(node)
        for rec in pods:
            ni.add(rec)
        return ni

    def set_node(self, node: dict[str, Any]) -> bool:
        """Take a node object; True if anything the scheduler looks at changed."""
        md = node.get("metadata") or {}
        spec = node.get("spec") or {}
        labels = dict(md.get("labels") or {})
        taints = effective_taints(node)
        unschedulable = bool(spec.get("unschedulable"))
        alloc = node_allocatable(node)
        key = (labels, taints, unschedulable, alloc)
        self.node = node
        if key == self.static_key:
            return False
        self.static_key = key
        self.labels, self.taints, self.unschedulable, self.alloc = labels, taints, unschedulable, alloc
        self.static_gen = next(_STAMPS)
        self.version = next(_STAMPS)
        return True

    def add(self, rec: PodRecord) -> None:
        res = rec.res
        self.pods[rec.key] = rec
        self.req_cpu += res.cpu
        self.req_memory += res.memory
        self.req_ephemeral += res.ephemeral
        for name, q in res.scalars:
            self.req_scalars[name] = self.req_scalars.get(name, 0) + q
        self.nz_cpu += res.nz_cpu
        self.nz_memory += res.nz_memory
        if rec.owner is not None:
            self.owner_counts[rec.owner] = self.owner_counts.get(rec.owner, 0) + 1
        for p in rec.ports:
            self.ports[p] += 1
        self.version = next(_STAMPS)

    def remove(self, rec: PodRecord) -> None:
        res = rec.res
        del self.pods[rec.key]
        self.req_cpu -= res.cpu
        self.req_memory -= res.memory
        self.req_ephemeral -= res.ephemeral
        for name, q in res.scalars:
            self.req_scalars[name] -= q
        self.nz_cpu -= res.nz_cpu
        self.nz_memory -= res.nz_memory
        if rec.owner is not None:
            self._uncount(rec.owner)
        for p in rec.ports:
            self.ports[p] -= 1
            if self.ports[p] <= 0:
                del self.ports[p]
        self.version = next(_STAMPS)

    def _uncount(self, owner: str) -> None:
        n = self.owner_counts.get(owner, 0) - 1
        if n > 0:
            self.owner_counts[owner] = n
        else:
            self.owner_counts.pop(owner, None)

    def stop_counting(self, rec: PodRecord) -> None:
        """The pod started terminating: it still holds resources but no longer counts for spreading."""
        if rec.owner is not None:
            self._uncount(rec.owner)
            rec.owner = None
            self.version = next(_STAMPS)


class Cache:
    # Trim the change log past this many entries; heaps that fell behind rebuild.
    LOG_LIMIT = 20000

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.pods: dict[str, PodRecord] = {}
        self.real_nodes = 0
        self.seq = 0
        self.log: list[str] = []
        self.log_base = 0

    # -- change tracking -------------------------------------------------------------------------------------
    def _changed(self, ni: NodeInfo, eager: bool) -> None:
        self.seq += 1
        if eager:
            self.log.append(ni.name)
            if len(self.log) > self.LOG_LIMIT:
                cut = len(self.log) // 2
                del self.log[:cut]
                self.log_base += cut

    @property
    def log_end(self) -> int:
        return self.log_base + len(self.log)

    def _info(self, name: str) -> NodeInfo:
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name)
        return ni

    def _maybe_drop(self, ni: NodeInfo) -> None:
        if ni.node is None and not ni.pods:
            del self.nodes[ni.name]

    # -- nodes -----------------------------------------------------------------------------------------------
    def upsert_node(self, node: dict[str, Any]) -> bool:
        """Add or update a node; True when the change may let pending pods fit (new node or changed spec)."""
        ni = self._info(node["metadata"]["name"])
        was_real = ni.node is not None
        changed = ni.set_node(node)
        if not was_real:
            self.real_nodes += 1
            if not changed:  # re-added with the same spec: still a new candidate
                ni.version = next(_STAMPS)
            changed = True
        if changed:
            self._changed(ni, eager=True)
        return changed

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        if ni is None or ni.node is None:
            return
        ni.node = None
        ni.static_key = None
        ni.static_gen = next(_STAMPS)
        ni.version = next(_STAMPS)
        self.real_nodes -= 1
        self._changed(ni, eager=True)
        self._maybe_drop(ni)

    def node_infos(self) -> list[NodeInfo]:
        return [ni for ni in self.nodes.values() if ni.node is not None]

    # -- pods ------------------------------------------------------------------------------------------------
    def add_pod(self, rec: PodRecord) -> None:
        old = self.pods.get(rec.key)
        if old is not None:
            self.remove_pod(rec.key)
        ni = self._info(rec.node)
        ni.add(rec)
        self.pods[rec.key] = rec
        self._changed(ni, eager=False)

    def remove_pod(self, key: str) -> PodRecord | None:
        rec = self.pods.pop(key, None)
        if rec is None:
            return None
        ni = self.nodes.get(rec.node)
        if ni is not None:
            ni.remove(rec)
            self._changed(ni, eager=True)
            self._maybe_drop(ni)
        return rec

    def pod_terminating(self, key: str) -> None:
        rec = self.pods.get(key)
        if rec is None or rec.owner is None:
            return
        ni = self.nodes[rec.node]
        ni.stop_counting(rec)
        self._changed(ni, eager=True)
