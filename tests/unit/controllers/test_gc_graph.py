"""The garbage collector's uid graph, fed events by hand (no API server): structure and what it queues."""

from __future__ import annotations

from typing import Any

from tinykube.controllers.garbagecollector.graph import (
    ADD,
    DELETE,
    UPDATE,
    AbsentOwnerCache,
    Graph,
    Identity,
    alternate_owner_identity,
    partition_dependents,
    references_diff,
)


class Recorder:
    def __init__(self) -> None:
        self.deletes: list[str] = []
        self.rate_limited: list[str] = []
        self.orphans: list[str] = []

    def delete(self, uid: str, rate_limited: bool = False) -> None:
        (self.rate_limited if rate_limited else self.deletes).append(uid)

    def orphan(self, uid: str) -> None:
        self.orphans.append(uid)

    def clear(self) -> None:
        self.deletes.clear()
        self.rate_limited.clear()
        self.orphans.clear()


def new_graph() -> tuple[Graph, Recorder]:
    rec = Recorder()
    return Graph(rec.delete, rec.orphan), rec


def ref(uid: str, name: str = "", kind: str = "ReplicaSet", api: str = "apps/v1", block: bool | None = True,
        controller: bool = True) -> dict[str, Any]:
    r: dict[str, Any] = {"apiVersion": api, "kind": kind, "name": name or f"n-{uid}", "uid": uid}
    if controller:
        r["controller"] = True
    if block is not None:
        r["blockOwnerDeletion"] = block
    return r


def obj(uid: str, name: str = "", ns: str | None = "default", owners: list[dict[str, Any]] | None = None,
        deleting: bool = False, finalizers: list[str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name or f"n-{uid}", "uid": uid, "resourceVersion": "1"}
    if ns:
        md["namespace"] = ns
    if owners is not None:
        md["ownerReferences"] = owners
    if deleting:
        md["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    if finalizers is not None:
        md["finalizers"] = finalizers
    return {"metadata": md}


def add_rs(g: Graph, uid: str, **kw: Any) -> dict[str, Any]:
    o = obj(uid, **kw)
    g.observe(ADD, "apps/v1", "ReplicaSet", o)
    return o


def add_pod(g: Graph, uid: str, **kw: Any) -> dict[str, Any]:
    o = obj(uid, **kw)
    g.observe(ADD, "v1", "Pod", o)
    return o


def test_owner_then_dependents_are_linked() -> None:
    g, rec = new_graph()
    add_rs(g, "rs1")
    add_pod(g, "p1", owners=[ref("rs1")])
    add_pod(g, "p2", owners=[ref("rs1", block=None)])
    owner = g.get("rs1")
    assert owner is not None and owner.observed
    assert {d.uid for d in g.dependents_of("rs1")} == {"p1", "p2"}
    assert {d.uid for d in owner.blocking_dependents()} == {"p1"}  # p2's reference does not block
    assert g.get("p1").identity == Identity("v1", "Pod", "n-p1", "p1", "default")  # type: ignore[union-attr]
    assert rec.deletes == [] and rec.orphans == []


def test_dependent_first_creates_virtual_owner_that_the_informer_later_confirms() -> None:
    g, rec = new_graph()
    add_pod(g, "p1", owners=[ref("rs1", name="web")])
    owner = g.get("rs1")
    assert owner is not None and owner.virtual
    assert owner.identity == Identity("apps/v1", "ReplicaSet", "web", "rs1", "default")
    assert rec.deletes == ["rs1"]  # the collector must verify the owner exists
    rec.clear()
    add_rs(g, "rs1", name="web")
    same = g.get("rs1")
    assert same is owner and same.observed
    assert [d.uid for d in g.dependents_of("rs1")] == ["p1"]
    assert rec.deletes == []  # coordinates agreed: nothing suspicious


def test_virtual_owner_observed_under_other_coordinates_queues_the_dependent() -> None:
    g, rec = new_graph()
    add_pod(g, "p1", owners=[ref("rs1", name="wrong-name")])
    rec.clear()
    add_rs(g, "rs1", name="web")
    assert g.get("rs1").identity.name == "web"  # type: ignore[union-attr]
    assert rec.deletes == ["p1"]


def test_dependent_in_other_namespace_than_observed_owner_is_queued() -> None:
    g, rec = new_graph()
    add_rs(g, "rs1", name="web", ns="a")
    add_pod(g, "p1", ns="b", owners=[ref("rs1", name="web")])
    assert rec.deletes == ["p1"]
    rec.clear()
    add_pod(g, "p2", ns="a", owners=[ref("rs1", name="web")])
    assert rec.deletes == []


def test_namespaced_dependent_of_virtual_cluster_scoped_owner_is_checked() -> None:
    g, rec = new_graph()
    g.observe(ADD, "v1", "Node", obj("node1", name="n1", ns=None))
    add_pod(g, "lease", owners=[ref("node1", name="n1", kind="Node", api="v1")])
    assert rec.deletes == []  # observed cluster-scoped owner: valid from any namespace
    # A virtual owner first named by a cluster-scoped dependent has no namespace; a namespaced dependent
    # naming it may be referring to a namespaced kind wrongly, so that dependent gets verified.
    g.observe(ADD, "rbac.authorization.k8s.io/v1", "ClusterRole",
              obj("cr", ns=None, owners=[ref("ghost", kind="Node", api="v1")]))
    assert rec.deletes == ["ghost"]
    assert g.get("ghost").identity.namespace == ""  # type: ignore[union-attr]
    rec.clear()
    add_pod(g, "p2", owners=[ref("ghost", kind="Node", api="v1")])
    assert rec.deletes == ["p2"]


def test_owner_reference_changes_move_the_dependent() -> None:
    g, rec = new_graph()
    add_rs(g, "a")
    add_rs(g, "b")
    old = add_pod(g, "p", owners=[ref("a")])
    new = obj("p", owners=[ref("b")])
    g.observe(UPDATE, "v1", "Pod", new, old)
    assert g.dependents_of("a") == []
    assert [d.uid for d in g.dependents_of("b")] == ["p"]
    assert g.get("a").blocking == set()  # type: ignore[union-attr]
    assert g.get("b").blocking == {"p"}  # type: ignore[union-attr]
    assert rec.deletes == ["a"]  # a blocking reference went away: the owner is looked at again
    rec.clear()
    # blockOwnerDeletion switched off is also an unblock.
    newer = obj("p", owners=[ref("b", block=False)])
    g.observe(UPDATE, "v1", "Pod", newer, new)
    assert g.get("b").blocking == set()  # type: ignore[union-attr]
    assert [d.uid for d in g.dependents_of("b")] == ["p"]
    assert rec.deletes == ["b"]
    rec.clear()
    # Unrelated updates change nothing and queue nothing.
    g.observe(UPDATE, "v1", "Pod", obj("p", owners=[ref("b", block=False)]), newer)
    assert rec.deletes == []


def test_adding_a_second_owner_and_an_unknown_one() -> None:
    g, rec = new_graph()
    add_rs(g, "a")
    old = add_pod(g, "p", owners=[ref("a")])
    g.observe(UPDATE, "v1", "Pod", obj("p", owners=[ref("a"), ref("x", block=False)]), old)
    assert g.get("x") is not None and g.get("x").virtual  # type: ignore[union-attr]
    assert [d.uid for d in g.dependents_of("x")] == ["p"]
    assert rec.deletes == ["x"]


def test_owner_deleted_queues_dependents_and_is_remembered_absent() -> None:
    g, rec = new_graph()
    rs = add_rs(g, "rs1", name="web")
    for i in range(3):
        add_pod(g, f"p{i}", owners=[ref("rs1", name="web")])
    g.observe(DELETE, "apps/v1", "ReplicaSet", rs)
    assert "rs1" not in g
    assert sorted(rec.deletes) == ["p0", "p1", "p2"]
    assert g.absent.has(Identity("apps/v1", "ReplicaSet", "web", "rs1", "default"))
    # The dependents keep their recorded owners until their own events say otherwise.
    assert g.get("p0").owners[0]["uid"] == "rs1"  # type: ignore[union-attr]


def test_owner_without_dependents_is_not_remembered() -> None:
    g, _ = new_graph()
    rs = add_rs(g, "rs1")
    g.observe(DELETE, "apps/v1", "ReplicaSet", rs)
    assert len(g.absent) == 0 and len(g) == 0


def test_dependent_deleted_leaves_owner_and_delete_of_unknown_is_ignored() -> None:
    g, rec = new_graph()
    add_rs(g, "rs1")
    p = add_pod(g, "p1", owners=[ref("rs1")])
    g.observe(DELETE, "v1", "Pod", p)
    assert "p1" not in g and g.dependents_of("rs1") == []
    assert rec.deletes == []  # the owner is not deleting its dependents: nothing to check
    g.observe(DELETE, "v1", "Pod", obj("never-seen"))
    assert len(g) == 1


def test_orphan_transition_queues_owner_once() -> None:
    g, rec = new_graph()
    rs = add_rs(g, "rs1")
    add_pod(g, "p1", owners=[ref("rs1")])
    deleting = obj("rs1", deleting=True, finalizers=["orphan"])
    g.observe(UPDATE, "apps/v1", "ReplicaSet", deleting, rs)
    assert rec.orphans == ["rs1"] and rec.deletes == []
    g.observe(UPDATE, "apps/v1", "ReplicaSet", obj("rs1", deleting=True, finalizers=["orphan", "x"]), deleting)
    assert rec.orphans == ["rs1"]  # not a new transition
    assert g.get("rs1").being_deleted  # type: ignore[union-attr]


def test_foreground_transition_and_completion() -> None:
    g, rec = new_graph()
    rs = add_rs(g, "rs1")
    pods = [add_pod(g, f"p{i}", owners=[ref("rs1")]) for i in range(3)]
    cm = obj("cm", owners=[ref("rs1", kind="ReplicaSet", block=False)])
    g.observe(ADD, "v1", "ConfigMap", cm)
    g.observe(UPDATE, "apps/v1", "ReplicaSet", obj("rs1", deleting=True, finalizers=["foregroundDeletion"]), rs)
    owner = g.get("rs1")
    assert owner is not None and owner.deleting_dependents and owner.being_deleted
    assert sorted(rec.deletes) == ["cm", "p0", "p1", "p2", "rs1"]
    rec.clear()
    # Dependents going away: the owner is looked at only once nothing blocks it any more.
    g.observe(DELETE, "v1", "Pod", pods[0])
    g.observe(DELETE, "v1", "Pod", pods[1])
    assert rec.deletes == []
    g.observe(DELETE, "v1", "Pod", pods[2])
    assert rec.deletes == ["rs1"]
    assert owner.blocking_dependents() == [] and [d.uid for d in owner.dependents.values()] == ["cm"]
    rec.clear()
    # A dependent that starts blocking an owner already deleting its dependents is queued itself.
    add_pod(g, "late", owners=[ref("rs1")])
    assert rec.deletes == ["late"]


def test_object_seen_first_while_deleting_in_foreground() -> None:
    g, rec = new_graph()
    add_pod(g, "p", owners=[ref("rs1")])
    rec.clear()
    add_rs(g, "rs1", deleting=True, finalizers=["foregroundDeletion"])
    n = g.get("rs1")
    assert n is not None and n.deleting_dependents and n.observed
    assert sorted(rec.deletes) == ["p", "rs1"]


def test_virtual_delete_removes_virtual_node_and_queues_dependents() -> None:
    g, rec = new_graph()
    add_pod(g, "p1", owners=[ref("ghost", name="g")])
    add_pod(g, "p2", owners=[ref("ghost", name="g")])
    rec.clear()
    ident = g.get("ghost").identity  # type: ignore[union-attr]
    g.virtual_delete(ident)
    assert "ghost" not in g
    assert sorted(rec.deletes) == ["p1", "p2"]
    assert g.absent.has(ident)


def test_virtual_delete_with_disagreeing_dependents_tries_the_other_identity() -> None:
    g, rec = new_graph()
    add_pod(g, "p1", owners=[ref("u", name="a")])
    add_pod(g, "p2", owners=[ref("u", name="b")])
    rec.clear()
    first = g.get("u").identity  # type: ignore[union-attr]
    assert first.name == "a"
    g.virtual_delete(first)
    node = g.get("u")
    assert node is not None and node.virtual
    assert node.identity.name == "b"
    assert rec.deletes == ["p1"]  # p1 names the identity verified absent
    assert rec.rate_limited == ["u"]  # the alternate identity is checked next
    assert g.absent.has(first)


def test_virtual_delete_of_an_observed_node_under_other_coordinates_keeps_it() -> None:
    g, rec = new_graph()
    add_rs(g, "rs1", name="real")
    add_pod(g, "p1", owners=[ref("rs1", name="real")])
    add_pod(g, "p2", owners=[ref("rs1", name="bogus")])
    rec.clear()
    bogus = Identity("apps/v1", "ReplicaSet", "bogus", "rs1", "default")
    g.virtual_delete(bogus)
    assert "rs1" in g
    assert rec.deletes == ["p2"]
    assert g.absent.has(bogus)


def test_kind_change_updates_identity() -> None:
    g, _ = new_graph()
    o = obj("x")
    g.observe(ADD, "extensions/v1beta1", "ReplicaSet", o)
    g.observe(UPDATE, "apps/v1", "ReplicaSet", obj("x"), o)
    assert g.get("x").identity.api_version == "apps/v1"  # type: ignore[union-attr]


def test_objects_without_uid_are_ignored() -> None:
    g, _ = new_graph()
    g.observe(ADD, "v1", "Pod", {"metadata": {"name": "x"}})
    assert len(g) == 0


def test_partition_and_alternates() -> None:
    g, _ = new_graph()
    add_pod(g, "p1", owners=[ref("u", name="a")])
    add_pod(g, "p2", ns="other", owners=[ref("u", name="a")])
    add_pod(g, "p3", owners=[ref("u", name="c", kind="Deployment")])
    deps = g.dependents_of("u")
    absent = Identity("apps/v1", "ReplicaSet", "a", "u", "default")
    matching, nonmatching = partition_dependents(deps, absent)
    assert [d.uid for d in matching] == ["p1"]
    assert sorted(d.uid for d in nonmatching) == ["p2", "p3"]
    alt = alternate_owner_identity(nonmatching, absent)
    # Ordering is by kind first: Deployment < ReplicaSet, and no alternate follows the absent identity's kind
    # except the one in another namespace ("other" > "default").
    assert alt == Identity("apps/v1", "ReplicaSet", "a", "u", "other")


def test_references_diff() -> None:
    a, b, c = ref("a"), ref("b"), ref("c")
    b2 = dict(b, blockOwnerDeletion=False)
    added, removed, changed = references_diff([a, b], [b2, c])
    assert added == [c] and removed == [a] and changed == [(b, b2)]
    assert references_diff([a], [a]) == ([], [], [])


def test_absent_cache_is_bounded_lru() -> None:
    cache = AbsentOwnerCache(2)
    i1, i2, i3 = (Identity("v1", "Pod", n, n) for n in ("1", "2", "3"))
    cache.add(i1)
    cache.add(i2)
    assert cache.has(i1)  # refreshes i1
    cache.add(i3)
    assert cache.has(i1) and cache.has(i3) and not cache.has(i2)
    assert len(cache) == 2


def test_large_fan_out_is_linear() -> None:
    import time

    g, rec = new_graph()
    rs = add_rs(g, "rs1")
    pods = [add_pod(g, f"p{i}", owners=[ref("rs1")]) for i in range(10_000)]
    g.observe(UPDATE, "apps/v1", "ReplicaSet", obj("rs1", deleting=True, finalizers=["foregroundDeletion"]), rs)
    rec.clear()
    t0 = time.perf_counter()
    for p in pods:
        g.observe(DELETE, "v1", "Pod", p)
    elapsed = time.perf_counter() - t0
    assert rec.deletes == ["rs1"]
    assert elapsed < 2.0, elapsed  # quadratic work would take minutes
