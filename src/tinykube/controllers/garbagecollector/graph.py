"""The garbage collector's dependency graph: every monitored object as a node, keyed by uid.

A node records the object's identity (apiVersion, kind, namespace, name, uid),
its ``ownerReferences`` as last observed, and its dependents (the nodes whose
ownerReferences name it). The graph is fed informer events (:meth:`Graph.observe`)
and "virtual" delete events the collector produces when the API server says an
object does not exist (:meth:`Graph.virtual_delete`). It is a pure data structure:
it never talks to the API server; it tells the collector what to look at through
two callbacks, ``enqueue_delete(uid, rate_limited)`` (the attempt-to-delete queue)
and ``enqueue_orphan(uid)`` (the attempt-to-orphan queue).

Behaviour follows upstream's GraphBuilder (pkg/controller/garbagecollector):

* A dependent naming an owner uid the graph has not seen creates a *virtual*
  owner node (identity taken from the reference, in the dependent's namespace)
  and queues it, so the collector asks the API server whether it exists. The first
  informer event for that uid turns it into an observed node; dependents that
  named it with other coordinates (or from another namespace) are queued for a
  check.
* A deleted owner queues its dependents and is remembered in the *absent owner
  cache* (a small LRU), so checking thousands of dependents costs no GET each.
* An object whose deletion starts with the ``orphan`` finalizer goes to the
  orphan queue; with ``foregroundDeletion`` it is marked "deleting dependents"
  and it and its dependents go to the delete queue.
* A dependent's reference that stops blocking its owner (removed, or
  ``blockOwnerDeletion`` turned off) and a dependent that goes away both make
  the owner be looked at again.

Work per event is proportional to the object's own ownerReferences, never to the
size of the graph. Each node also keeps the set of dependents whose reference
blocks its deletion (``blockOwnerDeletion: true``), so "may this owner's
foreground deletion finish?" is a set-size check. Because of that set, an owner
being deleted in foreground is re-queued when a dependent goes only once no
blocking dependent is left (upstream re-queues it on every dependent and rescans
them all, quadratic for an owner with 10,000 pods); to keep upstream's guarantee
that every blocking dependent gets deleted, a dependent that starts blocking an
owner already deleting its dependents is queued at once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger("tinykube.controllers.garbagecollector")

FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"

ADD = "add"
UPDATE = "update"
DELETE = "delete"

OwnerRef = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Identity:
    """Where an object lives: the coordinates of an ownerReference plus a namespace ("" = cluster-scoped)."""

    api_version: str
    kind: str
    name: str
    uid: str
    namespace: str = ""

    @classmethod
    def from_ref(cls, ref: OwnerRef, namespace: str = "") -> Identity:
        return cls(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""), str(ref.get("name") or ""),
                   str(ref.get("uid") or ""), namespace)

    def matches(self, ref: OwnerRef) -> bool:
        """Whether ``ref`` names this object with the same apiVersion, kind, name and uid."""
        return (ref.get("uid") == self.uid and ref.get("name") == self.name and ref.get("kind") == self.kind
                and ref.get("apiVersion") == self.api_version)

    def sort_key(self) -> tuple[str, str, str, str, str]:
        # kind and apiVersion first so kinds group together whatever their scope, then namespace, name, uid.
        return (self.kind, self.api_version, self.namespace, self.name, self.uid)

    def __str__(self) -> str:
        return f"[{self.api_version}/{self.kind}, namespace: {self.namespace}, name: {self.name}, uid: {self.uid}]"


def _blocks(ref: OwnerRef) -> bool:
    return ref.get("blockOwnerDeletion") is True


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    md = obj.get("metadata")
    return md if isinstance(md, dict) else {}


def _owner_refs(md: dict[str, Any]) -> list[OwnerRef]:
    refs = md.get("ownerReferences")
    if not isinstance(refs, list):
        return []
    return [r for r in refs if isinstance(r, dict) and r.get("uid")]


def being_deleted(md: dict[str, Any]) -> bool:
    return bool(md.get("deletionTimestamp"))


def has_finalizer(md: dict[str, Any], finalizer: str) -> bool:
    fins = md.get("finalizers")
    return isinstance(fins, list) and finalizer in fins


def _deletion_starts_with(old: dict[str, Any] | None, new_md: dict[str, Any], finalizer: str) -> bool:
    """The object is (now) being deleted with ``finalizer``, and was not in that state before."""
    if not being_deleted(new_md) or not has_finalizer(new_md, finalizer):
        return False
    if old is None:
        return True
    old_md = _meta(old)
    return not being_deleted(old_md) or not has_finalizer(old_md, finalizer)


class Node:
    """One object (or a virtual stand-in for an owner not observed yet)."""

    __slots__ = ("being_deleted", "blocking", "deleting_dependents", "dependents", "identity", "owners", "virtual")

    def __init__(self, identity: Identity, owners: list[OwnerRef] | None = None, virtual: bool = False,
                 being_deleted: bool = False, deleting_dependents: bool = False) -> None:
        self.identity = identity
        self.owners: list[OwnerRef] = owners or []
        self.dependents: dict[str, Node] = {}  # uid -> node
        self.blocking: set[str] = set()  # uids of dependents whose reference to this node blocks its deletion
        self.virtual = virtual
        self.being_deleted = being_deleted
        self.deleting_dependents = deleting_dependents

    @property
    def uid(self) -> str:
        return self.identity.uid

    @property
    def observed(self) -> bool:
        return not self.virtual

    def blocking_dependents(self) -> list[Node]:
        return [self.dependents[u] for u in self.blocking if u in self.dependents]

    def refs_to(self, owner_uid: str) -> list[OwnerRef]:
        return [r for r in self.owners if r.get("uid") == owner_uid]

    def __repr__(self) -> str:
        flags = "".join(f" {f}" for f, on in (("virtual", self.virtual), ("beingDeleted", self.being_deleted),
                                               ("deletingDependents", self.deleting_dependents)) if on)
        return f"<Node {self.identity} owners={len(self.owners)} dependents={len(self.dependents)}{flags}>"


class AbsentOwnerCache:
    """Owners the API server said do not exist (an LRU of identities, as upstream's ReferenceCache)."""

    def __init__(self, size: int = 500) -> None:
        self.size = size
        self._items: OrderedDict[Identity, None] = OrderedDict()

    def add(self, ident: Identity) -> None:
        self._items[ident] = None
        self._items.move_to_end(ident)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def has(self, ident: Identity) -> bool:
        if ident in self._items:
            self._items.move_to_end(ident)
            return True
        return False

    def __len__(self) -> int:
        return len(self._items)


def _noop_delete(uid: str, rate_limited: bool = False) -> None:
    return None


def _noop_orphan(uid: str) -> None:
    return None


def partition_dependents(dependents: Iterable[Node], owner: Identity) -> tuple[list[Node], list[Node]]:
    """Dependents whose reference to ``owner.uid`` matches its coordinates, and those with one that does not.

    A dependent in another namespace than a namespaced owner never matches. A dependent
    with several references to the uid may land in both lists.
    """
    matching: list[Node] = []
    nonmatching: list[Node] = []
    for dep in dependents:
        found_match = found_mismatch = False
        if owner.namespace and dep.identity.namespace != owner.namespace:
            found_mismatch = True
        else:
            for ref in dep.refs_to(owner.uid):
                if owner.matches(ref):
                    found_match = True
                else:
                    found_mismatch = True
        if found_match:
            matching.append(dep)
        if found_mismatch:
            nonmatching.append(dep)
    return matching, nonmatching


def alternate_owner_identity(dependents: Iterable[Node], absent: Identity) -> Identity | None:
    """Another identity the dependents give ``absent.uid``: the first sorting after ``absent``, else the first."""
    cluster_scoped = not absent.namespace
    seen = {absent}
    first: Identity | None = None
    first_following: Identity | None = None
    for dep in dependents:
        for ref in dep.refs_to(absent.uid):
            if absent.matches(ref) and (cluster_scoped or absent.namespace == dep.identity.namespace):
                continue  # exactly the identity already verified absent
            cand = Identity.from_ref(ref, dep.identity.namespace)
            if cluster_scoped and cand.api_version == absent.api_version and cand.kind == absent.kind:
                cand = replace(cand, namespace="")  # that kind is known to be cluster-scoped
            if cand in seen:
                continue
            seen.add(cand)
            if first is None or cand.sort_key() < first.sort_key():
                first = cand
            if absent.sort_key() < cand.sort_key() and (
                    first_following is None or cand.sort_key() < first_following.sort_key()):
                first_following = cand
    return first_following if first_following is not None else first


class Graph:
    """uid -> :class:`Node`, maintained from events; see the module docstring."""

    def __init__(self, enqueue_delete: Callable[[str, bool], None] = _noop_delete,
                 enqueue_orphan: Callable[[str], None] = _noop_orphan, absent_cache_size: int = 500) -> None:
        self.nodes: dict[str, Node] = {}
        self.absent = AbsentOwnerCache(absent_cache_size)
        self._enqueue_delete = enqueue_delete
        self._enqueue_orphan = enqueue_orphan

    # -- reading -----------------------------------------------------------------------------------------
    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    def __contains__(self, uid: object) -> bool:
        return uid in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def dependents_of(self, uid: str) -> list[Node]:
        n = self.nodes.get(uid)
        return list(n.dependents.values()) if n is not None else []

    # -- events ------------------------------------------------------------------------------------------
    def observe(self, event: str, api_version: str, kind: str, obj: dict[str, Any],
                old: dict[str, Any] | None = None) -> None:
        """Apply an informer event (``ADD``, ``UPDATE`` or ``DELETE``) for an object of ``api_version``/``kind``."""
        md = _meta(obj)
        uid = md.get("uid")
        if not uid:
            return
        ident = Identity(api_version, kind, str(md.get("name") or ""), str(uid), str(md.get("namespace") or ""))
        self._process(event, ident, md, old, virtual=False)

    def virtual_delete(self, ident: Identity) -> None:
        """The API server says ``ident`` does not exist (404 or another uid under that name)."""
        self._process(DELETE, ident, {}, None, virtual=True)

    def _process(self, event: str, ident: Identity, md: dict[str, Any], old: dict[str, Any] | None,
                 virtual: bool) -> None:
        existing = self.nodes.get(ident.uid)
        if existing is not None and not virtual and existing.virtual:
            self._observe_virtual(existing, ident)
        if event != DELETE:
            if existing is None:
                deleting = being_deleted(md)
                node = Node(ident, _owner_refs(md), being_deleted=deleting,
                            deleting_dependents=deleting and has_finalizer(md, FOREGROUND_FINALIZER))
                self.nodes[ident.uid] = node
                self._add_dependent_to_owners(node, node.owners)
                self._process_transitions(old, md, node)
            else:
                self._update(existing, ident, md, old, virtual)
            return
        if existing is None:
            log.debug("delete of %s, which is not in the graph", ident)
            return
        self._delete(existing, ident, virtual)

    def _observe_virtual(self, node: Node, observed: Identity) -> None:
        """First informer event for a uid known only from references."""
        if observed != node.identity:
            _, suspicious = partition_dependents(node.dependents.values(), observed)
            for dep in suspicious:
                if observed.namespace and dep.identity.namespace != observed.namespace:
                    log.info("%s references owner %s from another namespace", dep.identity, observed)
                # Their owners may still be solid; the collector finds out.
                self._enqueue_delete(dep.uid, False)
            log.debug("replacing virtual %s with observed %s", node.identity, observed)
            node.identity = observed
        node.virtual = False

    def _update(self, node: Node, ident: Identity, md: dict[str, Any], old: dict[str, Any] | None,
                virtual: bool) -> None:
        if not virtual and (node.identity.api_version != ident.api_version or node.identity.kind != ident.kind):
            node.identity = replace(node.identity, api_version=ident.api_version, kind=ident.kind)
        new_refs = _owner_refs(md)
        if new_refs != node.owners:
            added, removed, changed = references_diff(node.owners, new_refs)
            if added or removed or changed:
                unblocked = [r["uid"] for r in removed if _blocks(r)]
                unblocked += [n["uid"] for o, n in changed if _blocks(o) and not _blocks(n)]
                node.owners = new_refs
                self._add_dependent_to_owners(node, added)
                self._remove_dependent_from_owners(node, removed)
                for _, ref in changed:
                    owner = self.nodes.get(ref["uid"])
                    if owner is not None:
                        self._link(owner, node)
                for uid in unblocked:
                    owner = self.nodes.get(uid)
                    if owner is not None:
                        self._kick_owner(owner)
            else:
                node.owners = new_refs  # same references, other order
        if being_deleted(md):
            node.being_deleted = True
        self._process_transitions(old, md, node)

    def _delete(self, node: Node, ident: Identity, virtual: bool) -> None:
        remove = True
        if virtual:
            if node.virtual:
                # We are not sure of a virtual node's coordinates: dependents may name the uid differently.
                matching, nonmatching = partition_dependents(node.dependents.values(), ident)
                if nonmatching:
                    remove = False
                    if matching:
                        self.absent.add(ident)
                        for dep in matching:
                            self._enqueue_delete(dep.uid, False)
                    if node.identity == ident:
                        alt = alternate_owner_identity(nonmatching, ident)
                        if alt is not None:
                            node.identity = alt
                            self._enqueue_delete(node.uid, True)
            elif node.identity != ident:
                # An observed object is not removed because of a lookup under other coordinates.
                remove = False
                matching, _ = partition_dependents(node.dependents.values(), ident)
                if matching:
                    self.absent.add(ident)
                    for dep in matching:
                        self._enqueue_delete(dep.uid, False)
        if not remove:
            return
        self._remove_node(node)
        if node.dependents:
            self.absent.add(ident)
        for dep in node.dependents.values():
            self._enqueue_delete(dep.uid, False)
        for ref in node.owners:
            owner = self.nodes.get(ref["uid"])
            if owner is not None and owner.deleting_dependents:
                self._kick_owner(owner)

    # -- structure ---------------------------------------------------------------------------------------
    def _link(self, owner: Node, dep: Node) -> None:
        owner.dependents[dep.uid] = dep
        if any(_blocks(r) for r in dep.refs_to(owner.uid)):
            if dep.uid not in owner.blocking:
                owner.blocking.add(dep.uid)
                if owner.deleting_dependents and not dep.deleting_dependents:
                    # A new dependent of an owner that waits for its dependents: it must go too.
                    self._enqueue_delete(dep.uid, False)
        else:
            owner.blocking.discard(dep.uid)

    def _unlink(self, owner: Node, dep: Node) -> None:
        owner.dependents.pop(dep.uid, None)
        owner.blocking.discard(dep.uid)

    def _add_dependent_to_owners(self, node: Node, refs: list[OwnerRef]) -> None:
        suspicious = False
        for ref in refs:
            owner = self.nodes.get(ref["uid"])
            if owner is None:
                owner = Node(Identity.from_ref(ref, node.identity.namespace), virtual=True)
                self.nodes[owner.uid] = owner
                self._link(owner, node)
                # The collector asks the API server whether this owner exists.
                self._enqueue_delete(owner.uid, False)
                continue
            self._link(owner, node)
            if suspicious:
                continue
            owner_ns = owner.identity.namespace
            if owner_ns and owner_ns != node.identity.namespace:
                if owner.observed:
                    log.info("%s references owner %s, which lives in another namespace", node.identity, owner.identity)
                suspicious = True
            elif not owner.identity.matches(ref):
                if owner.observed:
                    log.info("%s references owner %s with other coordinates", node.identity, owner.identity)
                suspicious = True
            elif not owner_ns and owner.virtual and node.identity.namespace:
                # A virtual cluster-scoped owner for a namespaced dependent: it may really be a namespaced
                # kind referenced wrongly (upstream issue 98040); have the references verified.
                suspicious = True
        if suspicious:
            self._enqueue_delete(node.uid, False)

    def _remove_dependent_from_owners(self, node: Node, refs: list[OwnerRef]) -> None:
        for ref in refs:
            owner = self.nodes.get(ref["uid"])
            if owner is not None:
                self._unlink(owner, node)

    def _remove_node(self, node: Node) -> None:
        self.nodes.pop(node.uid, None)
        self._remove_dependent_from_owners(node, node.owners)

    def _kick_owner(self, owner: Node) -> None:
        """Have the collector look at an owner again because one of its dependents stopped blocking it."""
        if owner.deleting_dependents and owner.blocking:
            return  # still blocked; the remaining blocking dependents will kick it when they go
        self._enqueue_delete(owner.uid, False)

    def _process_transitions(self, old: dict[str, Any] | None, md: dict[str, Any], node: Node) -> None:
        if _deletion_starts_with(old, md, ORPHAN_FINALIZER):
            self._enqueue_orphan(node.uid)
            return
        if _deletion_starts_with(old, md, FOREGROUND_FINALIZER):
            node.deleting_dependents = True
            for dep in node.dependents.values():
                self._enqueue_delete(dep.uid, False)
            self._enqueue_delete(node.uid, False)


def references_diff(old: list[OwnerRef], new: list[OwnerRef]
                    ) -> tuple[list[OwnerRef], list[OwnerRef], list[tuple[OwnerRef, OwnerRef]]]:
    """(added, removed, changed as (old, new) pairs) between two ownerReferences lists, by uid."""
    old_by_uid = {r["uid"]: r for r in old}
    added: list[OwnerRef] = []
    changed: list[tuple[OwnerRef, OwnerRef]] = []
    for ref in new:
        prev = old_by_uid.pop(ref["uid"], None)
        if prev is None:
            added.append(ref)
        elif prev != ref:
            changed.append((prev, ref))
    return added, list(old_by_uid.values()), changed
