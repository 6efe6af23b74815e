"""Cluster DNS records as a pure function of Services and Endpoints: ask a name and a type, get an answer.

This module is the whole naming scheme of cluster DNS and does no I/O. The server
(:mod:`tinykube.dns.server`) parses a query, calls :meth:`Records.answer` with the
question's name and type, and renders what comes back; tests call it directly with
objects held in a :class:`MemorySource`.

Design
------
The zone is treated as a tree whose nodes are computed on demand, never stored. For a
name below the zone, :meth:`Records._node` returns either ``None`` (the name does not
exist: NXDOMAIN) or the list of every record owned by that name (an empty list is a
name that exists without data of its own, such as ``svc.<zone>`` or a namespace with
Services: NOERROR with no answers). Type selection is one generic step on top of that
(a CNAME is the answer for every type; ``ANY`` takes every record), so the answer for a type the name lacks is always NODATA, never NXDOMAIN, and a
name that exists for one type exists for all of them.

Names under ``<zone>`` (case-insensitive, as every comparison here):

* ``<zone>``: SOA and NS (``ns.dns.<zone>``); ``dns-version.<zone>``: TXT with the schema
  version; ``ns.dns.<zone>``: A/AAAA of the configured name server addresses.
* ``svc.<zone>``, ``pod.<zone>``: exist, no data; ``<ns>.svc.<zone>`` exists when the
  namespace has at least one Service (so nothing exists below a name that is NXDOMAIN).
* ``<svc>.<ns>.svc.<zone>``: for ClusterIP/NodePort/LoadBalancer Services the cluster IPs
  (A and/or AAAA); headless, the published endpoint addresses (NXDOMAIN when there are
  none, as the specification says); ExternalName, a CNAME to ``spec.externalName``, which
  an address query follows: in the zone here, outside it by the server (``Answer.chase``).
* ``<ep>.<svc>.<ns>.svc.<zone>``: A/AAAA of the endpoint addresses whose name is ``<ep>``:
  the address's ``hostname``, else its IP with dashes (``10-244-0-5``, ``fd00--5``).
* ``_<proto>.<svc>.<ns>.svc.<zone>``: exists when some SRV record lies below it;
  ``_<port>._<proto>.<svc>.<ns>.svc.<zone>``: SRV per named port (below).
* ``<a-b-c-d>.<ns>.pod.<zone>``: A ``a.b.c.d``, without looking for the pod ("pods
  insecure"); a dashed IPv6 address gives AAAA.

*Published* endpoint addresses are ``subsets[].addresses``, plus ``notReadyAddresses``
when the Service sets ``publishNotReadyAddresses`` (or the older annotation
``service.alpha.kubernetes.io/tolerate-unready-endpoints: "true"``). Endpoint names and
PTR records exist for every Service's endpoints, not only headless ones, so that each
PTR target and each SRV target resolves forward.

SRV records have priority 0 and weight ``100 // n`` (at least 1) for the ``n`` records
of the answer, so equal endpoints share traffic equally as RFC 2782 clients compute it.
A Service with cluster IPs gives one record per matching named Service port, target
``<svc>.<ns>.svc.<zone>`` and the Service's ``port``; a headless Service gives one per
published address and matching named port of its Endpoints subsets, target the
address's endpoint name and the Endpoints ``port`` (the target port); an ExternalName
Service's named ports point at the external name. The A/AAAA records of in-zone SRV
targets go to the additional section.

Reverse names (``d.c.b.a.in-addr.arpa``, nibble ``ip6.arpa``) of Service cluster IPs and
published endpoint addresses answer PTR to the names above. Every other name, including
reverse names of addresses the cluster does not know, is outside the zone:
:attr:`Answer.forward` tells the server to ask the host's resolver.

Negative answers (NXDOMAIN and NODATA) carry the zone's SOA in the authority section,
whose TTL and minimum are the negative TTL.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]

TTL = 5
NEGATIVE_TTL = 30
FORWARD_TTL = 30
SCHEMA_VERSION = "1.1.0"
TOLERATE_UNREADY = "service.alpha.kubernetes.io/tolerate-unready-endpoints"
_ADDRESS_TYPES = ("A", "AAAA")


@dataclass(frozen=True)
class Record:
    """One resource record: absolute owner name (with its final dot), type, TTL and data in presentation format."""

    name: str
    rtype: str
    ttl: int
    data: str


@dataclass
class Answer:
    rcode: str = "NOERROR"  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    authoritative: bool = False
    forward: bool = False  # not ours: the server answers from the host's resolver
    chase: str | None = None  # the answer ends in a CNAME out of the zone: the server resolves this name too


class Source(Protocol):
    """What :class:`Records` reads. Objects are the API's JSON (Services and core/v1 Endpoints), never changed."""

    def service(self, ns: str, name: str) -> Obj | None: ...

    def endpoints(self, ns: str, name: str) -> Obj | None: ...

    def has_services(self, ns: str) -> bool: ...

    def services_with_ip(self, ip: str) -> Iterable[Obj]:
        """Services one of whose cluster IPs is ``ip`` (in canonical text form)."""
        ...

    def endpoints_with_ip(self, ip: str) -> Iterable[Obj]:
        """Endpoints objects with ``ip`` among their addresses, ready or not."""
        ...

    def serial(self) -> int: ...


def service_ips(svc: Obj) -> list[str]:
    """The canonical cluster IPs of a Service (none for headless and ExternalName Services)."""
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    out: list[str] = []
    for ip in ips:
        c = _canonical(ip)
        if c is not None and c not in out:
            out.append(c)
    return out


def is_headless(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") == "None"


def endpoint_ips(eps: Obj) -> list[str]:
    """Every address of an Endpoints object, ready or not, canonical (what the reverse index is keyed on)."""
    out: list[str] = []
    for subset in eps.get("subsets") or []:
        for key in ("addresses", "notReadyAddresses"):
            for addr in subset.get(key) or []:
                c = _canonical(addr.get("ip") or "")
                if c is not None and c not in out:
                    out.append(c)
    return out


def endpoint_name(addr: Obj) -> str:
    """An endpoint address's name below its Service: the hostname, else the IP with dashes for dots/colons."""
    host = addr.get("hostname")
    if host:
        return str(host).lower()
    ip = _canonical(addr.get("ip") or "") or str(addr.get("ip") or "")
    return ip.replace(".", "-").replace(":", "-")


def reverse_ip(qname: str) -> str | None:
    """The address a full ``in-addr.arpa`` / ``ip6.arpa`` name stands for (canonical), else None."""
    labels = _labels(qname)
    if labels[-2:] == ["in-addr", "arpa"] and len(labels) == 6:
        return _canonical(".".join(reversed(labels[:4])))
    if labels[-2:] == ["ip6", "arpa"] and len(labels) == 34:
        nibbles = labels[:32]
        if all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles):
            h = "".join(reversed(nibbles))
            return _canonical(":".join(h[i:i + 4] for i in range(0, 32, 4)))
    return None


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


class MemorySource:
    """A :class:`Source` over fixed lists of objects, for tests and tools."""

    def __init__(self, services: Iterable[Obj] = (), endpoints: Iterable[Obj] = (), serial: int = 1) -> None:
        self._services = {_key(o): o for o in services}
        self._endpoints = {_key(o): o for o in endpoints}
        self._namespaces = {ns for ns, _ in self._services}
        self._svc_by_ip: dict[str, list[Obj]] = {}
        self._eps_by_ip: dict[str, list[Obj]] = {}
        for svc in self._services.values():
            for ip in service_ips(svc):
                self._svc_by_ip.setdefault(ip, []).append(svc)
        for eps in self._endpoints.values():
            for ip in endpoint_ips(eps):
                self._eps_by_ip.setdefault(ip, []).append(eps)
        self._serial = serial

    def service(self, ns: str, name: str) -> Obj | None:
        return self._services.get((ns, name))

    def endpoints(self, ns: str, name: str) -> Obj | None:
        return self._endpoints.get((ns, name))

    def has_services(self, ns: str) -> bool:
        return ns in self._namespaces

    def services_with_ip(self, ip: str) -> list[Obj]:
        return self._svc_by_ip.get(ip, [])

    def endpoints_with_ip(self, ip: str) -> list[Obj]:
        return self._eps_by_ip.get(ip, [])

    def serial(self) -> int:
        return self._serial


@dataclass(frozen=True)
class Config:
    zone: str = "cluster.local"
    ttl: int = TTL
    negative_ttl: int = NEGATIVE_TTL
    nameservers: tuple[str, ...] = ()  # addresses answered for ns.dns.<zone>
    forward_ttl: int = FORWARD_TTL  # answers from the host's resolver, whose own TTLs getaddrinfo does not tell


class Records:
    """Answers questions about one zone from a :class:`Source`."""

    def __init__(self, source: Source, config: Config | None = None) -> None:
        self.source = source
        self.config = config or Config()
        self.zone = self.config.zone.lower().strip(".")
        if not self.zone or "\\" in self.zone:
            raise ValueError(f"invalid cluster DNS zone {self.config.zone!r}")
        self._zone_labels = self.zone.split(".")

    # -- the question ---------------------------------------------------------------------------------------
    def answer(self, qname: str, qtype: str, depth: int = 0) -> Answer:
        """Answer ``qname`` (presentation format, any case) for ``qtype`` (``"A"``, ``"SRV"``, ``"ANY"``, ...)."""
        owner = qname if qname.endswith(".") else qname + "."
        qtype = qtype.upper()
        labels = _labels(qname)
        rel = self._relative(labels)
        if rel is None:
            ip = reverse_ip(qname)
            ptrs = self._ptr(owner, ip) if ip is not None else []
            if not ptrs:
                return Answer(forward=True)
            picked = ptrs if qtype in ("PTR", "ANY") else []
            return Answer(answer=picked, authoritative=True)
        rrs = self._node(rel, owner)
        if rrs is None:
            return Answer("NXDOMAIN", authority=[self.soa()], authoritative=True)
        picked = self._pick(rrs, qtype)
        if not picked:
            return Answer(authority=[self.soa()], authoritative=True)
        if len(picked) == 1 and picked[0].rtype == "CNAME" and qtype not in ("CNAME", "ANY") and depth < 8:
            # An ExternalName: follow the alias as a recursive resolver would, since pods' stub resolvers do not —
            # in the zone from these records, outside it through the host's resolver (``chase``).
            target = picked[0].data
            if self._relative(_labels(target)) is None:
                return Answer(answer=picked, authoritative=True, chase=target)
            more = self.answer(target, qtype, depth + 1)
            return Answer(more.rcode, answer=picked + more.answer, authority=more.authority,
                          additional=more.additional, authoritative=True, chase=more.chase)
        return Answer(answer=picked, additional=self._additional(picked), authoritative=True)

    def soa(self) -> Record:
        z = self.zone + "."
        neg = self.config.negative_ttl
        serial = self.source.serial() % 2**32
        return Record(z, "SOA", neg, f"ns.dns.{z} hostmaster.{z} {serial} 7200 1800 86400 {neg}")

    # -- names ----------------------------------------------------------------------------------------------
    def _relative(self, labels: list[str]) -> list[str] | None:
        n = len(self._zone_labels)
        if len(labels) < n or labels[-n:] != self._zone_labels:
            return None
        return labels[:len(labels) - n]

    def _fqdn(self, *labels: str) -> str:
        return ".".join((*labels, self.zone)) + "."

    def _node(self, rel: list[str], owner: str) -> list[Record] | None:
        ttl = self.config.ttl
        if not rel:
            soa = self.soa()
            return [Record(owner, "SOA", ttl, soa.data), Record(owner, "NS", ttl, self._fqdn("ns", "dns"))]
        if any(not label or "\\" in label for label in rel):
            return None  # names with escaped characters never match a Kubernetes name
        top = rel[-1]
        if len(rel) == 1:
            if top == "dns-version":
                return [Record(owner, "TXT", ttl, f'"{SCHEMA_VERSION}"')]
            return [] if top in ("svc", "pod", "dns") else None
        if top == "dns":
            if rel == ["ns", "dns"]:
                return [r for ip in self.config.nameservers if (r := _address(owner, ttl, ip)) is not None]
            return None
        if top == "pod":
            return self._pod(rel[:-1], owner)
        if top == "svc":
            return self._svc(rel[:-1], owner)
        return None

    def _pod(self, rel: list[str], owner: str) -> list[Record] | None:
        if len(rel) == 1:
            return []  # <ns>.pod.<zone>: in insecure mode every namespace has pod names below it
        if len(rel) != 2:
            return None
        label = rel[0]
        ip = None
        if label.count("-") == 3:
            ip = _canonical(label.replace("-", "."), version=4)
        if ip is None and "-" in label:
            ip = _canonical(label.replace("-", ":"), version=6)
        if ip is None:
            return None
        rec = _address(owner, self.config.ttl, ip)
        return [rec] if rec is not None else None

    def _svc(self, rel: list[str], owner: str) -> list[Record] | None:
        if len(rel) == 1:
            return [] if self.source.has_services(rel[0]) else None
        if len(rel) > 4:
            return None
        ns, name = rel[-1], rel[-2]
        svc = self.source.service(ns, name)
        if svc is None:
            return None
        if len(rel) == 2:
            return self._service_records(svc, ns, name, owner)
        if len(rel) == 3:
            if rel[0].startswith("_"):  # _<proto>.<svc>: exists when an SRV record lies below it
                return [] if self._srv(svc, ns, name, None, rel[0][1:], owner) else None
            if (svc.get("spec") or {}).get("type") == "ExternalName":
                return None
            return self._endpoint_records(svc, rel[0], owner) or None
        if not (rel[0].startswith("_") and rel[1].startswith("_")):
            return None
        return self._srv(svc, ns, name, rel[0][1:], rel[1][1:], owner) or None

    def _service_records(self, svc: Obj, ns: str, name: str, owner: str) -> list[Record] | None:
        spec = svc.get("spec") or {}
        ttl = self.config.ttl
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").strip(".")
            return [Record(owner, "CNAME", ttl, target + ".")] if target else []
        if is_headless(svc):
            recs = _dedup(_address(owner, ttl, ip) for _, ip, _ in self._published(svc))
            return recs or None  # a headless Service without published endpoints does not resolve
        return _dedup(_address(owner, ttl, ip) for ip in service_ips(svc))

    def _endpoint_records(self, svc: Obj, ep_name: str, owner: str) -> list[Record]:
        ttl = self.config.ttl
        return _dedup(_address(owner, ttl, ip) for addr, ip, _ in self._published(svc)
                      if endpoint_name(addr) == ep_name)

    def _srv(self, svc: Obj, ns: str, name: str, port: str | None, proto: str, owner: str) -> list[Record]:
        """SRV records of ``_<port>._<proto>`` below a Service (any named port when ``port`` is None)."""
        spec = svc.get("spec") or {}
        found: list[tuple[int, str]] = []  # (port number, target)
        if is_headless(svc):
            for addr, _, ports in self._published(svc):
                target = self._fqdn(endpoint_name(addr), name, ns, "svc")
                found.extend((int(p.get("port") or 0), target) for p in ports if _port_matches(p, port, proto))
        else:
            if spec.get("type") == "ExternalName":
                target = str(spec.get("externalName") or "").strip(".") + "."
            else:
                target = self._fqdn(name, ns, "svc")
            if target != ".":
                found.extend((int(p.get("port") or 0), target)
                             for p in spec.get("ports") or [] if _port_matches(p, port, proto))
        found = list(dict.fromkeys(found))
        weight = max(1, 100 // len(found)) if found else 0
        return [Record(owner, "SRV", self.config.ttl, f"0 {weight} {num} {target}") for num, target in found]

    def _published(self, svc: Obj) -> Iterator[tuple[Obj, str, list[Obj]]]:
        """(address, canonical IP, subset ports) of every published endpoint address of a Service."""
        md = svc.get("metadata") or {}
        eps = self.source.endpoints(md.get("namespace") or "", md.get("name") or "")
        if eps is None:
            return
        keys = ["addresses"]
        if _publishes_not_ready(svc):
            keys.append("notReadyAddresses")
        for subset in eps.get("subsets") or []:
            ports = subset.get("ports") or []
            for key in keys:
                for addr in subset.get(key) or []:
                    ip = _canonical(addr.get("ip") or "")
                    if ip is not None:
                        yield addr, ip, ports

    def _ptr(self, owner: str, ip: str) -> list[Record]:
        ttl = self.config.ttl
        targets: list[str] = []
        for svc in self.source.services_with_ip(ip):
            md = svc.get("metadata") or {}
            targets.append(self._fqdn(md.get("name") or "", md.get("namespace") or "", "svc"))
        for eps in self.source.endpoints_with_ip(ip):
            md = eps.get("metadata") or {}
            ns, name = md.get("namespace") or "", md.get("name") or ""
            backing = self.source.service(ns, name)
            if backing is None or (backing.get("spec") or {}).get("type") == "ExternalName":
                continue
            for addr, aip, _ in self._published(backing):
                if aip == ip:
                    targets.append(self._fqdn(endpoint_name(addr), name, ns, "svc"))
        return [Record(owner, "PTR", ttl, t) for t in sorted(set(targets))]

    # -- selection ------------------------------------------------------------------------------------------
    def _pick(self, rrs: list[Record], qtype: str) -> list[Record]:
        cname = [r for r in rrs if r.rtype == "CNAME"]
        if cname and qtype != "CNAME":
            return cname
        return [r for r in rrs if qtype == "ANY" or r.rtype == qtype]

    def _additional(self, answer: list[Record]) -> list[Record]:
        """A/AAAA records of the in-zone names that SRV and NS answers point at."""
        ttl = self.config.ttl
        extra: list[Record | None] = []
        names_of: dict[tuple[str, str], dict[str, list[str]]] = {}  # per Service: endpoint name -> addresses
        for r in answer:
            if r.rtype == "SRV":
                target = r.data.split()[-1]
            elif r.rtype == "NS":
                target = r.data
            else:
                continue
            rel = self._relative(_labels(target))
            if rel is None:
                continue
            if len(rel) == 4 and rel[-1] == "svc" and not rel[0].startswith("_"):
                # <ep>.<svc>.<ns>.svc: look the Service's endpoints up once, not once per SRV record.
                key = (rel[2], rel[1])
                names = names_of.get(key)
                if names is None:
                    names = names_of[key] = {}
                    svc = self.source.service(*key)
                    if svc is not None and (svc.get("spec") or {}).get("type") != "ExternalName":
                        for addr, ip, _ in self._published(svc):
                            names.setdefault(endpoint_name(addr), []).append(ip)
                extra.extend(_address(target, ttl, ip) for ip in names.get(rel[0], ()))
            else:
                extra.extend(x for x in self._node(rel, target) or [] if x.rtype in _ADDRESS_TYPES)
        return _dedup(extra)


def _labels(qname: str) -> list[str]:
    """Lower-cased labels of a presentation-format name; escapes (``\\.``, ``\\032``) stay in their label."""
    if "\\" not in qname:
        name = qname.lower().rstrip(".")
        return name.split(".") if name else []
    labels: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(qname):
        c = qname[i]
        if c == "\\":
            width = 4 if qname[i + 1:i + 4].isdigit() else 2
            cur.append(qname[i:i + width])
            i += width
            continue
        if c == ".":
            labels.append("".join(cur).lower())
            cur = []
        else:
            cur.append(c)
        i += 1
    if cur:
        labels.append("".join(cur).lower())
    return labels


def _key(obj: Obj) -> tuple[str, str]:
    md = obj.get("metadata") or {}
    return md.get("namespace") or "", md.get("name") or ""


def _canonical(ip: object, version: int | None = None) -> str | None:
    """The address in canonical text form, or None when it is not an address."""
    return _canonical_text(ip, version) if isinstance(ip, str) else None


@functools.lru_cache(maxsize=65536)  # every query walks its Service's addresses
def _canonical_text(ip: str, version: int | None) -> str | None:
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if version is not None and a.version != version:
        return None
    return str(a)


def _address(owner: str, ttl: int, ip: str) -> Record | None:
    c = _canonical(ip)
    if c is None:
        return None
    return Record(owner, "A" if ":" not in c else "AAAA", ttl, c)


def _dedup(recs: Iterable[Record | None]) -> list[Record]:
    return list(dict.fromkeys(r for r in recs if r is not None))


def _port_matches(p: Obj, port: str | None, proto: str) -> bool:
    pname = str(p.get("name") or "").lower()
    if not pname:
        return False  # unnamed ports have no SRV records
    return (port is None or pname == port) and str(p.get("protocol") or "TCP").lower() == proto


def _publishes_not_ready(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    annotations = (svc.get("metadata") or {}).get("annotations") or {}
    return bool(spec.get("publishNotReadyAddresses")) or str(annotations.get(TOLERATE_UNREADY, "")).lower() == "true"
