"""Pure allocation rules of the ServiceLB controller (no I/O).

The pool
    :class:`Pool` is one IPv4 CIDR. Its usable addresses are its host addresses
    (:meth:`ipaddress.IPv4Network.hosts`: everything but the network and broadcast
    addresses; a /31 or /32 has no such pair and all of it is usable). A free address
    is handed out lowest first.

Which services are ours
    :func:`handles`: ``spec.type`` is ``LoadBalancer`` and ``spec.loadBalancerClass``
    is unset. A class names another implementation, which owns that service's
    ``status.loadBalancer``.

    An ingress entry is *ours* (:func:`is_ours`) when it has exactly the shape this
    controller writes, ``{"ip": <address of the pool>, "ipMode": "VIP"}`` (``ipMode``
    may be missing: the API server defaults it only for LoadBalancer services). That is
    how a service that stopped being handled (type changed, class set) is recognised as
    still holding one of our addresses, with no bookkeeping beyond the object itself.
    Pools of different implementations must therefore not overlap.

Who holds an address
    There is no allocation bitmap: an address is held by whatever service shows it in
    ``status.loadBalancer.ingress`` (the caller passes the services as it best knows
    them, its own recent writes included). Should two services show the same address
    (a status written by hand, a race between two controller managers), :func:`holders`
    picks one deterministically: a handled service before one that is not, then the
    older, then by ``namespace/name``. The others lose it and are given another.

What a service gets (:func:`decide`)
    * not handled: its ingress entries that are ours are removed (``status.loadBalancer``
      becomes ``{}`` when none remain); anything else is left alone;
    * handled, with ``spec.loadBalancerIP`` (deprecated but honoured): that address if it
      is in the pool and not held by another service; otherwise no address and a failure
      (an address held elsewhere may free up later: :attr:`Failure.retry`);
    * handled, without: the address it holds already, if it is in the pool and it is the
      holder; else the lowest free one; none free is a failure to retry later;
    * a service whose ``spec.ipFamilies`` leaves out IPv4 cannot use an IPv4 pool.

    A handled service's ingress is exactly ``[{"ip": <address>, "ipMode": "VIP"}]``, or
    empty when it gets no address (an address it can no longer keep is removed).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...api.meta import meta_of as _meta
from ...api.meta import spec_of as _spec

Obj = dict[str, Any]

LOAD_BALANCER = "LoadBalancer"
IP_MODE = "VIP"
_OUR_KEYS = frozenset({"ip", "ipMode"})


# -- the pool -----------------------------------------------------------------------------------------------------
def parse_ipv4(value: Any) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``value`` spells, or None (not a string, not an address, IPv6)."""
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class Pool:
    network: ipaddress.IPv4Network

    @classmethod
    def parse(cls, cidr: str) -> Pool:
        """The pool of an IPv4 CIDR such as ``10.96.255.0/24``; ValueError for anything else (IPv6, host bits
        set, garbage)."""
        try:
            net = ipaddress.ip_network(cidr.strip(), strict=True)
        except ValueError as ex:
            raise ValueError(f"invalid load balancer pool {cidr!r}: {ex}") from None
        if not isinstance(net, ipaddress.IPv4Network):
            raise ValueError(f"invalid load balancer pool {cidr!r}: only IPv4 pools are supported")
        return cls(net)

    def __str__(self) -> str:
        return str(self.network)

    @property
    def _bounds(self) -> tuple[int, int]:
        """First and last usable address as integers."""
        first, last = int(self.network.network_address), int(self.network.broadcast_address)
        if self.network.prefixlen < 31:
            first, last = first + 1, last - 1
        return first, last

    @property
    def size(self) -> int:
        first, last = self._bounds
        return last - first + 1

    def contains(self, ip: Any) -> bool:
        """Whether ``ip`` (a string) is a usable address of the pool."""
        addr = parse_ipv4(ip)
        if addr is None:
            return False
        first, last = self._bounds
        return first <= int(addr) <= last

    def first_free(self, taken: Iterable[str]) -> str | None:
        """The lowest usable address not in ``taken`` (canonical address strings), or None."""
        first, last = self._bounds
        used = {int(a) for a in (parse_ipv4(t) for t in taken) if a is not None}
        n = first
        while n <= last:  # at most len(used) + 1 steps
            if n not in used:
                return str(ipaddress.IPv4Address(n))
            n += 1
        return None


# -- services -----------------------------------------------------------------------------------------------------
def service_key(svc: Mapping[str, Any]) -> str:
    md = _meta(svc)
    return f"{md.get('namespace') or ''}/{md.get('name') or ''}"


def handles(svc: Mapping[str, Any]) -> bool:
    """Whether this controller gives the service its address: type LoadBalancer and no loadBalancerClass."""
    spec = _spec(svc)
    return spec.get("type") == LOAD_BALANCER and not spec.get("loadBalancerClass")


def ingress(svc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``status.loadBalancer.ingress`` (its well-formed entries)."""
    lb = (svc.get("status") or {}).get("loadBalancer") or {}
    return [e for e in (lb.get("ingress") if isinstance(lb, Mapping) else None) or [] if isinstance(e, Mapping)]


def is_ours(entry: Mapping[str, Any], pool: Pool) -> bool:
    """Whether an ingress entry has the shape this controller writes, with an address of the pool."""
    return set(entry) <= _OUR_KEYS and entry.get("ipMode", IP_MODE) == IP_MODE and pool.contains(entry.get("ip"))


def canonical(ip: Any) -> str | None:
    addr = parse_ipv4(ip)
    return str(addr) if addr is not None else None


def pool_ips(svc: Mapping[str, Any], pool: Pool) -> list[str]:
    """The pool addresses the service shows in its status (whatever the entry's shape), canonical, in order."""
    out: list[str] = []
    for e in ingress(svc):
        ip = canonical(e.get("ip"))
        if ip is not None and pool.contains(ip) and ip not in out:
            out.append(ip)
    return out


def holders(services: Iterable[Mapping[str, Any]], pool: Pool) -> dict[str, str]:
    """Address -> key of the service holding it, over the given services (see the module docstring for ties)."""
    best: dict[str, tuple[tuple[bool, str, str], str]] = {}
    for svc in services:
        key = service_key(svc)
        rank = (not handles(svc), str(_meta(svc).get("creationTimestamp") or ""), key)
        for ip in pool_ips(svc, pool):
            cur = best.get(ip)
            if cur is None or rank < cur[0]:
                best[ip] = (rank, key)
    return {ip: key for ip, (_rank, key) in best.items()}


# -- decisions ----------------------------------------------------------------------------------------------------
class Problem(enum.Enum):
    EXHAUSTED = "exhausted"
    REQUESTED_IN_USE = "requested-in-use"
    REQUESTED_OUTSIDE_POOL = "requested-outside-pool"
    REQUESTED_INVALID = "requested-invalid"
    FAMILY = "family"


@dataclass(frozen=True)
class Failure:
    """Why a handled service gets no address."""

    problem: Problem
    message: str

    @property
    def retry(self) -> bool:
        """Whether waiting can help (an address may be freed) without any change to the service."""
        return self.problem in (Problem.EXHAUSTED, Problem.REQUESTED_IN_USE)


@dataclass(frozen=True)
class Decision:
    """What to do with one service.

    ``load_balancer`` is the ``status.loadBalancer`` to write, or None when the stored one is already right;
    ``ip`` the address the service ends up with (None: none of ours); ``failure`` why a handled service gets
    none."""

    load_balancer: Obj | None = None
    ip: str | None = None
    failure: Failure | None = None

    @property
    def assigns(self) -> bool:
        """A write that gives the service its address."""
        return self.load_balancer is not None and self.ip is not None


def _with_ingress(svc: Mapping[str, Any], entries: list[Obj]) -> Obj | None:
    """The status.loadBalancer with ``entries`` as its ingress (none: no ``ingress`` key), or None when the stored
    one already says exactly that."""
    lb_old = (svc.get("status") or {}).get("loadBalancer") or {}
    if not isinstance(lb_old, Mapping):
        lb_old = {}
    if ("ingress" in lb_old) == bool(entries) and [dict(e) for e in ingress(svc)] == entries:
        return None
    lb_new: Obj = {k: v for k, v in lb_old.items() if k != "ingress"}
    if entries:
        lb_new["ingress"] = entries
    return lb_new


def release(svc: Mapping[str, Any], pool: Pool) -> Decision:
    """Remove the service's ingress entries that are ours (no write when it has none)."""
    entries = ingress(svc)
    kept = [dict(e) for e in entries if not is_ours(e, pool)]
    if len(kept) == len(entries):
        return Decision()
    return Decision(load_balancer=_with_ingress(svc, kept))


def _fail(svc: Mapping[str, Any], failure: Failure) -> Decision:
    lb = _with_ingress(svc, [])
    return Decision(load_balancer=lb, failure=failure)


def _requested(svc: Mapping[str, Any], key: str, pool: Pool, held: Mapping[str, str]) -> Decision:
    raw = _spec(svc).get("loadBalancerIP")
    ip = canonical(raw)
    if ip is None:
        return _fail(svc, Failure(Problem.REQUESTED_INVALID,
                                  f"requested loadBalancerIP {raw!r} is not an IPv4 address"))
    if not pool.contains(ip):
        return _fail(svc, Failure(Problem.REQUESTED_OUTSIDE_POOL,
                                  f"requested loadBalancerIP {ip} is not in the load balancer pool {pool}"))
    holder = held.get(ip)
    if holder is not None and holder != key:
        return _fail(svc, Failure(Problem.REQUESTED_IN_USE,
                                  f"requested loadBalancerIP {ip} is already in use by service {holder}"))
    return Decision(load_balancer=_with_ingress(svc, [{"ip": ip, "ipMode": IP_MODE}]), ip=ip)


def decide(svc: Mapping[str, Any], pool: Pool, held: Mapping[str, str]) -> Decision:
    """What ``svc`` gets, given ``held`` (:func:`holders` over every service, ``svc`` included)."""
    if not handles(svc):
        return release(svc, pool)
    key = service_key(svc)
    families = _spec(svc).get("ipFamilies")
    if isinstance(families, list) and families and "IPv4" not in families:
        return _fail(svc, Failure(Problem.FAMILY,
                                  f"service IP families {families} do not include IPv4, the family of pool {pool}"))
    if _spec(svc).get("loadBalancerIP"):
        return _requested(svc, key, pool, held)
    mine = [ip for ip in pool_ips(svc, pool) if held.get(ip) == key]
    ip = mine[0] if mine else pool.first_free(ip for ip, holder in held.items() if holder != key)
    if ip is None:
        return _fail(svc, Failure(Problem.EXHAUSTED,
                                  f"load balancer IP pool {pool} is exhausted ({pool.size} addresses, all in use)"))
    return Decision(load_balancer=_with_ingress(svc, [{"ip": ip, "ipMode": IP_MODE}]), ip=ip)
