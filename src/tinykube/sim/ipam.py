"""Addresses of simulated nodes: node IPs, pod CIDRs and the pod IPs handed out from them.

Nothing routes these addresses; they exist so that statuses look like a real
cluster's (``kubectl get pods -o wide``, endpoints). Every value depends only on
the node's index, never on how many nodes there are, so a later ``up`` with a
different count agrees with the nodes it adopts.

* Node ``i`` has InternalIP ``172.30.0.0 + i + 1`` (``172.30.0.1``, ``172.30.0.2`` ...,
  running on into ``172.31.x.y``).
* Node ``i`` has pod CIDR ``10.244.<i>.0/24`` (from the ``pod_cidr_base``'s network
  address). Past 256 nodes the /24s go on beyond the base /16 (``10.245.0.0/24`` ...),
  widening the range rather than shrinking the per-node blocks.
* Pod IPs come from the node's CIDR, skipping the network address, ``.1`` (the
  bridge's, by convention) and the broadcast address; like host-local IPAM the
  allocator moves on from the last address it gave out, so a freed address is not
  handed out again at once.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

NODE_IP_BASE = "172.30.0.0"
POD_CIDR_BASE = "10.244.0.0/16"
_NODE_IP_LAST = IPv4Address("172.31.255.254")


def node_ip(index: int, base: str = NODE_IP_BASE) -> str:
    addr = IPv4Address(base) + index + 1
    if base == NODE_IP_BASE and addr > _NODE_IP_LAST:
        raise ValueError(f"too many simulated nodes for node addresses from {base}")
    return str(addr)


def pod_cidr(index: int, base: str = POD_CIDR_BASE) -> str:
    """The /24 of node ``index``: consecutive /24s from the base's network address."""
    first = int(IPv4Network(base, strict=False).network_address)
    start = first + index * 256
    if start + 255 > 0xFFFFFFFF:
        raise ValueError(f"too many simulated nodes for pod CIDRs from {base}")
    return f"{IPv4Address(start)}/24"


class PodAddresses:
    """The pod IPs of one node: which are taken, and the next free one."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self._first = 0
        self._size = 0
        self._cursor = 0

    @property
    def ready(self) -> bool:
        return self._size > 0

    def set_cidr(self, cidr: str) -> None:
        net = IPv4Network(cidr, strict=False)
        # Usable: network + 2 .. broadcast - 1 (a /31 or /32 has no room: nothing is usable).
        self._first = int(net.network_address) + 2
        self._size = max(0, net.num_addresses - 3)
        self._cursor = 0

    def reserve(self, ip: str) -> None:
        self.used.add(ip)

    def release(self, ip: str) -> None:
        self.used.discard(ip)

    def allocate(self) -> str | None:
        """A free address, or None when the CIDR is full (or not known yet)."""
        for _ in range(self._size):
            ip = str(IPv4Address(self._first + self._cursor))
            self._cursor = (self._cursor + 1) % self._size
            if ip not in self.used:
                self.used.add(ip)
                return ip
        return None
