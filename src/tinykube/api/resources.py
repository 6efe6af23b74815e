"""The resources tinykube serves, described once.

Discovery, routing, OpenAPI paths, storage keys and printing all read this table,
so adding a kind is one entry here (plus its defaults, validation and columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", "binding", "eviction", "log", "exec", "attach", ...
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    # Where the object is stored; resources that are views of another share it (events.k8s.io -> core events).
    storage: str = ""
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def storage_key(self) -> str:
        """Prefix of this resource's keys in the store (without the trailing slash)."""
        return "/registry/" + (self.storage or (f"{self.group}/{self.plural}" if self.group else self.plural))

    @property
    def qualified(self) -> str:
        """``deployments.apps`` style name used in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_key}/{namespace}/{name}"
        return f"{self.storage_key}/{name}"

    def prefix(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"{self.storage_key}/{namespace}/"
        return f"{self.storage_key}/"


R = Resource

RESOURCES: list[Resource] = [
    R("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), (), ("status", "finalize"),
      ("create", "delete", "get", "list", "patch", "update", "watch")),
    R("", "v1", "Pod", "pods", "pod", True, ("po",), ("all",),
      ("status", "binding", "eviction", "log", "exec", "attach", "portforward")),
    R("", "v1", "Service", "services", "service", True, ("svc",), ("all",), ("status",),
      ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    R("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    R("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    R("", "v1", "Secret", "secrets", "secret", True),
    R("", "v1", "Event", "events", "event", True, ("ev",)),
    R("", "v1", "Node", "nodes", "node", False, ("no",), (), ("status",)),
    R("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",)),
    R("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",), ("all",), ("status", "scale")),
    R("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",), ("all",), ("status", "scale")),
    R("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    R("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True),
    R("events.k8s.io", "v1", "Event", "events", "event", True, ("ev",), storage="events"),
]

# Group preference order for discovery (core first, as kube-apiserver lists them).
GROUP_ORDER = ["", "apps", "events.k8s.io", "coordination.k8s.io", "discovery.k8s.io"]

_BY_GVR: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_GVK: dict[tuple[str, str, str], Resource] = {}
for _r in RESOURCES:
    _BY_GVK.setdefault((_r.group, _r.version, _r.kind), _r)


def lookup(group: str, version: str, plural: str) -> Resource | None:
    return _BY_GVR.get((group, version, plural))


def must(group: str, version: str, plural: str) -> Resource:
    """A resource that is known to exist (module-level constants of controllers and clients)."""
    return _BY_GVR[(group, version, plural)]


# The namespaces kube-apiserver creates and keeps (its system-namespaces controller re-creates them when deleted).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

PODS = must("", "v1", "pods")
NODES = must("", "v1", "nodes")
EVENTS = must("", "v1", "events")
DEPLOYMENTS = must("apps", "v1", "deployments")
REPLICASETS = must("apps", "v1", "replicasets")


def by_kind(group: str, version: str, kind: str) -> Resource | None:
    return _BY_GVK.get((group, version, kind))


def by_api_version(api_version: str, kind: str) -> Resource | None:
    group, _, version = api_version.rpartition("/")
    return _BY_GVK.get((group, version, kind))


def groups() -> dict[str, list[Resource]]:
    """Resources by group, in discovery order."""
    out: dict[str, list[Resource]] = {g: [] for g in GROUP_ORDER}
    for r in RESOURCES:
        out.setdefault(r.group, []).append(r)
    return out


def namespaced_resources() -> list[Resource]:
    """Namespaced resources that own their storage (what a namespace deletion must clean up)."""
    return [r for r in RESOURCES if r.namespaced and not r.storage]


def split_subresource(path: str) -> tuple[str, str]:
    """``deployments/scale`` -> (``deployments``, ``scale``)."""
    a, _, b = path.partition("/")
    return a, b
