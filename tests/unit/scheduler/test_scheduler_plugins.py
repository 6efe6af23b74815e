"""Scheduler plugins as pure functions: each filter's verdicts, the scores, and upstream's FailedScheduling text."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from tinykube.scheduler.cache import Cache, NodeInfo
from tinykube.scheduler.candidates import Candidates
from tinykube.scheduler.plugins import (
    diagnose_pod,
    filter_pod_on_node,
    fit_error_message,
    least_allocated_score,
    pod_info,
    pod_record,
    prefer_no_schedule_count,
    preferred_affinity_score,
    tolerates,
    truncate_message,
)
from tinykube.scheduler.resources import pod_resources


def node(name: str = "n1", cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: dict[str, str] | None = None,
         taints: list[dict[str, Any]] | None = None, ready: str | None = "True", unschedulable: bool = False,
         extra: dict[str, str] | None = None) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "10Gi", **(extra or {})}
    n: dict[str, Any] = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                         "spec": {}, "status": {"allocatable": alloc, "capacity": alloc, "conditions": []}}
    if taints:
        n["spec"]["taints"] = taints
    if unschedulable:
        n["spec"]["unschedulable"] = True
    if ready is not None:
        n["status"]["conditions"].append({"type": "Ready", "status": ready})
    return n


def ctr(cpu: str | None = None, memory: str | None = None, limits: dict[str, str] | None = None,
        restart: str | None = None, extra: dict[str, str] | None = None) -> dict[str, Any]:
    req = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    req.update(extra or {})
    c: dict[str, Any] = {"name": "c", "image": "x", "resources": {}}
    if req:
        c["resources"]["requests"] = req
    if limits:
        c["resources"]["limits"] = limits
    if restart:
        c["restartPolicy"] = restart
    return c


def pod(containers: list[dict[str, Any]] | None = None, init: list[dict[str, Any]] | None = None,
        **spec: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"metadata": {"name": "p", "namespace": "default"},
                         "spec": {"containers": containers or [ctr()], **spec}}
    if init:
        p["spec"]["initContainers"] = init
    return p


UNTOLERATED = "node(s) had untolerated taint {{{}: {}}}"


# -- NodeResourcesFit ----------------------------------------------------------------------------------------
RESOURCE_CASES = [
    ("fits", pod([ctr("1", "1Gi")]), node(cpu="2"), [], []),
    ("cpu", pod([ctr("3")]), node(cpu="2"), [], ["Insufficient cpu"]),
    ("cpu counts pods already there", pod([ctr("1")]), node(cpu="2"), [pod([ctr("1500m")])], ["Insufficient cpu"]),
    ("memory", pod([ctr(memory="9Gi")]), node(memory="8Gi"), [], ["Insufficient memory"]),
    ("cpu and memory both listed", pod([ctr("3", "9Gi")]), node(cpu="2"), [], ["Insufficient cpu", "Insufficient memory"]),
    ("ephemeral storage", pod([ctr(extra={"ephemeral-storage": "11Gi"})]), node(), [], ["Insufficient ephemeral-storage"]),
    ("extended resource", pod([ctr(extra={"example.com/gpu": "1"})]), node(), [], ["Insufficient example.com/gpu"]),
    ("extended resource present", pod([ctr(extra={"example.com/gpu": "1"})]), node(extra={"example.com/gpu": "2"}), [], []),
    ("pod count", pod([ctr("100m")]), node(pods="1"), [pod([ctr()])], ["Too many pods"]),
    ("pod count with zero requests", pod(), node(pods="0"), [], ["Too many pods"]),
    ("pod count and cpu", pod([ctr("3")]), node(cpu="2", pods="0"), [], ["Too many pods", "Insufficient cpu"]),
    ("zero-request pod fits a full node", pod(), node(cpu="1"), [pod([ctr("1")])], []),
    ("requests default to limits", pod([ctr(limits={"cpu": "3"})]), node(cpu="2"), [], ["Insufficient cpu"]),
    ("init container max rule: larger init", pod([ctr("1")], init=[ctr("3")]), node(cpu="2"), [], ["Insufficient cpu"]),
    ("init container max rule: not summed", pod([ctr("2")], init=[ctr("2"), ctr("2")]), node(cpu="2"), [], []),
    ("sidecar adds to app containers", pod([ctr("1500m")], init=[ctr("1", restart="Always")]), node(cpu="2"), [],
     ["Insufficient cpu"]),
    ("overhead counts", pod([ctr("1500m")], overhead={"cpu": "1"}), node(cpu="2"), [], ["Insufficient cpu"]),
]


@pytest.mark.parametrize("name,p,n,existing,want", RESOURCE_CASES, ids=[c[0] for c in RESOURCE_CASES])
def test_resources_fit(name: str, p: dict[str, Any], n: dict[str, Any], existing: list[dict[str, Any]],
                       want: list[str]) -> None:
    assert filter_pod_on_node(p, n, existing) == want


def test_pod_requests_arithmetic() -> None:
    # cpu: app 1 + sidecar 500m run together (1.5); the init step after the sidecar needs 500m + 2 = 2.5 -> 2.5.
    # memory: app 100Mi beats the init step (50Mi + the sidecar's 0).
    spec = pod([ctr("1", "100Mi")], init=[ctr("500m", restart="Always"), ctr("2", "50Mi")])["spec"]
    res = pod_resources(spec)
    assert (res.cpu, res.memory) == (2500, 100 * 2**20)
    # non-zero requests: the sidecar asked no memory, so it counts upstream's 200Mi default for scoring.
    assert res.nz_memory == max(100 * 2**20 + 200 * 2**20, 200 * 2**20 + 50 * 2**20)
    best_effort = pod_resources(pod()["spec"])
    assert best_effort.empty and (best_effort.nz_cpu, best_effort.nz_memory) == (100, 200 * 2**20)
    assert pod_resources(pod([ctr("0.0001")])["spec"]).cpu == 1  # MilliValue rounds up


# -- NodeUnschedulable, readiness, TaintToleration -----------------------------------------------------------
NO_SCHED = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
NO_EXEC = {"key": "evict", "effect": "NoExecute"}
PREFER = {"key": "soft", "value": "x", "effect": "PreferNoSchedule"}

TAINT_CASES = [
    ("untolerated NoSchedule", [], [NO_SCHED], [UNTOLERATED.format("dedicated", "gpu")]),
    ("untolerated NoExecute, empty value", [], [NO_EXEC], [UNTOLERATED.format("evict", "")]),
    ("PreferNoSchedule never filters", [], [PREFER], []),
    ("Equal with the value", [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
     [NO_SCHED], []),
    ("operator defaults to Equal", [{"key": "dedicated", "value": "gpu"}], [NO_SCHED], []),
    ("Equal with another value", [{"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}], [NO_SCHED],
     [UNTOLERATED.format("dedicated", "gpu")]),
    ("Exists on the key", [{"key": "dedicated", "operator": "Exists"}], [NO_SCHED], []),
    ("effect must match", [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], [NO_SCHED],
     [UNTOLERATED.format("dedicated", "gpu")]),
    ("empty key with Exists tolerates everything", [{"operator": "Exists"}], [NO_SCHED, NO_EXEC], []),
    ("first untolerated taint is reported", [{"key": "dedicated", "operator": "Exists"}], [NO_SCHED, NO_EXEC],
     [UNTOLERATED.format("evict", "")]),
]


@pytest.mark.parametrize("name,tolerations,taints,want", TAINT_CASES, ids=[c[0] for c in TAINT_CASES])
def test_taint_toleration(name: str, tolerations: list[dict[str, Any]], taints: list[dict[str, Any]],
                          want: list[str]) -> None:
    assert filter_pod_on_node(pod(tolerations=tolerations), node(taints=taints)) == want


def test_toleration_matching_rules() -> None:
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates({"key": "k", "value": "v"}, taint)  # empty effect matches every effect
    assert not tolerates({"key": "k", "operator": "Bogus"}, taint)
    assert tolerates({"operator": "Exists", "effect": "NoSchedule"}, taint)
    assert not tolerates({"operator": "Exists", "effect": "NoExecute"}, taint)


NOT_READY = UNTOLERATED.format("node.kubernetes.io/not-ready", "")
UNREACHABLE = UNTOLERATED.format("node.kubernetes.io/unreachable", "")
NODE_STATE_CASES = [
    ("ready and schedulable", node(), [], []),
    ("cordoned", node(unschedulable=True), [], ["node(s) were unschedulable"]),
    ("cordoned but tolerated", node(unschedulable=True),
     [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}], []),
    ("Ready=False is tainted not-ready", node(ready="False"), [], [NOT_READY]),
    ("no Ready condition yet is not-ready", node(ready=None), [], [NOT_READY]),
    ("Ready=Unknown is unreachable", node(ready="Unknown"), [], [UNREACHABLE]),
    ("default NoExecute tolerations do not cover NoSchedule", node(ready="False"),
     [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
     [NOT_READY]),
    ("not-ready tolerated (as DaemonSet pods do)", node(ready="False"),
     [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}], []),
    ("unschedulable is checked before taints", node(unschedulable=True, ready="False", taints=[NO_SCHED]), [],
     ["node(s) were unschedulable"]),
    ("taints are checked before resources", node(cpu="0", taints=[NO_SCHED]), [],
     [UNTOLERATED.format("dedicated", "gpu")]),
]


@pytest.mark.parametrize("name,n,tolerations,want", NODE_STATE_CASES, ids=[c[0] for c in NODE_STATE_CASES])
def test_node_state(name: str, n: dict[str, Any], tolerations: list[dict[str, Any]], want: list[str]) -> None:
    assert filter_pod_on_node(pod([ctr("1")], tolerations=tolerations), n) == want


# -- NodeAffinity ------------------------------------------------------------------------------------------
AFFINITY = "node(s) didn't match Pod's node affinity/selector"


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    e: dict[str, Any] = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


LABELS = {"zone": "a", "disk": "ssd", "gen": "5"}
AFFINITY_CASES = [
    ("In", required({"matchExpressions": [expr("zone", "In", "a", "b")]}), True),
    ("In, no match", required({"matchExpressions": [expr("zone", "In", "b")]}), False),
    ("In, label absent", required({"matchExpressions": [expr("rack", "In", "1")]}), False),
    ("NotIn", required({"matchExpressions": [expr("zone", "NotIn", "b")]}), True),
    ("NotIn, value listed", required({"matchExpressions": [expr("zone", "NotIn", "a")]}), False),
    ("NotIn matches an absent label", required({"matchExpressions": [expr("rack", "NotIn", "1")]}), True),
    ("Exists", required({"matchExpressions": [expr("disk", "Exists")]}), True),
    ("Exists, absent", required({"matchExpressions": [expr("rack", "Exists")]}), False),
    ("DoesNotExist", required({"matchExpressions": [expr("rack", "DoesNotExist")]}), True),
    ("DoesNotExist, present", required({"matchExpressions": [expr("disk", "DoesNotExist")]}), False),
    ("Gt", required({"matchExpressions": [expr("gen", "Gt", "4")]}), True),
    ("Gt, equal", required({"matchExpressions": [expr("gen", "Gt", "5")]}), False),
    ("Lt", required({"matchExpressions": [expr("gen", "Lt", "6")]}), True),
    ("Lt on a non-integer label", required({"matchExpressions": [expr("zone", "Lt", "6")]}), False),
    ("Gt, absent label", required({"matchExpressions": [expr("rack", "Gt", "1")]}), False),
    ("expressions are ANDed", required({"matchExpressions": [expr("zone", "In", "a"), expr("disk", "In", "hdd")]}),
     False),
    ("terms are ORed", required({"matchExpressions": [expr("zone", "In", "b")]},
                                {"matchExpressions": [expr("disk", "In", "ssd")]}), True),
    ("an empty term matches nothing", required({}), False),
    ("matchFields metadata.name NotIn", required({"matchFields": [expr("metadata.name", "NotIn", "other")]}), True),
    ("matchFields metadata.name NotIn self", required({"matchFields": [expr("metadata.name", "NotIn", "n1")]}),
     False),
    ("matchFields with a label expression", required({"matchFields": [expr("metadata.name", "NotIn", "x")],
                                                      "matchExpressions": [expr("zone", "In", "b")]}), False),
]


@pytest.mark.parametrize("name,affinity,ok", AFFINITY_CASES, ids=[c[0] for c in AFFINITY_CASES])
def test_required_node_affinity(name: str, affinity: dict[str, Any], ok: bool) -> None:
    assert filter_pod_on_node(pod(affinity=affinity), node(labels=LABELS)) == ([] if ok else [AFFINITY])


def test_node_selector() -> None:
    assert filter_pod_on_node(pod(nodeSelector={"disk": "ssd"}), node(labels=LABELS)) == []
    assert filter_pod_on_node(pod(nodeSelector={"disk": "ssd", "zone": "b"}), node(labels=LABELS)) == [AFFINITY]
    assert filter_pod_on_node(pod(nodeSelector={"rack": "1"}), node(labels=LABELS)) == [AFFINITY]
    # nodeSelector and required affinity must both hold
    both = pod(nodeSelector={"disk": "ssd"}, affinity=required({"matchExpressions": [expr("zone", "In", "b")]}))
    assert filter_pod_on_node(both, node(labels=LABELS)) == [AFFINITY]


def test_match_fields_prefilter() -> None:
    pinned = pod(affinity=required({"matchFields": [expr("metadata.name", "In", "n1")]}))
    assert filter_pod_on_node(pinned, node("n1")) == []
    assert filter_pod_on_node(pinned, node("n2")) == ["node(s) didn't satisfy plugin(s) [NodeAffinity]"]
    assert pod_info(pinned).prefilter_names == frozenset({"n1"})
    # one term without a name pin lets every node through the PreFilter
    loose = pod(affinity=required({"matchFields": [expr("metadata.name", "In", "n1")]},
                                  {"matchExpressions": [expr("zone", "In", "a")]}))
    assert pod_info(loose).prefilter_names is None


def test_host_ports() -> None:
    web = ctr()
    web["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    other_ip = ctr()
    other_ip["ports"] = [{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]
    udp = ctr()
    udp["ports"] = [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]
    msg = "node(s) didn't have free ports for the requested pod ports"
    assert filter_pod_on_node(pod([web]), node(), [pod([web])]) == [msg]
    assert filter_pod_on_node(pod([other_ip]), node(), [pod([web])]) == [msg]  # 0.0.0.0 clashes with every IP
    assert filter_pod_on_node(pod([udp]), node(), [pod([web])]) == []


# -- scores --------------------------------------------------------------------------------------------------
def test_least_allocated_score() -> None:
    ni = NodeInfo.of(node(cpu="4", memory="4Gi"), (pod_record(pod([ctr("1", "1Gi")]), "n1", "a"),))
    res = pod_resources(pod([ctr("1", "1Gi")])["spec"])
    assert least_allocated_score(res, ni) == 50  # (2/4 free cpu → 50) + (2/4 free memory → 50), averaged
    empty = NodeInfo.of(node(cpu="4", memory="4Gi"))
    # best-effort pods count upstream's non-zero defaults: 100m of 4 cpu, 200Mi of 4Gi
    assert least_allocated_score(pod_resources(pod()["spec"]), empty) == (97 + 95) // 2


def test_preference_scores() -> None:
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 30, "preference": {"matchExpressions": [expr("zone", "In", "a")]}},
        {"weight": 70, "preference": {"matchExpressions": [expr("disk", "In", "hdd")]}}]}}
    ni = NodeInfo.of(node(labels=LABELS))
    assert preferred_affinity_score(pod_info(pod(affinity=pref)), ni) == 30
    taints = [PREFER, {"key": "other", "effect": "PreferNoSchedule"}, NO_SCHED]
    assert prefer_no_schedule_count(taints, []) == 2
    assert prefer_no_schedule_count(taints, [{"key": "soft", "operator": "Exists"}]) == 1
    assert prefer_no_schedule_count(taints, [{"key": "soft", "operator": "Exists", "effect": "NoSchedule"}]) == 2


def _cache(*nodes: dict[str, Any]) -> Cache:
    cache = Cache()
    for n in nodes:
        cache.upsert_node(n)
    return cache


def owned(uid: str, containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    p = pod(containers or [ctr("100m", "100Mi")], **spec)
    p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid,
                                         "controller": True}]
    return p


def _place(cache: Cache, p: dict[str, Any], count: int, seed: int = 0) -> list[str]:
    cand = Candidates(pod_info(p), random.Random(seed))
    placed = []
    for i in range(count):
        ni = cand.best(cache)
        assert ni is not None
        cache.add_pod(pod_record(p, ni.name, f"default/x{len(cache.pods)}-{i}"))
        placed.append(ni.name)
    return placed


def test_candidates_spread_one_owner() -> None:
    # n1 is much emptier, so least-allocated alone would put every pod there
    cache = _cache(node("n1", cpu="64", memory="64Gi"), node("n2"), node("n3"))
    assert Counter(_place(cache, owned("rs-a"), 9)) == {"n1": 3, "n2": 3, "n3": 3}


def test_candidates_spreading_beats_free_resources_then_least_allocated_decides() -> None:
    cache = _cache(node("n1", cpu="8", memory="32Gi"), node("n2"), node("n3"))
    # another owner's pods fill n2: for rs-a every node still has count 0, so least allocated picks n1 first
    cache.add_pod(pod_record(owned("rs-b", [ctr("3", "6Gi")]), "n2", "default/b1"))
    placed = _place(cache, owned("rs-a"), 3)
    assert placed[0] == "n1"
    assert sorted(placed) == ["n1", "n2", "n3"]  # then spreading wins over the emptier n1


def test_candidates_avoid_prefer_no_schedule_and_skip_infeasible() -> None:
    cache = _cache(node("n1", taints=[PREFER]), node("n2", cpu="1"), node("n3", taints=[NO_SCHED]))
    # n2 is preferred while it has room (spreading would otherwise alternate); n3 is never used
    placed = _place(cache, owned("rs-a", [ctr("500m")]), 4)
    assert placed[:2] == ["n2", "n2"] and placed[2:] == ["n1", "n1"]


def test_candidates_see_freed_nodes_and_random_ties() -> None:
    cache = _cache(node("n1", pods="1"), node("n2", pods="1"))
    p = owned("rs-a")
    _place(cache, p, 2)
    cand = Candidates(pod_info(p), random.Random(1))
    assert cand.best(cache) is None
    cache.remove_pod(next(k for k, r in cache.pods.items() if r.node == "n2"))
    best = cand.best(cache)
    assert best is not None and best.name == "n2"
    # ties go to a random node: over many fresh heaps every tied node gets picked
    tied = _cache(*(node(f"t{i}") for i in range(4)))
    picks = {getattr(Candidates(pod_info(p), random.Random(seed)).best(tied), "name", None) for seed in range(40)}
    assert picks == {"t0", "t1", "t2", "t3"}


# -- FailedScheduling text -----------------------------------------------------------------------------------
def test_fit_error_message_format() -> None:
    assert fit_error_message(3, {"Insufficient cpu": 3}) == "0/3 nodes are available: 3 Insufficient cpu."
    # the histogram is sorted as strings, count first, so "10 ..." comes before "2 ..."
    hist = {"Insufficient memory": 2, "node(s) didn't match Pod's node affinity/selector": 10, "Insufficient cpu": 3}
    assert fit_error_message(15, hist) == ("0/15 nodes are available: 10 node(s) didn't match Pod's node "
                                           "affinity/selector, 2 Insufficient memory, 3 Insufficient cpu.")
    # "nodes" stays plural and reasons keep upstream's "node(s)" wording at any count
    assert fit_error_message(1, {UNTOLERATED.format("k", "v"): 1}) == \
        "0/1 nodes are available: 1 node(s) had untolerated taint {k: v}."
    # a PreFilter message replaces the histogram; the PostFilter message follows without a second period
    assert fit_error_message(2, {"x": 2}, "pod affinity terms conflict", "preemption: y.") == \
        "0/2 nodes are available: pod affinity terms conflict. preemption: y."
    long = "x" * 2000
    assert len(truncate_message(long)) == 1024 and truncate_message(long).endswith(" ...")
    assert truncate_message("short") == "short"


def test_diagnosis_messages() -> None:
    big = pod([ctr("8")])
    three = [node("n1"), node("n2"), node("n3")]
    assert diagnose_pod(big, three) == ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
                                        "available: 3 No preemption victims found for incoming pod.")
    mixed = [node("n1", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
             node("n2"), node("n3", memory="1Gi")]
    assert diagnose_pod(pod([ctr("8", "2Gi")]), mixed) == (
        "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes are available: "
        "1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.")
    never = pod([ctr("8")], preemptionPolicy="Never")
    assert diagnose_pod(never, three) == \
        "0/3 nodes are available: 3 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    pinned = pod([ctr("8")], affinity=required({"matchFields": [expr("metadata.name", "In", "n2")]}))
    assert diagnose_pod(pinned, three) == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling.")
    conflict = pod(affinity=required({"matchFields": [expr("metadata.name", "In", "a"),
                                                      expr("metadata.name", "In", "b")]}))
    assert diagnose_pod(conflict, three) == ("0/3 nodes are available: pod affinity terms conflict. preemption: "
                                             "0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    assert diagnose_pod(big, []) == "no nodes available to schedule pods"


def test_diagnosis_with_lower_priority_pods() -> None:
    low = pod([ctr("1")], priority=-5)
    high = pod([ctr("2")], priority=10)
    # evicting the low-priority pod still leaves too little cpu: the dry run's own reasons are reported
    assert diagnose_pod(pod([ctr("3500m")], priority=10), [node("n1", cpu="3")], {"n1": [low, high]}).endswith(
        "preemption: 0/1 nodes are available: 1 Insufficient cpu.")
    # equal priority is no victim
    same = pod([ctr("1")], priority=10)
    assert diagnose_pod(pod([ctr("3")], priority=10), [node("n1", cpu="3")], {"n1": [same]}).endswith(
        "1 No preemption victims found for incoming pod.")
