"""Service traffic as one nftables table: a pure function from Services and their endpoints to ``nft -f`` text.

Nothing here touches the system. :func:`service_ports` reads Service objects and their
EndpointSlices (or v1 Endpoints) into :class:`ServicePort` values; :func:`ruleset` renders
those into the complete text of one ``table ip <name>``, preceded by ``add table`` and
``delete table`` so that loading the file replaces the previous table in one kernel
transaction: there is never a moment with half a ruleset, or with none.

Each cluster on a host owns exactly one table, named by the caller (``tinykube-<tag>``);
every chain, set and map lives inside it and its base chains hook netfilter directly, so
two clusters never see or change each other's rules, nor anything else on the host.

What the table holds (the structure follows kube-proxy's nftables mode; the names are ours)
-------------------------------------------------------------------------------------------
Dispatch is by lookup, not by a list of rules, so its cost does not grow with the number
of Services:

* ``vips`` — a verdict map ``address . protocol . port`` → ``goto`` the chain of one
  Service port, for every ClusterIP and external IP whose port has endpoints.
* ``node-ips`` — the addresses on which NodePorts answer: the node's IPs, plus ``127.0.0.1``
  when localhost NodePorts are on. ``node-ports`` — ``protocol . port`` → that port's chain.
* ``nat-prerouting`` / ``nat-output`` (nat hooks at ``dstnat``) both jump to ``dispatch``,
  which consults the two maps: packets from pods and from outside arrive through
  prerouting, packets of host processes through output.

Per Service port (``svc-<hash>``): marks the packet for masquerading when its source is
outside the pod CIDR (or always, with ``masquerade_all``), sends a client that has an
affinity entry to the same endpoint again, then picks an endpoint uniformly at random with
``numgen random mod N vmap { 0 : goto ep-…, … }`` (a plain ``goto`` when N is 1).
Traffic that arrives from outside the Service's virtual address — NodePorts and external
IPs — first passes ``ext-<hash>``, which marks it for masquerading in any case (the
``Cluster`` external traffic policy), then continues into the same ``svc-<hash>``.

Per endpoint (``ep-<hash>``): marks hairpin traffic (the source is the endpoint itself:
a pod reaching itself through its own Service; without SNAT it would answer itself
directly and the client would drop the reply), refreshes the affinity entry, and DNATs to
``ip:port``.

Masquerading is two steps, so the decision is taken where the Service is known and the
address rewritten where the output interface is: ``mark-for-masquerade`` ORs a mark bit
into the packet mark; ``nat-postrouting`` (``srcnat``) returns for unmarked packets, clears
the bit and masquerades (``fully-random`` ports). Only the first packet of a connection
goes through nat chains; conntrack carries the result for the rest.

A Service port with no usable endpoint is not DNATed but refused: its addresses go to the
``noep-vips`` / ``noep-node-ports`` maps, consulted by ``filter-input``, ``filter-forward``
and ``filter-output`` (filter hooks, just before ordinary filter rules), which reject TCP
with a reset and anything else with ICMP port unreachable, so clients fail at once
instead of timing out.

Session affinity ``ClientIP``: one set per endpoint of client addresses, with the
Service's timeout (``flags dynamic, timeout``); the endpoint chain adds or refreshes the
client with ``update``, and the Service chain, before its random choice, sends a client
found in an endpoint's set to that endpoint.

Endpoints used: the ready ones; when none is ready, those that are still serving while
terminating (as kube-proxy does, so a rolling update that ends with every pod terminating
does not cut connections short). Only IPv4 is rendered (``table ip``); IPv6 cluster IPs and
endpoints are left out.

Host prerequisites this module does not arrange (the caller's job): NodePorts on
``127.0.0.1`` need ``net.ipv4.conf.<bridge>.route_localnet=1`` (else the kernel drops
packets with a loopback source on a real interface); DNATed packets from pods to other
pods are forwarded by the host (``forwarding`` on the bridge); and replies from a backend
on the same bridge as the client only come back through the host's conntrack — to be
un-DNATed — if ``br_netfilter`` is loaded with ``bridge-nf-call-iptables=1`` or if the
traffic is masqueraded (``masquerade_all``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MASQUERADE_MARK", "Backend", "ServicePort", "chain_names", "ruleset", "service_ports"]

MASQUERADE_MARK = 0x4000
"""The packet-mark bit that asks ``nat-postrouting`` to masquerade (kube-proxy's bit, so tools agree)."""

DEFAULT_AFFINITY_SECONDS = 10800
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
PROTOCOLS = ("TCP", "UDP", "SCTP")

_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Backend:
    """One endpoint address and port with its EndpointSlice conditions."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service with every IPv4 endpoint behind it (see :attr:`targets` for those used)."""

    namespace: str
    service: str
    port_name: str
    protocol: str  # TCP, UDP or SCTP
    cluster_ip: str
    port: int
    node_port: int | None
    backends: tuple[Backend, ...]
    external_ips: tuple[str, ...] = ()
    session_affinity_seconds: int | None = None

    @property
    def key(self) -> str:
        """``namespace/service:port_name/protocol``, what comments and chain hashes are made of."""
        return f"{self.namespace}/{self.service}:{self.port_name}/{self.protocol.lower()}"

    @property
    def targets(self) -> tuple[Backend, ...]:
        """The endpoints traffic goes to: the ready ones, else the serving terminating ones (may be empty)."""
        ready = tuple(b for b in self.backends if b.ready)
        if ready:
            return ready
        return tuple(b for b in self.backends if b.serving and b.terminating)


# ---------------------------------------------------------------------------------------------------------------
# From API objects


def _ipv4(value: Any) -> str | None:
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        return None


def _cluster_ipv4(spec: Mapping[str, Any]) -> str | None:
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    for ip in ips:
        v4 = _ipv4(ip)
        if v4 is not None:
            return v4
    return None


def _affinity_seconds(spec: Mapping[str, Any]) -> int | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    cfg = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
    seconds = cfg.get("timeoutSeconds")
    return int(seconds) if seconds else DEFAULT_AFFINITY_SECONDS


def _slice_backends(slice_: Mapping[str, Any], name: str, protocol: str) -> list[Backend]:
    if slice_.get("addressType", "IPv4") != "IPv4":
        return []
    port = next((p for p in slice_.get("ports") or []
                 if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == protocol), None)
    if port is None or not port.get("port"):
        return []
    out = []
    for ep in slice_.get("endpoints") or []:
        addresses = ep.get("addresses") or []
        ip = _ipv4(addresses[0]) if addresses else None  # as kube-proxy: only the first address counts
        if ip is None:
            continue
        cond = ep.get("conditions") or {}
        ready = cond.get("ready") is not False  # an unset condition means ready
        serving = cond["serving"] is not False if cond.get("serving") is not None else ready
        terminating = cond.get("terminating") is True
        out.append(Backend(ip, int(port["port"]), ready, serving, terminating))
    return out


def _endpoints_backends(endpoints: Mapping[str, Any], name: str, protocol: str) -> list[Backend]:
    out = []
    for subset in endpoints.get("subsets") or []:
        port = next((p for p in subset.get("ports") or []
                     if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == protocol), None)
        if port is None or not port.get("port"):
            continue
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for addr in subset.get(field) or []:
                ip = _ipv4(addr.get("ip"))
                if ip is not None:
                    out.append(Backend(ip, int(port["port"]), ready, ready, False))
    return out


def _owner(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or "default"
    if "subsets" in obj or obj.get("kind") == "Endpoints":
        return ns, meta.get("name", "")
    svc = (meta.get("labels") or {}).get(LABEL_SERVICE_NAME)
    return (ns, svc) if svc else None


def service_ports(services: Iterable[Mapping[str, Any]],
                  slices: Iterable[Mapping[str, Any]]) -> list[ServicePort]:
    """Every proxied IPv4 Service port with its endpoints, sorted by key.

    ``slices`` holds EndpointSlices (matched to their Service by the
    ``kubernetes.io/service-name`` label) and/or v1 Endpoints objects (matched by name;
    recognised by ``kind: Endpoints`` or a ``subsets`` field); both may be given, duplicates
    are merged. ExternalName and headless Services, and Services without an IPv4 cluster
    IP, are skipped. Node ports are kept for ``NodePort`` and ``LoadBalancer`` Services; a
    LoadBalancer's ``status.loadBalancer.ingress`` addresses are served as external IPs.
    """
    by_owner: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for obj in slices:
        owner = _owner(obj)
        if owner is not None:
            by_owner.setdefault(owner, []).append(obj)
    out: list[ServicePort] = []
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            continue
        cluster_ip = _cluster_ipv4(spec)
        if cluster_ip is None:
            continue
        ns, name = meta.get("namespace") or "default", meta.get("name", "")
        owned = by_owner.get((ns, name), [])
        # External IPs and, for LoadBalancers, the addresses their controller published: both DNATed as the cluster IP.
        ingress = [i.get("ip") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                   if isinstance(i, dict)] if spec.get("type") == "LoadBalancer" else []
        external = tuple(sorted({ip for ip in map(_ipv4, [*(spec.get("externalIPs") or []), *ingress]) if ip}))
        affinity = _affinity_seconds(spec)
        with_node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
        for p in spec.get("ports") or []:
            protocol = p.get("protocol") or "TCP"
            if protocol not in PROTOCOLS or not p.get("port"):
                continue
            port_name = p.get("name") or ""
            backends: dict[tuple[str, int], Backend] = {}
            for obj in owned:
                found = (_endpoints_backends(obj, port_name, protocol) if _owner_is_endpoints(obj)
                         else _slice_backends(obj, port_name, protocol))
                for b in found:
                    backends.setdefault((b.ip, b.port), b)
            node_port = int(p["nodePort"]) if with_node_ports and p.get("nodePort") else None
            out.append(ServicePort(ns, name, port_name, protocol, cluster_ip, int(p["port"]), node_port,
                                   tuple(sorted(backends.values(), key=lambda b: (ipaddress.IPv4Address(b.ip), b.port))),
                                   external, affinity))
    out.sort(key=_order)
    return out


def _order(sp: ServicePort) -> tuple[str, str, str, str]:
    return sp.namespace, sp.service, sp.port_name, sp.protocol


def _owner_is_endpoints(obj: Mapping[str, Any]) -> bool:
    return "subsets" in obj or obj.get("kind") == "Endpoints"


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:10].lower()


@dataclass(frozen=True)
class ChainNames:
    service: str
    external: str

    def endpoint(self, b: Backend) -> str:
        return f"ep-{self.service[4:]}-{_hash(f'{b.ip}:{b.port}')[:6]}"

    def affinity(self, b: Backend) -> str:
        return "aff" + self.endpoint(b)[2:]


def chain_names(sp: ServicePort) -> ChainNames:
    """The (stable) names of a Service port's chains: they depend only on its key and its endpoints' addresses."""
    h = _hash(sp.key)
    return ChainNames(service=f"svc-{h}", external=f"ext-{h}")


def _comment(text: str) -> str:
    return 'comment "' + re.sub(r'[^A-Za-z0-9 _./:@;,()-]', "_", text)[:120] + '"'


def _check(sp: ServicePort) -> None:
    if sp.protocol not in PROTOCOLS:
        raise ValueError(f"{sp.key}: unsupported protocol {sp.protocol!r}")
    for ip in (sp.cluster_ip, *sp.external_ips, *(b.ip for b in sp.backends)):
        ipaddress.IPv4Address(ip)  # raises ValueError: nothing unchecked reaches the ruleset text
    for port in (sp.port, sp.node_port or 1, *(b.port for b in sp.backends)):
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"{sp.key}: port {port} out of range")


def _elements(items: list[str]) -> list[str]:
    return [f"\t\telements = {{ {', '.join(items)} }}"] if items else []


def ruleset(table: str, ports: list[ServicePort], *, node_ips: list[str], pod_cidr: str,
            localhost_nodeports: bool = True, masquerade_all: bool = False,
            mark: int = MASQUERADE_MARK, service_cidr: str | None = None) -> str:
    """The full ``nft -f`` text replacing table ``ip <table>`` with the rules for ``ports``.

    ``node_ips`` are where NodePorts answer (plus ``127.0.0.1`` with ``localhost_nodeports``,
    which needs ``route_localnet``); traffic from outside ``pod_cidr`` to a Service is
    masqueraded, and all of it with ``masquerade_all``. ``mark`` is the single packet-mark bit
    used to ask for masquerading. With ``service_cidr``, traffic to an address of that range that
    no rule rewrote (an unallocated cluster IP, or a port the Service does not have) is refused
    at once rather than left to time out. Raises ValueError on a bad name, address or port.
    """
    if not _TABLE_NAME.match(table):
        raise ValueError(f"invalid nftables table name {table!r}")
    if mark <= 0 or mark & (mark - 1):
        raise ValueError("mark must be a single bit")
    cidr = str(ipaddress.IPv4Network(pod_cidr, strict=False))
    nodes = sorted({str(ipaddress.IPv4Address(ip)) for ip in node_ips} | ({"127.0.0.1"} if localhost_nodeports else set()),
                   key=ipaddress.IPv4Address)
    for sp in ports:
        _check(sp)
    # A ClusterIP/external IP and port (or a node port) belongs to one Service port; should two claim it (the
    # apiserver's allocators prevent that), the first by key wins rather than making the whole file invalid.
    vips: dict[str, str] = {}
    noep_vips: dict[str, str] = {}
    node_ports: dict[str, str] = {}
    noep_node_ports: dict[str, str] = {}
    chains: list[str] = []
    sets: list[str] = []
    for sp in sorted(ports, key=_order):
        names = chain_names(sp)
        proto = sp.protocol.lower()
        targets = sp.targets
        vip_keys = [f"{sp.cluster_ip} . {proto} . {sp.port}"] + [f"{ip} . {proto} . {sp.port}" for ip in sp.external_ips]
        node_key = f"{proto} . {sp.node_port}" if sp.node_port else None
        if not targets:
            for k in vip_keys:
                noep_vips.setdefault(k, "goto reject-service")
            if node_key:
                noep_node_ports.setdefault(node_key, "goto reject-service")
            continue
        vips.setdefault(vip_keys[0], f"goto {names.service}")
        for k in vip_keys[1:]:
            vips.setdefault(k, f"goto {names.external}")
        if node_key:
            node_ports.setdefault(node_key, f"goto {names.external}")
        if sp.external_ips or sp.node_port:
            chains += [f"\tchain {names.external} {{",
                       f"\t\tjump mark-for-masquerade {_comment(sp.key + ' from outside')}",
                       f"\t\tgoto {names.service}",
                       "\t}"]
        body = [f"\tchain {names.service} {{"]
        body.append(f"\t\tjump mark-for-masquerade {_comment(sp.key)}" if masquerade_all else
                    f"\t\tip saddr != {cidr} jump mark-for-masquerade {_comment(sp.key)}")
        if sp.session_affinity_seconds:
            for b in targets:
                body.append(f"\t\tip saddr @{names.affinity(b)} goto {names.endpoint(b)}")
                sets += [f"\tset {names.affinity(b)} {{",
                         "\t\ttype ipv4_addr",
                         "\t\tflags dynamic,timeout",
                         f"\t\ttimeout {int(sp.session_affinity_seconds)}s",
                         "\t}"]
        if len(targets) == 1:
            body.append(f"\t\tgoto {names.endpoint(targets[0])}")
        else:
            choices = ", ".join(f"{i} : goto {names.endpoint(b)}" for i, b in enumerate(targets))
            body.append(f"\t\tnumgen random mod {len(targets)} vmap {{ {choices} }}")
        body.append("\t}")
        chains += body
        for b in targets:
            ep = [f"\tchain {names.endpoint(b)} {{",
                  f"\t\tip saddr {b.ip} jump mark-for-masquerade {_comment('hairpin')}"]
            if sp.session_affinity_seconds:
                ep.append(f"\t\tupdate @{names.affinity(b)} {{ ip saddr }}")
            ep += [f"\t\tmeta l4proto {proto} dnat to {b.ip}:{b.port}", "\t}"]
            chains += ep

    def vmap(name: str, key_type: str, entries: dict[str, str], comment: str) -> list[str]:
        return [f"\tmap {name} {{", f"\t\ttype {key_type} : verdict", f"\t\t{_comment(comment)}",
                *_elements([f"{k} : {v}" for k, v in entries.items()]), "\t}"]

    vip_type = "ipv4_addr . inet_proto . inet_service"
    lines = [f"add table ip {table}", f"delete table ip {table}", f"table ip {table} {{",
             f"\t{_comment('tinykube services; replaced as a whole on every sync')}",
             "\tset node-ips {", "\t\ttype ipv4_addr", f"\t\t{_comment('addresses NodePorts answer on')}",
             *_elements(nodes), "\t}",
             *vmap("vips", vip_type, vips, "ClusterIP and external IP ports with endpoints"),
             *vmap("node-ports", "inet_proto . inet_service", node_ports, "NodePorts with endpoints"),
             *vmap("noep-vips", vip_type, noep_vips, "ClusterIP and external IP ports without endpoints"),
             *vmap("noep-node-ports", "inet_proto . inet_service", noep_node_ports, "NodePorts without endpoints"),
             *sets,
             "\tchain nat-prerouting {", "\t\ttype nat hook prerouting priority dstnat; policy accept;",
             "\t\tjump dispatch", "\t}",
             "\tchain nat-output {", "\t\ttype nat hook output priority -100; policy accept;",  # nft names dstnat only at prerouting
             "\t\tjump dispatch", "\t}",
             "\tchain nat-postrouting {", "\t\ttype nat hook postrouting priority srcnat; policy accept;",
             f"\t\tmeta mark & {mark:#x} == 0 return",
             f"\t\tmeta mark set meta mark ^ {mark:#x}",
             "\t\tmasquerade fully-random", "\t}",
             "\tchain dispatch {",
             "\t\tip daddr . meta l4proto . th dport vmap @vips",
             "\t\tip daddr @node-ips meta l4proto . th dport vmap @node-ports", "\t}",
             "\tchain mark-for-masquerade {", f"\t\tmeta mark set meta mark | {mark:#x}", "\t}",
             *(f"\tchain filter-{hook} {{\n\t\ttype filter hook {hook} priority filter - 10; policy accept;\n"
               "\t\tjump refuse-no-endpoints\n\t}" for hook in ("input", "forward", "output")),
             "\tchain refuse-no-endpoints {",
             "\t\tip daddr . meta l4proto . th dport vmap @noep-vips",
             "\t\tip daddr @node-ips meta l4proto . th dport vmap @noep-node-ports",
             *([f"\t\tip daddr {ipaddress.IPv4Network(service_cidr)} goto reject-service "
                f"{_comment('unallocated cluster IPs and ports')}"] if service_cidr else []), "\t}",
             "\tchain reject-service {", "\t\tmeta l4proto tcp reject with tcp reset",
             "\t\treject with icmp type port-unreachable", "\t}",
             *chains,
             "}"]
    return "\n".join(lines) + "\n"
