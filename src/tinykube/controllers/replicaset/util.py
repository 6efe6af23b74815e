"""Pure decisions of the ReplicaSet controller: which pods count, which to delete first, what status to report.

Nothing here does I/O, so upstream's table tests translate directly.

Deletion order follows upstream's ``ActivePodsWithRanks`` (with logarithmic
scale-down): a pod sorts *earlier* — and is deleted first — when it is

1. not yet scheduled (no ``spec.nodeName``) rather than scheduled;
2. Pending rather than Unknown rather than Running;
3. not Ready rather than Ready;
4. of lower ``controller.kubernetes.io/pod-deletion-cost``;
5. on a node holding more of the ReplicaSet's pods ("doubled up");
6. Ready for a shorter time (compared by power-of-two buckets of seconds);
7. restarted more often (the highest container restart count);
8. created more recently (again by power-of-two buckets), and finally by UID
   order, so the choice is deterministic.
"""

from __future__ import annotations

import heapq
import math
import time
from typing import Any

from ...api.meta import parse_timestamp

Obj = dict[str, Any]

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
BURST_REPLICAS = 500  # at most this many creations or deletions per sync, as upstream's burstReplicas
SLOW_START_INITIAL_BATCH = 1


def is_active(pod: Obj) -> bool:
    """A pod that counts towards replicas: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def ready_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            r: Obj = c
            return r
    return None


def is_ready(pod: Obj) -> bool:
    c = ready_condition(pod)
    return c is not None and c.get("status") == "True"


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` (upstream ``IsPodAvailable``)."""
    c = ready_condition(pod)
    if c is None or c.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    t = parse_timestamp(c.get("lastTransitionTime"))
    return t is not None and t + min_ready_seconds <= now


def _phase_rank(pod: Obj) -> int:
    return {"Pending": 0, "Unknown": 1, "Running": 2}.get((pod.get("status") or {}).get("phase") or "Pending", 0)


def _log_bucket(seconds: float) -> int:
    return math.floor(math.log2(seconds)) if seconds >= 1 else -1


def _deletion_cost(pod: Obj) -> int:
    v = (pod["metadata"].get("annotations") or {}).get(DELETION_COST)
    try:
        return int(v) if v is not None else 0
    except ValueError:
        return 0


def _max_restarts(pod: Obj) -> int:
    return max((int(cs.get("restartCount") or 0) for cs in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


def deletion_sort_key(pod: Obj, doubled: int, now: float) -> tuple[Any, ...]:
    """Sort key: pods sorting first are deleted first. ``doubled`` = pods of the owner on the same node."""
    spec = pod.get("spec") or {}
    ready = is_ready(pod)
    ready_for = math.inf
    if ready:
        t = parse_timestamp((ready_condition(pod) or {}).get("lastTransitionTime"))
        ready_for = max(0.0, now - t) if t is not None else math.inf
    created = parse_timestamp(pod["metadata"].get("creationTimestamp"))
    age = max(0.0, now - created) if created is not None else -1.0
    return (
        1 if spec.get("nodeName") else 0,
        _phase_rank(pod),
        1 if ready else 0,
        _deletion_cost(pod),
        -doubled,
        _log_bucket(ready_for) if ready_for != math.inf else math.inf,
        -_max_restarts(pod),
        _log_bucket(age) if age >= 0 else -2,
        pod["metadata"].get("uid", ""),
    )


def pods_to_delete(pods: list[Obj], related: list[Obj], n: int, now: float | None = None) -> list[Obj]:
    """The ``n`` pods to delete; ``related`` are all active pods of the owner (for the doubled-up rank)."""
    if n <= 0:
        return []
    if n >= len(pods):
        return list(pods)
    now = time.time() if now is None else now
    per_node: dict[str, int] = {}
    for p in related:
        node = (p.get("spec") or {}).get("nodeName")
        if node:
            per_node[node] = per_node.get(node, 0) + 1
    # nsmallest is sorted(...)[:n] without sorting the rest.
    return heapq.nsmallest(n, pods, key=lambda p: deletion_sort_key(
        p, per_node.get((p.get("spec") or {}).get("nodeName") or "", 0), now))


def slow_start_batches(total: int, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """Batch sizes 1, 2, 4, ... summing to ``total`` (upstream's slowStartBatch)."""
    out: list[int] = []
    size = min(initial, total)
    remaining = total
    while remaining > 0:
        size = min(size, remaining)
        out.append(size)
        remaining -= size
        size *= 2
    return out


def pod_from_template(rs: Obj) -> Obj:
    """The pod a ReplicaSet creates: its template's labels, annotations, finalizers and spec, owned by the RS."""
    tmpl = (rs.get("spec") or {}).get("template") or {}
    tmd = tmpl.get("metadata") or {}
    md = rs["metadata"]
    pmd: Obj = {"generateName": md["name"] + "-", "namespace": md.get("namespace"),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": md["name"],
                                     "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]}
    for f in ("labels", "annotations", "finalizers"):
        if tmd.get(f):
            pmd[f] = tmd[f]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pmd, "spec": tmpl.get("spec") or {}}


def calculate_status(rs: Obj, pods: list[Obj], now: float) -> Obj:
    """Counts for ``rs.status`` from its active pods (conditions are kept by the caller)."""
    spec = rs.get("spec") or {}
    tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully = ready = available = 0
    for p in pods:
        labels = p["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in tmpl_labels.items()):
            fully += 1
        if is_ready(p):
            ready += 1
            if is_available(p, min_ready, now):
                available += 1
    return {"replicas": len(pods), "fullyLabeledReplicas": fully, "readyReplicas": ready,
            "availableReplicas": available}


def next_availability_check(rs: Obj, pods: list[Obj], now: float) -> float | None:
    """Seconds until the next ready pod becomes available under ``minReadySeconds`` (None when nothing waits)."""
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    if min_ready <= 0:
        return None
    soonest: float | None = None
    for p in pods:
        c = ready_condition(p)
        if c is None or c.get("status") != "True":
            continue
        t = parse_timestamp(c.get("lastTransitionTime"))
        if t is None:
            continue
        wait = t + min_ready - now
        if wait > 0 and (soonest is None or wait < soonest):
            soonest = wait
    return soonest


# -- running counts ---------------------------------------------------------------------------------------------
# One pod's share of its ReplicaSet's counts: (replicas, fullyLabeled, ready, mismatched). ``mismatched`` is an
# active pod the ReplicaSet controls whose labels no longer match its selector: it counts for nothing, and its
# presence tells the controller that a walk to release it is due.
Contribution = tuple[int, int, int, int]


def contribution(pod: Obj | None, uid: str, matches: Any, template_labels: dict[str, str]) -> Contribution | None:
    """What ``pod`` adds to the counts of the ReplicaSet with ``uid`` (None: nothing, e.g. gone or not its pod).

    ``matches(labels) -> bool`` is the ReplicaSet's selector. Counts agree with :func:`calculate_status` over the
    claimed pods for ``minReadySeconds`` 0 (where available equals ready).
    """
    if pod is None or not is_active(pod):
        return None
    md = pod["metadata"]
    ref = next((r for r in md.get("ownerReferences") or () if r.get("controller")), None)
    if ref is None or ref.get("uid") != uid:
        return None
    labels = md.get("labels") or {}
    if not matches(labels):
        return (0, 0, 0, 1)
    fully = 1 if all(labels.get(k) == v for k, v in template_labels.items()) else 0
    return (1, fully, 1 if is_ready(pod) else 0, 0)


class PodTally:
    """A ReplicaSet's counts, kept per pod so that a sync only re-examines the pods that changed since the last.

    ``signature`` names what the contributions were computed under (selector and template labels): when it
    changes, the tally is rebuilt.
    """

    __slots__ = ("by_pod", "counts", "signature")

    def __init__(self, signature: bytes) -> None:
        self.signature = signature
        self.by_pod: dict[str, Contribution] = {}
        self.counts = [0, 0, 0, 0]

    def set(self, key: str, c: Contribution | None) -> None:
        old = self.by_pod.pop(key, None) if c is None else self.by_pod.get(key)
        if old == c:
            return
        counts = self.counts
        if old is not None:
            for i in range(4):
                counts[i] -= old[i]
        if c is not None:
            self.by_pod[key] = c
            for i in range(4):
                counts[i] += c[i]

    @property
    def replicas(self) -> int:
        return self.counts[0]

    @property
    def mismatched(self) -> int:
        return self.counts[3]
