"""Deployment controller decisions against upstream's table tests (same inputs, same expected numbers).

Sources: ``pkg/controller/deployment/util/deployment_util_test.go``, ``sync_test.go``
(``TestScale``, ``TestDeploymentController_cleanupDeployment``), ``rolling_test.go``,
``progress_test.go`` and the template-hash tests (``hash_test.go``, ``TestComputeHash``).
Where upstream drives a fake clientset, these call the pure planning functions the
controller applies.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from tinykube.api.meta import now_rfc3339
from tinykube.controllers.deployment import util
from tinykube.controllers.deployment.progress import compute_rollout_status, requeue_after
from tinykube.controllers.deployment.rolling import (
    new_replica_set_target,
    plan_cleanup_unhealthy,
    plan_reconcile_old_replica_sets,
    plan_scale_down_old_replica_sets,
)
from tinykube.controllers.deployment.sync import calculate_status, cleanup_candidates, plan_scale

Obj = dict[str, Any]


def ts(*args: int) -> str:
    return now_rfc3339(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


def epoch(*args: int, micro: int = 0) -> float:
    return datetime(*args, microsecond=micro, tzinfo=UTC).timestamp()  # type: ignore[misc]


# -- upstream's fixtures --------------------------------------------------------------------------------------------------
def new_deployment(name: str, replicas: int, revision_history_limit: int | None = None, max_surge: Any = None,
                   max_unavailable: Any = None, selector: dict[str, str] | None = None) -> Obj:
    d: Obj = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "annotations": {}},
        "spec": {
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0 if max_unavailable is None else max_unavailable,
                                           "maxSurge": 0 if max_surge is None else max_surge}},
            "replicas": replicas,
            "selector": {"matchLabels": dict(selector or {})},
            "template": {"metadata": {"labels": dict(selector or {})},
                         "spec": {"containers": [{"image": "foo/bar"}]}},
        },
        "status": {},
    }
    if revision_history_limit is not None:
        d["spec"]["revisionHistoryLimit"] = revision_history_limit
    return d


def rs(name: str, replicas: int, selector: dict[str, str] | None = None, timestamp: str = "") -> Obj:
    md: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if timestamp:
        md["creationTimestamp"] = timestamp
    return {"metadata": md, "spec": {"replicas": replicas, "selector": {"matchLabels": dict(selector or {})},
                                      "template": {}}, "status": {}}


def rs_with_status(name: str, spec_replicas: int, status_replicas: int, available: int = 0) -> Obj:
    r = rs(name, spec_replicas)
    r["status"] = {"replicas": status_replicas, "availableReplicas": available}
    return r


# -- fenceposts -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("surge,unavailable,desired,exp_surge,exp_unavailable,error", [
    ("0%", "0%", 0, 0, 1, False),
    ("39%", "39%", 10, 4, 3, False),
    ("oops", "39%", 10, 0, 0, True),
    ("55%", "urg", 10, 0, 0, True),
])
def test_resolve_fenceposts(surge: str, unavailable: str, desired: int, exp_surge: int, exp_unavailable: int,
                            error: bool) -> None:
    if error:
        with pytest.raises(ValueError):
            util.resolve_fenceposts(surge, unavailable, desired)
        return
    assert util.resolve_fenceposts(surge, unavailable, desired) == (exp_surge, exp_unavailable)


def _with_unavailable(replicas: int, max_unavailable: Any) -> Obj:
    return new_deployment("foo", replicas, max_surge=1, max_unavailable=max_unavailable)


def _recreate(replicas: int | None = None) -> Obj:
    d = new_deployment("foo", 1)
    d["spec"]["strategy"] = {"type": "Recreate"}
    if replicas is None:
        d["spec"].pop("replicas")
    else:
        d["spec"]["replicas"] = replicas
    return d


@pytest.mark.parametrize("d,expected", [
    (_with_unavailable(10, 5), 5),
    (_with_unavailable(10, 10), 10),
    (_with_unavailable(5, 10), 5),
    (_with_unavailable(0, 10), 0),
    (_recreate(), 0),
    (_with_unavailable(10, "50%"), 5),
    (_with_unavailable(10, "100%"), 10),
    (_with_unavailable(5, "100%"), 5),
], ids=["less", "equal", "greater", "zero-replicas", "recreate", "less-pct", "equal-pct", "greater-pct"])
def test_max_unavailable(d: Obj, expected: int) -> None:
    assert util.max_unavailable(d) == expected


@pytest.mark.parametrize("d,expected", [
    (_with_unavailable(10, 5), 5),
    (_with_unavailable(10, 10), 0),
    (_with_unavailable(5, 10), 0),
    (_with_unavailable(0, 10), 0),
    (_recreate(10), 0),
    (_with_unavailable(10, "60%"), 4),
    (_with_unavailable(10, "100%"), 0),
    (_with_unavailable(5, "100%"), 0),
])
def test_min_available(d: Obj, expected: int) -> None:
    assert util.min_available(d) == expected


@pytest.mark.parametrize("replicas,surge,unavailable,expected", [
    (10, "25%", "25%", 3),  # the API defaults: surge rounds up
    (1, "25%", "25%", 1),
    (4, "25%", "25%", 1),
    (10, 2, 0, 2),
    (10, "0%", "0%", 0),
])
def test_max_surge(replicas: int, surge: Any, unavailable: Any, expected: int) -> None:
    assert util.max_surge(new_deployment("foo", replicas, max_surge=surge, max_unavailable=unavailable)) == expected
    assert util.max_surge(_recreate(replicas)) == 0


# -- new RS sizing ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy,dep_replicas,new_rs_replicas,max_surge,expected", [
    ("RollingUpdate", 1, 5, 1, 5),   # can not scale up - to newRSReplicas
    ("RollingUpdate", 6, 2, 10, 6),  # scale up - to depReplicas
    ("Recreate", 3, 1, 1, 3),        # recreate - to depReplicas
])
def test_new_rs_new_replicas(strategy: str, dep_replicas: int, new_rs_replicas: int, max_surge: int,
                             expected: int) -> None:
    d = new_deployment("nginx", dep_replicas, max_surge=max_surge, max_unavailable=1)
    d["spec"]["strategy"]["type"] = strategy
    rs5 = rs("rs5", 5)
    new = rs("new", new_rs_replicas)
    assert util.new_rs_new_replicas(d, [rs5], new) == expected


# -- proportions ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dep_replicas,status_replicas,surge,rs_replicas,annotations,expected", [
    (0, 0, 0, 10, None, -10),                            # empty deployment always scales to 0
    (10, 0, 0, 5, None, 0),                              # unsynced, annotation missing
    (10, 0, 0, 5, {util.MAX_REPLICAS_ANNOTATION: "0"}, 0),  # unsynced, annotation zeroed
    (120, 100, 0, 50, None, 10),                         # +1/5 from the deployment's status
    (120, 100, 0, 50, {util.MAX_REPLICAS_ANNOTATION: "0"}, 10),
    (120, 0, 0, 50, {util.MAX_REPLICAS_ANNOTATION: "100"}, 10),
    (120, 0, 10, 50, {util.MAX_REPLICAS_ANNOTATION: "110"}, 9),
    (10, 0, 0, 6, {util.MAX_REPLICAS_ANNOTATION: "12"}, -1),
    (100, 0, 10, 50, {util.MAX_REPLICAS_ANNOTATION: "130"}, -8),
])
def test_replica_set_fraction(dep_replicas: int, status_replicas: int, surge: int, rs_replicas: int,
                              annotations: dict[str, str] | None, expected: int) -> None:
    d = new_deployment("nginx", dep_replicas, max_surge=surge, max_unavailable=1)
    d["status"]["replicas"] = status_replicas
    r = rs("r", rs_replicas)
    if annotations is not None:
        r["metadata"]["annotations"] = annotations
    assert util.replica_set_fraction(r, d) == expected


def test_replica_set_proportion_bounds() -> None:
    d = new_deployment("nginx", 120, max_unavailable=1)
    r = rs("r", 50)
    r["metadata"]["annotations"] = {util.MAX_REPLICAS_ANNOTATION: "100"}
    assert util.replica_set_proportion(r, d, 20, 0) == 10      # its fraction
    assert util.replica_set_proportion(r, d, 20, 15) == 5      # no more than is left to add
    assert util.replica_set_proportion(r, d, 20, 20) == 0      # nothing left
    assert util.replica_set_proportion(rs("z", 0), d, 20, 0) == 0  # never from zero
    assert util.replica_set_proportion(None, d, 20, 0) == 0
    down = new_deployment("nginx", 10, max_unavailable=1)
    r2 = rs("r2", 6)
    r2["metadata"]["annotations"] = {util.MAX_REPLICAS_ANNOTATION: "12"}
    assert util.replica_set_proportion(r2, down, -2, 0) == -1  # fraction -1 is within -2
    assert util.replica_set_proportion(r2, down, -2, -2) == 0


# -- proportional scaling: sync_test.go TestScale --------------------------------------------------------------------------
NEW_TS, OLD_TS, OLDER_TS = ts(2016, 5, 20, 2, 0, 0), ts(2016, 5, 20, 1, 0, 0), ts(2016, 5, 20, 0, 0, 0)


def _updated_template(replicas: int) -> Obj:
    d = new_deployment("foo", replicas, selector={"foo": "bar"})
    d["spec"]["template"]["metadata"]["labels"]["another"] = "label"
    return d


def _broken_new() -> Obj:
    r = rs("foo-v2", 2, None, NEW_TS)
    r["status"]["availableReplicas"] = 0
    return r


SCALE_CASES: list[tuple[str, Obj, Obj, Obj | None, list[Obj], int | None, list[int], set[str], dict[str, int]]] = [
    ("normal scaling event: 10 -> 12", new_deployment("foo", 12), new_deployment("foo", 10),
     rs("foo-v1", 10, None, NEW_TS), [], 12, [], set(), {}),
    ("normal scaling event: 10 -> 5", new_deployment("foo", 5), new_deployment("foo", 10),
     rs("foo-v1", 10, None, NEW_TS), [], 5, [], set(), {}),
    ("proportional scaling: 5 -> 10", new_deployment("foo", 10), new_deployment("foo", 5),
     rs("foo-v2", 2, None, NEW_TS), [rs("foo-v1", 3, None, OLD_TS)], 4, [6], set(), {}),
    ("proportional scaling: 5 -> 3", new_deployment("foo", 3), new_deployment("foo", 5),
     rs("foo-v2", 2, None, NEW_TS), [rs("foo-v1", 3, None, OLD_TS)], 1, [2], set(), {}),
    ("proportional scaling: 9 -> 4", new_deployment("foo", 4), new_deployment("foo", 9),
     rs("foo-v2", 8, None, NEW_TS), [rs("foo-v1", 1, None, OLD_TS)], 4, [0], set(), {}),
    ("proportional scaling: 7 -> 10", new_deployment("foo", 10), new_deployment("foo", 7),
     rs("foo-v3", 2, None, NEW_TS), [rs("foo-v2", 3, None, OLD_TS), rs("foo-v1", 2, None, OLDER_TS)],
     3, [4, 3], set(), {}),
    ("proportional scaling: 13 -> 8", new_deployment("foo", 8), new_deployment("foo", 13),
     rs("foo-v3", 2, None, NEW_TS), [rs("foo-v2", 8, None, OLD_TS), rs("foo-v1", 3, None, OLDER_TS)],
     1, [5, 2], set(), {}),
    ("leftover distribution: 3 -> 4", new_deployment("foo", 4), new_deployment("foo", 3),
     rs("foo-v3", 1, None, NEW_TS), [rs("foo-v2", 1, None, OLD_TS), rs("foo-v1", 1, None, OLDER_TS)],
     2, [1, 1], set(), {}),
    ("leftover distribution: 3 -> 2", new_deployment("foo", 2), new_deployment("foo", 3),
     rs("foo-v3", 1, None, NEW_TS), [rs("foo-v2", 1, None, OLD_TS), rs("foo-v1", 1, None, OLDER_TS)],
     1, [1, 0], set(), {}),
    ("proportional scaling (no new rs): 4 -> 5", new_deployment("foo", 5), new_deployment("foo", 4),
     None, [rs("foo-v2", 2, None, OLD_TS), rs("foo-v1", 2, None, OLDER_TS)], None, [3, 2], set(), {}),
    ("proportional scaling: 6 -> 0", new_deployment("foo", 0), new_deployment("foo", 6),
     rs("foo-v3", 3, None, NEW_TS), [rs("foo-v2", 2, None, OLD_TS), rs("foo-v1", 1, None, OLDER_TS)],
     0, [0, 0], set(), {}),
    ("proportional scaling: 0 -> 6", new_deployment("foo", 6), new_deployment("foo", 6),
     rs("foo-v3", 0, None, NEW_TS), [rs("foo-v2", 0, None, OLD_TS), rs("foo-v1", 0, None, OLDER_TS)],
     6, [0, 0], {"foo-v2", "foo-v1"}, {}),
    ("failed rs update", new_deployment("foo", 5), new_deployment("foo", 5),
     rs("foo-v3", 2, None, NEW_TS), [rs("foo-v2", 1, None, OLD_TS), rs("foo-v1", 1, None, OLDER_TS)],
     2, [2, 1], {"foo-v3", "foo-v1"}, {"foo-v2": 3}),
    ("deployment with surge pods", new_deployment("foo", 20, max_surge=2), new_deployment("foo", 10, max_surge=2),
     rs("foo-v2", 6, None, NEW_TS), [rs("foo-v1", 6, None, OLD_TS)], 11, [11], set(), {}),
    ("change both surge and size", new_deployment("foo", 50, max_surge=6), new_deployment("foo", 10, max_surge=3),
     rs("foo-v2", 5, None, NEW_TS), [rs("foo-v1", 8, None, OLD_TS)], 22, [34], set(), {}),
    ("change both size and template", _updated_template(14), new_deployment("foo", 10, selector={"foo": "bar"}),
     None, [rs("foo-v2", 7, None, NEW_TS), rs("foo-v1", 3, None, OLD_TS)], None, [10, 4], set(), {}),
    ("saturated but broken new replica set does not affect old pods",
     new_deployment("foo", 2, max_surge=1, max_unavailable=1), new_deployment("foo", 2, max_surge=1, max_unavailable=1),
     _broken_new(), [rs("foo-v1", 1, None, OLD_TS)], 2, [1], set(), {}),
]


@pytest.mark.parametrize("case", SCALE_CASES, ids=[c[0] for c in SCALE_CASES])
def test_scale(case: tuple[str, Obj, Obj, Obj | None, list[Obj], int | None, list[int], set[str], dict[str, int]]
               ) -> None:
    _, d, old_d, new_rs, old_rss, expected_new, expected_old, wasnt_updated, desired_annotations = copy.deepcopy(case)
    for r in [new_rs, *old_rss]:
        if r is None:
            continue
        desired = desired_annotations.get(util.name_of(r), util.replicas(old_d))
        util.set_replicas_annotations(r, desired, desired + util.max_surge(old_d))
    sizes = {util.name_of(r): util.replicas(r) for r in [new_rs, *old_rss] if r is not None}
    for op in plan_scale(d, new_rs, old_rss):
        if util.name_of(op.rs) not in wasnt_updated:
            sizes[util.name_of(op.rs)] = op.replicas
    if new_rs is not None and expected_new is not None:
        assert sizes[util.name_of(new_rs)] == expected_new
    assert [sizes[util.name_of(r)] for r in old_rss] == expected_old


def test_scale_single_active_uses_event_variant() -> None:
    d = new_deployment("foo", 12)
    r = rs("foo-v1", 10, None, NEW_TS)
    ops = plan_scale(d, r, [])
    assert [(op.rs is r, op.replicas, op.operation) for op in ops] == [(True, 12, None)]
    assert plan_scale(new_deployment("foo", 10), r, []) == []


# -- history cleanup: TestDeploymentController_cleanupDeployment ---------------------------------------------------------
def _deleted() -> Obj:
    r = rs_with_status("foo-1", 0, 0)
    r["metadata"]["deletionTimestamp"] = ts(2020, 1, 1, 0, 0, 0)
    return r


@pytest.mark.parametrize("old_rss,limit,expected", [
    ([rs_with_status("foo-1", 0, 0), rs_with_status("foo-2", 0, 0), rs_with_status("foo-3", 0, 0)], 1, 2),
    ([rs_with_status("foo-1", 0, 0), rs_with_status("foo-2", 0, 1), rs_with_status("foo-3", 1, 0),
      rs_with_status("foo-4", 1, 1)], 0, 1),
    ([rs_with_status("foo-1", 0, 0), rs_with_status("foo-2", 0, 0)], 0, 2),
    ([rs_with_status("foo-1", 1, 1), rs_with_status("foo-2", 1, 1)], 0, 0),
    ([_deleted()], 0, 0),
    ([rs_with_status("foo-1", 0, 0), rs_with_status("foo-2", 0, 0), rs_with_status("foo-3", 0, 0)], 2**31 - 1, 0),
])
def test_cleanup_deployment(old_rss: list[Obj], limit: int, expected: int) -> None:
    d = new_deployment("foo", 1, revision_history_limit=limit, selector={"foo": "bar"})
    assert len(cleanup_candidates(list(old_rss), d)) == expected


def test_cleanup_deletes_lowest_revisions_and_skips_unobserved() -> None:
    d = new_deployment("foo", 1, revision_history_limit=1)
    olds = []
    for i, rev in enumerate([3, 1, 2]):
        r = rs_with_status(f"foo-{i}", 0, 0)
        r["metadata"]["annotations"] = {util.REVISION_ANNOTATION: str(rev)}
        olds.append(r)
    assert sorted(util.annotations_of(r)[util.REVISION_ANNOTATION] for r in cleanup_candidates(olds, d)) == ["1", "2"]
    olds[1]["metadata"]["generation"] = 2  # revision 1: a spec change its controller has not observed yet
    assert [util.annotations_of(r)[util.REVISION_ANNOTATION] for r in cleanup_candidates(olds, d)] == ["2"]


# -- rolling: rolling_test.go -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dep_replicas,max_surge,old_replicas,new_replicas,expected", [
    (10, 0, 10, 0, None),   # should not scale up when old replica set is fully saturated
    (10, 2, 10, 0, 2),
    (10, 2, 5, 0, 7),
    (10, 2, 10, 2, None),   # maxSurge fully used
    (10, 2, 2, 11, 10),     # scale down above desired
])
def test_reconcile_new_replica_set(dep_replicas: int, max_surge: int, old_replicas: int, new_replicas: int,
                                   expected: int | None) -> None:
    new = rs("foo-v2", new_replicas)
    old = rs("foo-v1", old_replicas)
    d = new_deployment("foo", dep_replicas, max_surge=max_surge, max_unavailable=0, selector={"foo": "bar"})
    target = new_replica_set_target([new, old], new, d)
    scaled = target is not None and target != util.replicas(new)
    assert scaled == (expected is not None)
    if expected is not None:
        assert target == expected


@pytest.mark.parametrize("dep_replicas,max_unavailable,old_replicas,new_replicas,ready_old,ready_new,scale,expected_old", [
    (10, 0, 10, 0, 10, 0, True, 9),
    (10, 2, 10, 0, 10, 0, True, 8),
    (10, 2, 10, 0, 8, 0, True, 8),    # unhealthy replicas cleaned up
    (10, 2, 10, 0, 9, 0, True, 8),    # one unhealthy cleaned, one ready scaled down
    (10, 2, 8, 2, 8, 0, False, None),  # unavailable new pods do not allow more scale-down
])
def test_reconcile_old_replica_sets(dep_replicas: int, max_unavailable: int, old_replicas: int, new_replicas: int,
                                    ready_old: int, ready_new: int, scale: bool, expected_old: int | None) -> None:
    new = rs("foo-new", new_replicas, {"foo": "new"})
    new["status"]["availableReplicas"] = ready_new
    old = rs("foo-old", old_replicas, {"foo": "old"})
    old["status"]["availableReplicas"] = ready_old
    d = new_deployment("foo", dep_replicas, max_surge=0, max_unavailable=max_unavailable, selector={"foo": "new"})
    steps, total = plan_reconcile_old_replica_sets([old, new], [old], new, d)
    assert (total > 0) == scale
    if expected_old is not None:
        assert steps and steps[-1][1] == expected_old


@pytest.mark.parametrize("old_replicas,ready,max_cleanup,expected", [
    (10, 8, 1, 1),
    (10, 8, 3, 2),
    (10, 8, 0, 0),
    (10, 10, 3, 0),
])
def test_cleanup_unhealthy_replicas(old_replicas: int, ready: int, max_cleanup: int, expected: int) -> None:
    old = rs("foo-v2", old_replicas)
    old["status"]["availableReplicas"] = ready
    d = new_deployment("foo", 10, max_surge=2, max_unavailable=2)
    steps, total, err = plan_cleanup_unhealthy([old], d, max_cleanup)
    assert err is None
    assert total == expected
    assert len(steps) == (1 if expected else 0)


def test_cleanup_unhealthy_rejects_scaling_up() -> None:
    old = rs("foo-v2", 3)
    old["status"]["availableReplicas"] = 5  # more available than wanted: "cleanup" would grow it
    _, total, err = plan_cleanup_unhealthy([old], new_deployment("foo", 10, max_unavailable=2), 3)
    assert total == 0 and err is not None and "invalid request to scale down" in err


@pytest.mark.parametrize("dep_replicas,max_unavailable,ready,old_replicas,scale,expected_old", [
    (10, 0, 10, 10, True, 9),
    (10, 2, 10, 10, True, 8),
    (10, 2, 8, 10, False, None),
    (10, 2, 10, 0, False, None),
    (10, 2, 1, 10, False, None),
])
def test_scale_down_old_replica_sets_for_rolling_update(dep_replicas: int, max_unavailable: int, ready: int,
                                                        old_replicas: int, scale: bool,
                                                        expected_old: int | None) -> None:
    old = rs("foo-v2", old_replicas)
    old["status"]["availableReplicas"] = ready
    d = new_deployment("foo", dep_replicas, max_surge=0, max_unavailable=max_unavailable, selector={"foo": "bar"})
    steps, total, err = plan_scale_down_old_replica_sets([old], [old], d)
    assert err is None
    assert (total > 0) == scale
    if scale:
        assert [(util.name_of(r), n) for r, n in steps] == [("foo-v2", expected_old)]


def test_scale_down_takes_oldest_first() -> None:
    older = rs("b-older", 3, None, OLDER_TS)
    old = rs("a-old", 3, None, OLD_TS)
    for r in (older, old):
        r["status"]["availableReplicas"] = 3
    d = new_deployment("foo", 4, max_surge=0, max_unavailable=0)  # min available 3 of 6 available
    steps, total, _ = plan_scale_down_old_replica_sets([old, older], [old, older], d)
    assert total == 3 and [(util.name_of(r), n) for r, n in steps] == [("b-older", 0)]


# -- progress: progress_test.go -------------------------------------------------------------------------------------------
def current_deployment(pds: int | None, replicas: int, status_replicas: int, updated: int, available: int,
                       conditions: list[Obj] | None) -> Obj:
    d: Obj = {"metadata": {"name": "progress-test"},
              "spec": {"replicas": replicas, "strategy": {"type": "Recreate"}},
              "status": {"replicas": status_replicas, "updatedReplicas": updated, "availableReplicas": available}}
    if pds is not None:
        d["spec"]["progressDeadlineSeconds"] = pds
    if conditions is not None:
        d["status"]["conditions"] = copy.deepcopy(conditions)
    return d


def dstatus(replicas: int, updated: int, available: int) -> Obj:
    return {"replicas": replicas, "updatedReplicas": updated, "availableReplicas": available}


FAILED = [{"type": "Progressing", "status": "False", "reason": util.TIMED_OUT_REASON}]
STUCK = [{"type": "Progressing", "status": "True", "lastUpdateTime": ts(2017, 2, 15, 18, 49, 0)}]
T0 = epoch(2017, 2, 15, 18, 49, 0)


@pytest.mark.parametrize("name,d,st,now,expected", [
    ("no progressDeadlineSeconds specified", current_deployment(None, 4, 3, 3, 2, None), dstatus(3, 3, 2), T0, None),
    ("no progressing condition found", current_deployment(60, 4, 3, 3, 2, None), dstatus(3, 3, 2), T0, None),
    ("complete deployment does not need to be requeued", current_deployment(60, 3, 3, 3, 3, None), dstatus(3, 3, 3),
     T0, None),
    ("already failed deployment does not need to be requeued", current_deployment(60, 3, 3, 3, 0, FAILED),
     dstatus(3, 3, 0), T0, None),
    ("stuck deployment - 30s", current_deployment(60, 3, 3, 3, 1, STUCK), dstatus(3, 3, 1),
     epoch(2017, 2, 15, 18, 49, 30), 30.0),
    ("stuck deployment - 1s", current_deployment(60, 3, 3, 3, 1, STUCK), dstatus(3, 3, 1),
     epoch(2017, 2, 15, 18, 49, 59), 1.0),
    # upstream uses 1ns past the second; a float clock resolves microseconds
    ("failed deployment - less than a second => now", current_deployment(60, 3, 3, 3, 1, STUCK), dstatus(3, 3, 1),
     epoch(2017, 2, 15, 18, 49, 59, micro=1), 0.0),
    ("failed deployment - now", current_deployment(60, 3, 3, 3, 1, STUCK), dstatus(3, 3, 1),
     epoch(2017, 2, 15, 18, 50, 0), 0.0),
    ("failed deployment - 1s after deadline", current_deployment(60, 3, 3, 3, 1, STUCK), dstatus(3, 3, 1),
     epoch(2017, 2, 15, 18, 50, 1), 0.0),
    ("failed deployment - 60s after deadline", current_deployment(60, 3, 3, 3, 1, STUCK), dstatus(3, 3, 1),
     epoch(2017, 2, 15, 18, 51, 0), 0.0),
])
def test_requeue_stuck_deployment(name: str, d: Obj, st: Obj, now: float, expected: float | None) -> None:
    got = requeue_after(d, st, now)
    if expected is None:
        assert got is None, name
    else:
        assert got == pytest.approx(expected), name


def rs_with_available(name: str, spec_replicas: int, status_replicas: int, available: int) -> Obj:
    r = rs(name, spec_replicas)
    r["status"] = {"replicas": status_replicas, "availableReplicas": available}
    return r


TEST_TIME = ts(2017, 2, 15, 18, 49, 0)
NEW_RS_AVAILABLE = {"type": "Progressing", "status": "True", "reason": util.NEW_RS_AVAILABLE_REASON,
                    "lastUpdateTime": TEST_TIME, "lastTransitionTime": TEST_TIME}
RS_UPDATED = {"type": "Progressing", "status": "True", "reason": util.REPLICA_SET_UPDATED_REASON,
              "lastUpdateTime": TEST_TIME, "lastTransitionTime": TEST_TIME}
TIMED_OUT = FAILED[0]
NOW = epoch(2024, 1, 1, 0, 0, 0)

# (name, deployment, other RSs, new RS, expected (status, reason) or None for "no condition", kept times)
ROLLOUT_CASES: list[tuple[str, Obj, list[Obj], Obj | None, tuple[str, str] | None, str]] = [
    ("General: remove Progressing condition and do not estimate progress if deployment has no Progress Deadline",
     current_deployment(None, 3, 2, 2, 2, [RS_UPDATED]), [rs_with_available("bar", 0, 1, 1)],
     rs_with_available("foo", 3, 2, 2), None, ""),
    ("General: do not estimate progress of deployment with only one active ReplicaSet",
     current_deployment(60, 3, 3, 3, 3, [NEW_RS_AVAILABLE]), [rs_with_available("bar", 3, 3, 3)], None,
     ("True", util.NEW_RS_AVAILABLE_REASON), "both"),
    ("DeploymentProgressing: dont update lastTransitionTime if deployment already has Progressing=True",
     current_deployment(60, 3, 2, 2, 2, [RS_UPDATED]), [rs_with_available("bar", 0, 1, 1)],
     rs_with_available("foo", 3, 2, 2), ("True", util.REPLICA_SET_UPDATED_REASON), "transition"),
    ("DeploymentProgressing: update everything if deployment has Progressing=False",
     current_deployment(60, 3, 2, 2, 2, [TIMED_OUT]), [rs_with_available("bar", 0, 1, 1)],
     rs_with_available("foo", 3, 2, 2), ("True", util.REPLICA_SET_UPDATED_REASON), "none"),
    ("DeploymentProgressing: create Progressing condition if it does not exist",
     current_deployment(60, 3, 2, 2, 2, []), [rs_with_available("bar", 0, 1, 1)],
     rs_with_available("foo", 3, 2, 2), ("True", util.REPLICA_SET_UPDATED_REASON), "none"),
    ("DeploymentComplete: dont update lastTransitionTime if deployment already has Progressing=True",
     current_deployment(60, 3, 3, 3, 3, [RS_UPDATED]), [], rs_with_available("foo", 3, 3, 3),
     ("True", util.NEW_RS_AVAILABLE_REASON), "transition"),
    ("DeploymentComplete: update everything if deployment has Progressing=False",
     current_deployment(60, 3, 3, 3, 3, [TIMED_OUT]), [], rs_with_available("foo", 3, 3, 3),
     ("True", util.NEW_RS_AVAILABLE_REASON), "none"),
    ("DeploymentComplete: create Progressing condition if it does not exist",
     current_deployment(60, 3, 3, 3, 3, []), [], rs_with_available("foo", 3, 3, 3),
     ("True", util.NEW_RS_AVAILABLE_REASON), "none"),
    ("DeploymentComplete: defend against NPE when newRS=nil",
     current_deployment(60, 0, 3, 3, 3, [RS_UPDATED]), [rs_with_available("foo", 0, 0, 0)], None,
     ("True", util.NEW_RS_AVAILABLE_REASON), "transition"),
    ("DeploymentTimedOut: update status if rollout exceeds Progress Deadline",
     current_deployment(60, 3, 2, 2, 2, [RS_UPDATED]), [], rs_with_available("foo", 3, 2, 2),
     ("False", util.TIMED_OUT_REASON), "none"),
    ("DeploymentTimedOut: do not update status if deployment has existing timedOut condition",
     current_deployment(60, 3, 2, 2, 2, [TIMED_OUT]), [], rs_with_available("foo", 3, 2, 2),
     ("False", util.TIMED_OUT_REASON), "both"),
]


@pytest.mark.parametrize("case", ROLLOUT_CASES, ids=[c[0] for c in ROLLOUT_CASES])
def test_sync_rollout_status(case: tuple[str, Obj, list[Obj], Obj | None, tuple[str, str] | None, str]) -> None:
    name, d, all_rss, new_rs, expected, kept = case
    before = util.get_condition(d["status"], "Progressing")
    st = compute_rollout_status([*all_rss, new_rs] if new_rs is not None else list(all_rss), new_rs, d, NOW)
    cond = util.get_condition(st, "Progressing")
    if expected is None:
        assert cond is None, name
        return
    assert cond is not None, name
    assert (cond["status"], cond["reason"]) == expected, name
    assert before is not None or kept == "none"
    if kept in ("both", "transition"):
        assert before is not None and cond.get("lastTransitionTime") == before.get("lastTransitionTime"), name
    if kept == "both":
        assert before is not None and cond.get("lastUpdateTime") == before.get("lastUpdateTime"), name
    else:
        assert cond["lastUpdateTime"] == now_rfc3339(NOW), name
    if kept == "none":
        assert cond["lastTransitionTime"] == now_rfc3339(NOW), name


def test_rollout_messages() -> None:
    d = current_deployment(60, 3, 3, 3, 3, [])
    st = compute_rollout_status([rs_with_available("web-abc", 3, 3, 3)], rs_with_available("web-abc", 3, 3, 3), d, NOW)
    assert util.get_condition(st, "Progressing")["message"] == 'ReplicaSet "web-abc" has successfully progressed.'
    assert util.get_condition(st, "Available")["message"] == "Deployment has minimum availability."
    d = current_deployment(60, 3, 2, 2, 2, [RS_UPDATED])
    st = compute_rollout_status([rs_with_available("web-abc", 3, 2, 2)], rs_with_available("web-abc", 3, 2, 2), d, NOW)
    assert util.get_condition(st, "Progressing")["message"] == 'ReplicaSet "web-abc" has timed out progressing.'
    d = current_deployment(60, 3, 2, 1, 1, [RS_UPDATED])
    st = compute_rollout_status([rs_with_available("web-abc", 3, 2, 2)], rs_with_available("web-abc", 3, 2, 2), d, NOW)
    assert util.get_condition(st, "Progressing")["message"] == 'ReplicaSet "web-abc" is progressing.'


def test_replica_failure_promoted_from_new_rs_first() -> None:
    fail = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota",
            "lastTransitionTime": TEST_TIME}
    new = rs_with_available("new", 3, 0, 0)
    new["status"]["conditions"] = [dict(fail, message="from new")]
    old = rs_with_available("old", 1, 1, 1)
    old["status"]["conditions"] = [dict(fail, message="from old")]
    d = current_deployment(60, 3, 1, 0, 1, [])
    st = compute_rollout_status([old, new], new, d, NOW)
    assert util.get_condition(st, "ReplicaFailure")["message"] == "from new"
    new["status"]["conditions"] = []
    st = compute_rollout_status([old, new], new, d, NOW)
    assert util.get_condition(st, "ReplicaFailure")["message"] == "from old"


def test_calculate_status_counts_and_availability() -> None:
    d = new_deployment("foo", 4, max_surge=1, max_unavailable=1)
    d["metadata"]["generation"] = 7
    d["status"]["collisionCount"] = 2
    new = rs("new", 2)
    new["status"] = {"replicas": 2, "readyReplicas": 2, "availableReplicas": 1}
    old = rs("old", 3)
    old["status"] = {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3}
    st = calculate_status([old, new], new, d, NOW)
    assert {k: v for k, v in st.items() if k != "conditions"} == {
        "observedGeneration": 7, "replicas": 5, "updatedReplicas": 2, "readyReplicas": 5, "availableReplicas": 4,
        "unavailableReplicas": 1, "collisionCount": 2}
    assert util.get_condition(st, "Available")["reason"] == util.MINIMUM_REPLICAS_AVAILABLE
    old["status"]["availableReplicas"] = 1  # 2 available < 4 - 1
    st = calculate_status([old, new], new, d, NOW)
    assert util.get_condition(st, "Available")["status"] == "False"
    assert util.get_condition(st, "Available")["reason"] == util.MINIMUM_REPLICAS_UNAVAILABLE


# -- deployment_util_test.go: rollout state, conditions, annotations, templates --------------------------------------------
@pytest.mark.parametrize("desired,current,updated,available,expected", [
    (5, 5, 5, 4, False), (5, 5, 5, 3, False), (5, 5, 5, 5, True), (5, 5, 4, 5, False), (1, 2, 1, 1, False),
    (1, 1, 1, 0, False),
])
def test_deployment_complete(desired: int, current: int, updated: int, available: int, expected: bool) -> None:
    d = new_deployment("foo", desired)
    assert util.deployment_complete(d, dstatus(current, updated, available)) is expected


@pytest.mark.parametrize("old,new,expected", [
    ((10, 4, 4, 4), (10, 6, 4, 4), True),
    ((10, 4, 4, 4), (10, 4, 4, 4), False),
    ((10, 4, 6, 6), (8, 4, 6, 6), True),
    ((10, 7, 3, 3), (10, 6, 3, 3), False),
    ((10, 4, 7, 7), (8, 8, 5, 5), True),
    ((10, 10, 9, 8), (10, 10, 10, 8), True),
    ((10, 10, 10, 9), (10, 10, 10, 10), True),
])
def test_deployment_progressing(old: tuple[int, ...], new: tuple[int, ...], expected: bool) -> None:
    def st(v: tuple[int, ...]) -> Obj:
        return {"replicas": v[0], "updatedReplicas": v[1], "readyReplicas": v[2], "availableReplicas": v[3]}
    assert util.deployment_progressing({"status": st(old)}, st(new)) is expected


@pytest.mark.parametrize("pds,reason,last,now,expected", [
    (None, "", ts(2016, 1, 1, 0, 1, 9), epoch(2016, 1, 1, 0, 1, 20), False),
    (10, "", ts(2016, 1, 1, 0, 1, 9), epoch(2016, 1, 1, 0, 1, 20), True),
    (10, "", ts(2016, 1, 1, 0, 1, 11), epoch(2016, 1, 1, 0, 1, 20), False),
    (None, util.NEW_RS_AVAILABLE_REASON, "", epoch(2016, 1, 1, 0, 1, 20), False),
])
def test_deployment_timed_out(pds: int | None, reason: str, last: str, now: float, expected: bool) -> None:
    d: Obj = {"spec": {}, "status": {"conditions": [
        {"type": "Progressing", "status": "True", "reason": reason, "lastUpdateTime": last}]}}
    if pds is not None:
        d["spec"]["progressDeadlineSeconds"] = pds
    assert util.deployment_timed_out(d, d["status"], now) is expected


def test_set_condition_keeps_transition_time_and_skips_same_reason() -> None:
    st: Obj = {}
    util.set_condition(st, {"type": "Available", "status": "True", "reason": "A", "lastTransitionTime": "t1"})
    util.set_condition(st, {"type": "Progressing", "status": "False", "reason": "X", "lastTransitionTime": "t1"})
    util.set_condition(st, {"type": "Available", "status": "True", "reason": "A", "lastTransitionTime": "t2"})
    assert [c["type"] for c in st["conditions"]] == ["Available", "Progressing"]  # unchanged: same status+reason
    util.set_condition(st, {"type": "Available", "status": "True", "reason": "B", "lastTransitionTime": "t3"})
    assert st["conditions"][-1] == {"type": "Available", "status": "True", "reason": "B", "lastTransitionTime": "t1"}
    util.remove_condition(st, "Available")
    util.remove_condition(st, "Progressing")
    assert "conditions" not in st


def test_new_replica_set_annotations_and_revision_history() -> None:
    d = new_deployment("nginx", 3, max_surge=1, max_unavailable=0)
    d["metadata"]["annotations"] = {util.REVISION_ANNOTATION: "1", util.CHANGE_CAUSE_ANNOTATION: "kubectl set image",
                                    util.LAST_APPLIED_CONFIG_ANNOTATION: "{}", "team": "a"}
    r = rs("nginx-abc", 0)
    assert util.set_new_replica_set_annotations(d, r, "1", False)
    ann = util.annotations_of(r)
    assert ann == {util.CHANGE_CAUSE_ANNOTATION: "kubectl set image", "team": "a", util.REVISION_ANNOTATION: "1",
                   util.DESIRED_REPLICAS_ANNOTATION: "3", util.MAX_REPLICAS_ANNOTATION: "4"}
    assert not util.set_new_replica_set_annotations(d, r, "1", True)  # nothing new
    # Upstream's TestAnnotationUtils: revisions 11..20 with a 5-character history cap.
    for i in range(10, 20):
        util.set_new_replica_set_annotations(d, r, str(i + 1), True, 5)
        assert util.annotations_of(r)[util.REVISION_ANNOTATION] == str(i + 1)
        if i >= 12:
            assert util.annotations_of(r)[util.REVISION_HISTORY_ANNOTATION] == f"{i - 1},{i}"
    # A lower revision never replaces a higher one.
    assert not util.set_new_replica_set_annotations(d, r, "3", True)
    assert util.annotations_of(r)[util.REVISION_ANNOTATION] == "20"


def test_replicas_annotations() -> None:
    r = rs("hello", 1)
    assert util.replicas_annotations_need_update(r, 10, 20)
    r["metadata"]["annotations"] = {util.DESIRED_REPLICAS_ANNOTATION: "8", util.MAX_REPLICAS_ANNOTATION: "20"}
    assert util.replicas_annotations_need_update(r, 10, 20)
    r["metadata"]["annotations"] = {util.DESIRED_REPLICAS_ANNOTATION: "10", util.MAX_REPLICAS_ANNOTATION: "16"}
    assert util.replicas_annotations_need_update(r, 10, 20)
    assert util.set_replicas_annotations(r, 10, 20)
    assert not util.replicas_annotations_need_update(r, 10, 20)
    d = new_deployment("nginx", 1)
    r = rs("r", 1)
    r["metadata"]["annotations"] = {util.DESIRED_REPLICAS_ANNOTATION: "1"}
    r["status"]["availableReplicas"] = 1
    assert util.is_saturated(d, r)
    r["status"]["availableReplicas"] = 0
    assert not util.is_saturated(d, r)


def _tmpl(name: str, node: str, annotations: dict[str, str], labels: dict[str, str]) -> Obj:
    return {"metadata": {"name": name, "annotations": annotations, "labels": labels}, "spec": {"nodeName": node}}


H = util.DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY


@pytest.mark.parametrize("a,b,expected", [
    (_tmpl("foo", "n", {}, {H: "v1", "something": "else"}), _tmpl("foo", "n", {}, {H: "v1", "something": "else"}), True),
    (_tmpl("foo", "n", {}, {H: "v1", "something": "else"}), _tmpl("foo", "n", {}, {H: "v2", "something": "else"}), True),
    (_tmpl("foo", "n", {}, {"something": "else"}), _tmpl("foo", "n", {}, {H: "v2", "something": "else"}), True),
    (_tmpl("foo", "n", {}, {H: "v1"}), _tmpl("foo", "n", {}, {H: "v1", "something": "else"}), False),
    (_tmpl("foo", "n", {"former": "v"}, {H: "v1", "s": "e"}), _tmpl("foo", "n", {"latter": "v"}, {H: "v1", "s": "e"}),
     False),
    (_tmpl("foo-1", "n", {}, {H: "v1", "s": "e"}), _tmpl("foo-2", "n", {}, {H: "v2", "s": "e"}), False),
    (_tmpl("foo-1", "n1", {}, {"s": "e"}), _tmpl("foo-2", "n2", {}, {H: "v2", "s": "e"}), False),
    (_tmpl("foo", "n1", {}, {"s": "e"}), _tmpl("foo", "n2", {}, {"nothing": "else"}), False),
])
def test_equal_ignore_hash(a: Obj, b: Obj, expected: bool) -> None:
    before = copy.deepcopy((a, b))
    assert util.equal_ignore_hash(a, b) is expected
    assert util.equal_ignore_hash(b, a) is expected
    assert (a, b) == before  # inputs untouched


def test_equal_ignore_hash_treats_null_and_empty_alike() -> None:
    a = {"metadata": {"labels": {"app": "x"}, "annotations": {}}, "spec": {"containers": [{"name": "c", "env": []}]}}
    b = {"metadata": {"labels": {"app": "x", H: "h"}, "creationTimestamp": None}, "spec": {"containers": [{"name": "c"}]}}
    assert util.equal_ignore_hash(a, b)


def test_find_new_and_old_replica_sets() -> None:
    d = new_deployment("nginx", 1, selector={"name": "nginx"})
    new = rs("new", 1, None, ts(2020, 1, 1, 0, 1, 0))
    new["spec"]["template"] = copy.deepcopy(d["spec"]["template"])
    new["spec"]["template"]["metadata"]["labels"][H] = "hash"
    dup = copy.deepcopy(new)
    dup["metadata"].update(name="dup", uid="uid-dup", creationTimestamp=ts(2020, 1, 1, 0, 0, 0))
    dup["spec"]["template"]["metadata"]["labels"][H] = "different-hash"
    old = rs("old", 0, None, ts(2020, 1, 1, 0, 0, 0))
    old["spec"]["template"] = copy.deepcopy(d["spec"]["template"])
    old["spec"]["template"]["spec"]["containers"][0]["name"] = "nginx-old-1"
    assert util.find_new_replica_set(d, [new, old]) is new
    assert util.find_new_replica_set(d, [new, old, dup]) is dup  # the oldest of equal templates
    assert util.find_new_replica_set(d, [old]) is None
    required, all_old = util.find_old_replica_sets(d, [old, new, dup])
    assert [util.name_of(r) for r in all_old] == ["old", "new"]
    assert [util.name_of(r) for r in required] == ["new"]


def test_find_active_or_latest_and_revisions() -> None:
    a, b = rs("a", 0, None, OLDER_TS), rs("b", 0, None, OLD_TS)
    assert util.find_active_or_latest(None, [a, b]) is b  # none active: the newest
    b["spec"]["replicas"] = 2
    assert util.find_active_or_latest(None, [a, b]) is b
    a["spec"]["replicas"] = 1
    assert util.find_active_or_latest(None, [a, b]) is None
    for r, rev in ((a, "3"), (b, "x")):
        r["metadata"]["annotations"] = {util.REVISION_ANNOTATION: rev}
    c = rs("c", 0)
    c["metadata"]["annotations"] = {util.REVISION_ANNOTATION: "5"}
    assert util.max_revision([a, b, c, None]) == 5
    assert util.last_revision([a, b, c]) == 3


# -- template hash --------------------------------------------------------------------------------------------------------------
def test_compute_hash_changes_with_collision_count() -> None:
    # TestComputeHash: the collision count must change the hash, nil and MaxInt32 included.
    assert util.compute_hash({}, 1) != util.compute_hash({}, 2)
    assert util.compute_hash({}, None) != util.compute_hash({}, 2**31 - 1)
    template = new_deployment("web", 1, selector={"app": "web"})["spec"]["template"]
    assert util.compute_hash(template, None) == util.compute_hash(copy.deepcopy(template), None)
    assert all(c in util.NAME_ALPHABET for c in util.compute_hash(template, 3))


def test_pod_template_spec_hash_unique() -> None:
    # hash_test.go: 1000 templates differing in one image tag, no two hash alike.
    seen: dict[str, int] = {}
    for i in range(1000):
        template = {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": f"registry.example/web:{i}",
                                             "ports": [{"containerPort": 8080}]}]}}
        h = util.compute_hash(template, None)
        assert h not in seen, f"hash collision between {seen.get(h)} and {i}"
        seen[h] = i


def test_fnv_and_safe_encoding_match_go() -> None:
    # fnv.New32a: offset basis for no input, and the published test vector for "a".
    assert util.fnv1a_32(b"") == 0x811C9DC5
    assert util.fnv1a_32(b"a") == 0xE40C292C
    # rand.SafeEncodeString maps each byte into the 27-letter safe alphabet.
    assert util.safe_encode_string("0123") == "".join(util.NAME_ALPHABET[ord(c) % 27] for c in "0123")
