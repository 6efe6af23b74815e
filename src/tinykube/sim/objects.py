"""The API objects a simulated kubelet writes about its node: the Node (with its status) and its Lease.

Shapes follow what a real kubelet registers: the well-known labels
(``kubernetes.io/hostname``, ``kubernetes.io/os``, ``kubernetes.io/arch`` and
their ``beta.`` twins) plus ``type=simulated`` and ``node.tinykube.io/simulated=true``
to tell simulated nodes apart; capacity and allocatable; the four conditions
(``MemoryPressure``/``DiskPressure``/``PIDPressure`` False, ``Ready`` True with the
kubelet's reasons and messages); InternalIP and Hostname addresses; ``nodeInfo``;
``spec.podCIDR(s)``; and a ``kube-node-lease`` Lease held by the node.

Conditions keep their ``lastTransitionTime`` across heartbeats while their status
stays the same, as the kubelet's setters do; only ``lastHeartbeatTime`` moves.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..api.meta import now_micro, now_rfc3339

KUBELET_VERSION = "v1.32.0"
RUNTIME_VERSION = "tinykube-sim://0.1"
OS_IMAGE = "Tinykube Simulated Linux"
KERNEL_VERSION = "6.1.0-tinykube-sim"
KUBELET_PORT = 10250
LEASE_NAMESPACE = "kube-node-lease"
SIMULATED_LABEL = "node.tinykube.io/simulated"

DEFAULT_CAPACITY: dict[str, str] = {
    "cpu": "32",
    "ephemeral-storage": "100Gi",
    "hugepages-1Gi": "0",
    "hugepages-2Mi": "0",
    "memory": "256Gi",
    "pods": "110",
}

# (type, status, reason, message), in the order the kubelet reports them.
NODE_CONDITIONS: tuple[tuple[str, str, str, str], ...] = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)

_NS = uuid.UUID("6b1c9e0e-2f7a-4c41-9d8e-3b7f0a5c2d11")


def node_labels(name: str, simulated: bool = True, arch: str = "amd64") -> dict[str, str]:
    labels = {
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    if simulated:
        labels.update({SIMULATED_LABEL: "true", "type": "simulated"})
    return labels


def node_status(name: str, ip: str, capacity: dict[str, str], now: float,
                old: dict[str, Any] | None = None, node_info: dict[str, str] | None = None,
                port: int = KUBELET_PORT, allocatable: dict[str, str] | None = None) -> dict[str, Any]:
    """The node's status at ``now``: heartbeats now, transition times kept from ``old`` where unchanged."""
    stamp = now_rfc3339(now)
    prev = {c.get("type"): c for c in (old or {}).get("conditions") or [] if isinstance(c, dict)}
    conds = []
    for type_, status, reason, message in NODE_CONDITIONS:
        p = prev.get(type_)
        since = p.get("lastTransitionTime") if p is not None and p.get("status") == status else None
        conds.append({"type": type_, "status": status, "lastHeartbeatTime": stamp,
                      "lastTransitionTime": since or stamp, "reason": reason, "message": message})
    out: dict[str, Any] = dict(old or {})
    out.update({
        "capacity": dict(capacity),
        "allocatable": dict(allocatable or capacity),
        "conditions": conds,
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": node_info or {
            "machineID": uuid.uuid5(_NS, "machine/" + name).hex,
            "systemUUID": str(uuid.uuid5(_NS, "system/" + name)),
            "bootID": str(uuid.uuid5(_NS, "boot/" + name)),
            "kernelVersion": KERNEL_VERSION,
            "osImage": OS_IMAGE,
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
    return out


def node_object(name: str, ip: str, cidr: str, capacity: dict[str, str], now: float,
                simulated: bool = True, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(name, simulated),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": node_status(name, ip, capacity, now, **status),
    }


def lease_object(name: str, node_uid: str, duration: int, now: float) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        md["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": md,
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": now_micro(now)},
    }
