"""Resource arithmetic for the scheduler: quantities to integers, a pod's effective requests, a node's allocatable.

Everything is kept in the integer units upstream's scheduler uses: CPU in
millicores (``Quantity.MilliValue``, rounded up), every other resource in whole
units (``Quantity.Value``, rounded up). Parsing goes through the API's own
``parse_quantity`` and is memoised, since a cluster repeats the same few strings.

A pod's requests follow upstream's ``resourcehelper.PodRequests``:

* the sum over app containers;
* restartable init containers (sidecars, ``restartPolicy: Always``) run beside the
  app containers, so they are added to that sum — and each later init container
  runs alongside the sidecars started before it;
* the pod needs at least the largest single init-container step (the "init max"
  rule), taken per resource;
* ``spec.overhead`` is added on top.

A missing request falls back to the limit, as API defaulting already does for
stored pods. The *non-zero* requests, used only for scoring, apply upstream's
per-container floor of 100m CPU and 200Mi memory when a container asks for none,
so best-effort pods still spread by count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ..api.validation import parse_quantity

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL = "ephemeral-storage"
PODS = "pods"

DEFAULT_MILLI_CPU_REQUEST = 100  # upstream schedutil.DefaultMilliCPURequest
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024  # upstream schedutil.DefaultMemoryRequest

_THOUSAND = Decimal(1000)


@lru_cache(maxsize=8192)
def _milli(q: str) -> int:
    try:
        return math.ceil(parse_quantity(q) * _THOUSAND)
    except ValueError:
        return 0


@lru_cache(maxsize=8192)
def _value(q: str) -> int:
    try:
        return math.ceil(parse_quantity(q))
    except ValueError:
        return 0


def milli_value(q: Any) -> int:
    """A quantity in thousandths, rounded up (``Quantity.MilliValue``); 0 for anything unparsable."""
    return _milli(q if isinstance(q, str) else str(q))


def value(q: Any) -> int:
    """A quantity in whole units, rounded up (``Quantity.Value``); 0 for anything unparsable."""
    return _value(q if isinstance(q, str) else str(q))


def is_scalar_resource(name: str) -> bool:
    """Extended, hugepages, attachable-volume and prefixed native resources (upstream IsScalarResourceName)."""
    return "/" in name or name.startswith(("hugepages-", "attachable-volumes-"))


def _amount(name: str, q: Any) -> int:
    return milli_value(q) if name == CPU else value(q)


def _container_requests(ctr: dict[str, Any]) -> dict[str, int]:
    res = ctr.get("resources") or {}
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
    return {name: _amount(name, q) for name, q in merged.items() if name != PODS}


def _add(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def _max_into(into: dict[str, int], other: dict[str, int]) -> None:
    for k, v in other.items():
        if v > into.get(k, 0):
            into[k] = v


def _aggregate(spec: dict[str, Any], per_container: Any) -> dict[str, int]:
    reqs: dict[str, int] = {}
    for ctr in spec.get("containers") or []:
        _add(reqs, per_container(ctr))
    sidecars: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for ctr in spec.get("initContainers") or []:
        step = per_container(ctr)
        if ctr.get("restartPolicy") == "Always":
            _add(reqs, step)
            _add(sidecars, step)
            step = dict(sidecars)
        else:
            step = dict(step)
            _add(step, sidecars)
        _max_into(init_max, step)
    _max_into(reqs, init_max)
    return reqs


def _non_zero(ctr: dict[str, Any]) -> dict[str, int]:
    reqs = _container_requests(ctr)
    return {CPU: reqs.get(CPU, DEFAULT_MILLI_CPU_REQUEST), MEMORY: reqs.get(MEMORY, DEFAULT_MEMORY_REQUEST)}


@dataclass(slots=True, frozen=True)
class PodResources:
    """What one pod takes from a node: requests for filtering, non-zero requests for scoring."""

    cpu: int = 0
    memory: int = 0
    ephemeral: int = 0
    scalars: tuple[tuple[str, int], ...] = ()
    nz_cpu: int = DEFAULT_MILLI_CPU_REQUEST
    nz_memory: int = DEFAULT_MEMORY_REQUEST

    @property
    def empty(self) -> bool:
        return not (self.cpu or self.memory or self.ephemeral or self.scalars)


def pod_resources(spec: dict[str, Any]) -> PodResources:
    reqs = _aggregate(spec, _container_requests)
    nz = _aggregate(spec, _non_zero)
    for name, q in (spec.get("overhead") or {}).items():
        amount = _amount(name, q)
        reqs[name] = reqs.get(name, 0) + amount
        if name in nz:
            nz[name] += amount
    scalars = tuple(sorted((k, v) for k, v in reqs.items() if is_scalar_resource(k) and v))
    return PodResources(reqs.get(CPU, 0), reqs.get(MEMORY, 0), reqs.get(EPHEMERAL, 0), scalars,
                        nz.get(CPU, 0), nz.get(MEMORY, 0))


@dataclass(slots=True, frozen=True)
class Allocatable:
    """A node's ``status.allocatable`` in scheduler units."""

    cpu: int = 0
    memory: int = 0
    ephemeral: int = 0
    pods: int = 0
    scalars: dict[str, int] = field(default_factory=dict)


def node_allocatable(node: dict[str, Any]) -> Allocatable:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    scalars = {k: value(q) for k, q in alloc.items() if is_scalar_resource(k)}
    return Allocatable(milli_value(alloc.get(CPU, 0)), value(alloc.get(MEMORY, 0)), value(alloc.get(EPHEMERAL, 0)),
                       value(alloc.get(PODS, 0)), scalars)


HostPort = tuple[str, str, int]  # (host IP, protocol, port)


def host_ports(spec: dict[str, Any]) -> tuple[HostPort, ...]:
    """The host ports a pod binds (app containers and sidecars), as upstream's NodePorts plugin reads them."""
    out: list[HostPort] = []
    ctrs = list(spec.get("containers") or [])
    ctrs += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for ctr in ctrs:
        for p in ctr.get("ports") or []:
            hp = p.get("hostPort") or 0
            if isinstance(hp, int) and hp > 0:
                out.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", hp))
    return tuple(out)
