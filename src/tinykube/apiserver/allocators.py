"""Service IP and NodePort allocation.

Allocations are derived from the stored Services themselves (no separate bitmap
to keep consistent): a new allocation scans the services in the store, which is
an in-memory walk. The first address of the service CIDR is the ``kubernetes``
service's, as upstream reserves it.

Each cluster has its own service CIDR (:class:`ServiceRange`; ``10.96.0.0/16`` unless
the cluster chose another at first start, so that clusters side by side on one machine
never share virtual IPs). When the range is a /20 or larger its last /24 is the
LoadBalancer pool (the ServiceLB controller's): cluster IPs are never taken from it.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from typing import Any

from ..api import errors

SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/16")
NODE_PORT_RANGE = (30000, 32767)


class ServiceRange:
    """A cluster's service CIDR: the ``kubernetes`` service's address, the cluster IP range, the LoadBalancer pool."""

    def __init__(self, cidr: str | ipaddress.IPv4Network = SERVICE_CIDR) -> None:
        self.cidr = ipaddress.IPv4Network(cidr)
        self.first_ip = str(self.cidr.network_address + 1)
        self.lb_pool: ipaddress.IPv4Network | None = None
        if self.cidr.prefixlen <= 20:
            self.lb_pool = ipaddress.IPv4Network(
                (int(self.cidr.broadcast_address) - 255, 24))

    def in_pool(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return self.lb_pool is not None and addr in self.lb_pool


DEFAULT_RANGE = ServiceRange()


def used_ips(services: Iterable[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for s in services:
        spec = s.get("spec") or {}
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                out.add(ip)
    return out


def used_node_ports(services: Iterable[dict[str, Any]]) -> set[int]:
    out: set[int] = set()
    for s in services:
        for p in (s.get("spec") or {}).get("ports") or []:
            if isinstance(p, dict) and isinstance(p.get("nodePort"), int):
                out.add(p["nodePort"])
    return out


def allocate_ip(used: set[str], rng: ServiceRange = DEFAULT_RANGE) -> str:
    # Start from a random offset so freed addresses are not reused at once (as upstream's allocator does).
    cidr = rng.cidr
    hosts = cidr.num_addresses - 2 - (rng.lb_pool.num_addresses if rng.lb_pool is not None else 0)
    start = random.randrange(10, hosts)
    base = int(cidr.network_address)
    for i in range(hosts):
        off = 1 + (start + i) % hosts
        if off == 1:
            continue  # reserved for the kubernetes service
        ip = str(ipaddress.IPv4Address(base + off))
        if ip not in used:
            return ip
    raise errors.ApiError(500, "InternalError", "range is full: no service IP addresses left")


def check_ip(ip: str, used: set[str], field: str, rng: ServiceRange = DEFAULT_RANGE) -> None:
    cidr = rng.cidr
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise errors.ApiError(422, "Invalid", f"{field}: Invalid value: {ip!r}: must be a valid IP address") from None
    if rng.in_pool(addr):
        raise errors.ApiError(
            422, "Invalid",
            f'{field}: Invalid value: "{ip}": failed to allocate IP {ip}: the provided IP ({ip}) is in {rng.lb_pool}, '
            f"the range reserved for LoadBalancer addresses")
    if addr not in cidr:
        raise errors.ApiError(
            422, "Invalid",
            f'{field}: Invalid value: "{ip}": failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}')
    if ip in used:
        raise errors.ApiError(
            422, "Invalid", f'{field}: Invalid value: "{ip}": failed to allocate IP {ip}: provided IP is already allocated')


def allocate_node_port(used: set[int]) -> int:
    lo, hi = NODE_PORT_RANGE
    start = random.randrange(lo, hi + 1)
    n = hi - lo + 1
    for i in range(n):
        p = lo + (start - lo + i) % n
        if p not in used:
            used.add(p)
            return p
    raise errors.ApiError(500, "InternalError", "range is full: no node ports left")
