"""Candidate heaps: the best feasible node for a kind of pod in O(log n), instead of a scan per pod.

Upstream filters and scores a sample of nodes for every pod (``percentageOfNodesToScore``:
420 of 1,000 nodes by default) — far too slow a loop for Python at thousands of
pods a second. Pods of one controller are nearly always identical, so the work
is shared instead: pods with the same :attr:`PodInfo.signature` (same owner,
requests, ports, selectors, affinity, tolerations) share one min-heap over the
nodes that pass the static filters and fit the pod, keyed by

    (untolerated PreferNoSchedule taints, owner's pods on the node,
     -(least-allocated score + 2 × preferred-affinity score), random tie-break)

which is upstream's ranking when one plugin dominates the next: with upstream's
weights, TaintToleration (×3) outweighs the default hostname spreading (×2),
and spreading an owner's pods outweighs the resource and affinity preferences.
Ties are broken by a random number drawn once per node and heap (a uniformly
random choice among tied nodes, as upstream's reservoir sampling gives).
Every node is considered, as with ``percentageOfNodesToScore: 100``.

Keeping the heap exact without rescanning relies on :mod:`.cache`'s change
classes. A pod added to a node can only make that node's key worse (more
spread count, less free resource, maybe no fit any more): its entry is left in
place and, when it reaches the top with an outdated ``version``, it is
re-evaluated and pushed back (or dropped if the pod no longer fits). Since no
outdated entry's key is better than its node's true key, a top entry that is up
to date is the true best. Every other change may improve a node, so it is in
the cache's change log, and a heap replays the log since its last use (pushing
fresh entries) before answering. A heap that fell too far behind, or grew too
many dead entries, is rebuilt.
"""

from __future__ import annotations

import heapq
import random

from .cache import Cache, NodeInfo
from .plugins import (
    PodInfo,
    fits,
    least_allocated_score,
    prefer_no_schedule_count,
    preferred_affinity_score,
    static_filters,
)

Entry = tuple[int, int, int, float, int, str]


class Candidates:
    def __init__(self, info: PodInfo, rng: random.Random) -> None:
        self.info = info
        self.rng = rng
        self.heap: list[Entry] = []
        # node name -> (static generation, passes the static filters, PreferNoSchedule count, affinity score)
        self._static: dict[str, tuple[int, bool, int, int]] = {}
        self._tiebreak: dict[str, float] = {}
        self.pos = -1  # absolute position in the cache's change log this heap has seen

    def _static_of(self, ni: NodeInfo) -> tuple[int, bool, int, int]:
        st = self._static.get(ni.name)
        if st is None or st[0] != ni.static_gen:
            info = self.info
            names = info.prefilter_names
            ok = ni.node is not None and (names is None or ni.name in names) and static_filters(info, ni) is None
            k = prefer_no_schedule_count(ni.taints, info.tolerations) if ok and ni.taints else 0
            aff = preferred_affinity_score(info, ni) if ok and info.preferred_terms else 0
            st = self._static[ni.name] = (ni.static_gen, ok, k, aff)
        return st

    def _entry(self, ni: NodeInfo) -> Entry | None:
        st = self._static.get(ni.name)
        if st is None or st[0] != ni.static_gen:
            st = self._static_of(ni)
        if not st[1]:
            return None
        info = self.info
        res = info.res
        alloc = ni.alloc
        # NodeResourcesFit and NodePorts (plugins.fits), inlined: this is the hot path.
        if len(ni.pods) >= alloc.pods:
            return None
        if res.cpu and res.cpu > alloc.cpu - ni.req_cpu:
            return None
        if res.memory and res.memory > alloc.memory - ni.req_memory:
            return None
        if (res.ephemeral or res.scalars or info.ports) and not fits(info, ni):
            return None
        owner = info.owner
        count = ni.owner_counts.get(owner, 0) if owner is not None else 0
        r = self._tiebreak.get(ni.name)
        if r is None:
            r = self._tiebreak[ni.name] = self.rng.random()
        return (st[2], count, -(least_allocated_score(res, ni) + 2 * st[3]), r, ni.version, ni.name)

    def _nodes(self, cache: Cache) -> list[NodeInfo]:
        names = self.info.prefilter_names
        if names is None:
            return cache.node_infos()
        return [ni for n in names if (ni := cache.nodes.get(n)) is not None and ni.node is not None]

    def rebuild(self, cache: Cache) -> None:
        heap = [e for ni in self._nodes(cache) if (e := self._entry(ni)) is not None]
        heapq.heapify(heap)
        self.heap = heap
        self.pos = cache.log_end

    def _catch_up(self, cache: Cache) -> None:
        end = cache.log_end
        if self.pos == end:
            return
        if self.pos < cache.log_base or end - self.pos > max(64, cache.real_nodes) \
                or len(self.heap) > 4 * cache.real_nodes + 64:
            self.rebuild(cache)
            return
        names = self.info.prefilter_names
        heap = self.heap
        for name in set(cache.log[self.pos - cache.log_base:]):
            if names is not None and name not in names:
                continue
            ni = cache.nodes.get(name)
            if ni is None or ni.node is None:
                continue
            e = self._entry(ni)
            if e is not None:
                heapq.heappush(heap, e)
        self.pos = end

    def best(self, cache: Cache) -> NodeInfo | None:
        """The best feasible node now, or None when the pod fits nowhere."""
        if self.pos < 0:
            self.rebuild(cache)
        else:
            self._catch_up(cache)
        heap = self.heap
        nodes = cache.nodes
        while heap:
            top = heap[0]
            ni = nodes.get(top[5])
            if ni is None or ni.node is None:
                heapq.heappop(heap)
                continue
            if top[4] == ni.version:
                return ni
            e = self._entry(ni)
            if e is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, e)
        return None
