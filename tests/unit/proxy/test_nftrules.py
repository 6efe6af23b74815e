"""Services and endpoints into one nftables table: parsing of API objects, rule structure, and ``nft -c`` validation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tinykube.proxy.nftrules import Backend, ServicePort, chain_names, ruleset, service_ports

NFT = shutil.which("nft")

B = Backend


def svc(name: str, ports: list[dict[str, Any]], *, ns: str = "default", type_: str = "ClusterIP",
        cluster_ip: str | None = "10.96.0.10", **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"type": type_, "ports": ports, **spec}
    if cluster_ip is not None:
        s["clusterIP"] = cluster_ip
        s["clusterIPs"] = [cluster_ip]
    return {"kind": "Service", "metadata": {"namespace": ns, "name": name}, "spec": s}


def eps(service: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]], *, ns: str = "default",
        name: str | None = None, address_type: str = "IPv4") -> dict[str, Any]:
    return {"kind": "EndpointSlice", "addressType": address_type, "endpoints": endpoints, "ports": ports,
            "metadata": {"namespace": ns, "name": name or f"{service}-abc",
                         "labels": {"kubernetes.io/service-name": service}}}


def ep(ip: str, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "conditions": conditions}


def sp(name: str = "web", *, proto: str = "TCP", cip: str = "10.96.0.10", port: int = 80,
       node_port: int | None = None, backends: tuple[Backend, ...] = (), external: tuple[str, ...] = (),
       affinity: int | None = None, port_name: str = "") -> ServicePort:
    return ServicePort("default", name, port_name, proto, cip, port, node_port, backends, external, affinity)


# ---------------------------------------------------------------------------------------------------------------
# service_ports


HTTP = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
HTTP_EP = [{"name": "http", "port": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize(("services", "slices", "expected"), [
    pytest.param([svc("web", HTTP)], [eps("web", [ep("10.244.0.5", ready=True)], HTTP_EP)],
                 [("web", "http", "TCP", "10.96.0.10", 80, None, (("10.244.0.5", 8080),))], id="basic"),
    pytest.param([svc("web", HTTP)], [], [("web", "http", "TCP", "10.96.0.10", 80, None, ())], id="no-slices"),
    pytest.param([svc("web", HTTP)], [eps("other", [ep("10.244.0.5")], HTTP_EP)],
                 [("web", "http", "TCP", "10.96.0.10", 80, None, ())], id="other-service's-slice"),
    pytest.param([svc("web", HTTP)], [eps("web", [ep("10.244.0.5")], HTTP_EP, ns="other")],
                 [("web", "http", "TCP", "10.96.0.10", 80, None, ())], id="other-namespace"),
    pytest.param([svc("web", HTTP, type_="ExternalName", cluster_ip=None, externalName="x.example")], [], [],
                 id="externalname-skipped"),
    pytest.param([svc("web", HTTP, cluster_ip="None")], [], [], id="headless-skipped"),
    pytest.param([svc("web", HTTP, cluster_ip="fd00::10")], [], [], id="ipv6-only-skipped"),
    pytest.param([svc("web", [{"name": "http", "port": 80, "nodePort": 30080}], type_="NodePort")], [],
                 [("web", "http", "TCP", "10.96.0.10", 80, 30080, ())], id="nodeport"),
    pytest.param([svc("web", [{"name": "http", "port": 80, "nodePort": 30080}])], [],
                 [("web", "http", "TCP", "10.96.0.10", 80, None, ())], id="nodeport-ignored-for-clusterip"),
    pytest.param([svc("dns", [{"name": "dns", "port": 53, "protocol": "UDP"},
                              {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])],
                 [eps("dns", [ep("10.244.0.7")], [{"name": "dns", "port": 53, "protocol": "UDP"},
                                                 {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}])],
                 [("dns", "dns", "UDP", "10.96.0.10", 53, None, (("10.244.0.7", 53),)),
                  ("dns", "dns-tcp", "TCP", "10.96.0.10", 53, None, (("10.244.0.7", 5353),))], id="ports-by-name"),
    pytest.param([svc("web", [{"port": 80}])],
                 [eps("web", [ep("10.244.0.6"), ep("10.244.0.5")], [{"port": 8080}]),
                  eps("web", [ep("10.244.0.5"), ep("10.244.1.2")], [{"port": 8080}], name="web-2"),
                  eps("web", [ep("fd00::1")], [{"port": 8080}], name="web-v6", address_type="IPv6")],
                 [("web", "", "TCP", "10.96.0.10", 80, None,
                   (("10.244.0.5", 8080), ("10.244.0.6", 8080), ("10.244.1.2", 8080)))],
                 id="unnamed-port-several-slices-merged-and-sorted"),
])
def test_service_ports(services: list[dict[str, Any]], slices: list[dict[str, Any]],
                       expected: list[tuple[Any, ...]]) -> None:
    got = [(p.service, p.port_name, p.protocol, p.cluster_ip, p.port, p.node_port,
            tuple((b.ip, b.port) for b in p.backends)) for p in service_ports(services, slices)]
    assert got == expected


@pytest.mark.parametrize(("endpoints", "targets"), [
    pytest.param([ep("10.244.0.5", ready=True), ep("10.244.0.6", ready=False, serving=False)], ["10.244.0.5"],
                 id="ready-only"),
    pytest.param([ep("10.244.0.5")], ["10.244.0.5"], id="unset-conditions-are-ready"),
    pytest.param([ep("10.244.0.5", ready=True, serving=True, terminating=False),
                  ep("10.244.0.6", ready=False, serving=True, terminating=True)], ["10.244.0.5"],
                 id="ready-preferred-over-terminating"),
    pytest.param([ep("10.244.0.5", ready=False, serving=True, terminating=True),
                  ep("10.244.0.6", ready=False, serving=False, terminating=True),
                  ep("10.244.0.7", ready=False, serving=False, terminating=False)], ["10.244.0.5"],
                 id="fallback-to-serving-terminating"),
    pytest.param([ep("10.244.0.6", ready=False, serving=False, terminating=True)], [], id="none-usable"),
])
def test_targets(endpoints: list[dict[str, Any]], targets: list[str]) -> None:
    [port] = service_ports([svc("web", HTTP)], [eps("web", endpoints, HTTP_EP)])
    assert [b.ip for b in port.targets] == targets


def test_v1_endpoints_objects() -> None:
    endpoints = {"kind": "Endpoints", "metadata": {"namespace": "default", "name": "web"},
                 "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "notReadyAddresses": [{"ip": "10.244.0.6"}],
                              "ports": HTTP_EP}]}
    [port] = service_ports([svc("web", HTTP)], [endpoints])
    assert port.backends == (B("10.244.0.5", 8080, True, True, False), B("10.244.0.6", 8080, False, False, False))
    assert [b.ip for b in port.targets] == ["10.244.0.5"]


def test_affinity_and_external_ips() -> None:
    services = [svc("a", HTTP, sessionAffinity="ClientIP", externalIPs=["192.0.2.9", "fd00::9"]),
                svc("b", HTTP, cluster_ip="10.96.0.11", sessionAffinity="ClientIP",
                    sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
                svc("c", HTTP, cluster_ip="10.96.0.12", sessionAffinity="None")]
    got = {p.service: (p.session_affinity_seconds, p.external_ips) for p in service_ports(services, [])}
    assert got == {"a": (10800, ("192.0.2.9",)), "b": (60, ()), "c": (None, ())}


def test_load_balancer_ingress_served_as_external_ips() -> None:
    ingress = {"loadBalancer": {"ingress": [{"ip": "10.96.255.3", "ipMode": "VIP"}, {"hostname": "lb.example"}]}}
    lb = svc("lb", HTTP, type_="LoadBalancer", externalIPs=["192.0.2.9"])
    lb["status"] = ingress
    stale = svc("was-lb", HTTP, cluster_ip="10.96.0.11", type_="ClusterIP")
    stale["status"] = ingress  # a type change leaves the status to the controller: not served meanwhile
    got = {p.service: p.external_ips for p in service_ports([lb, stale], [])}
    assert got == {"lb": ("10.96.255.3", "192.0.2.9"), "was-lb": ()}


# ---------------------------------------------------------------------------------------------------------------
# ruleset structure


def chain(text: str, name: str) -> list[str]:
    """The rules of chain ``name`` (stripped lines between its braces)."""
    m = re.search(rf"^\tchain {re.escape(name)} {{\n(.*?)^\t}}", text, re.M | re.S)
    assert m, f"no chain {name}"
    return [line.strip() for line in m.group(1).splitlines()]


def elements(text: str, name: str) -> str:
    m = re.search(rf"^\t(?:map|set) {re.escape(name)} {{\n(.*?)^\t}}", text, re.M | re.S)
    assert m, f"no map or set {name}"
    found = re.search(r"elements = \{ (.*) \}", m.group(1))
    return found.group(1) if found else ""


def render(ports: list[ServicePort], **kw: Any) -> str:
    kw.setdefault("node_ips", ["192.168.1.5"])
    kw.setdefault("pod_cidr", "10.244.0.0/16")
    return ruleset("tinykube-t1", ports, **kw)


THREE = (B("10.244.0.5", 8080), B("10.244.0.6", 8080), B("10.244.0.7", 8080))


def test_table_replaced_atomically_and_self_contained() -> None:
    text = render([])
    lines = text.splitlines()
    assert lines[:3] == ["add table ip tinykube-t1", "delete table ip tinykube-t1", "table ip tinykube-t1 {"]
    assert lines[-1] == "}"
    # every base chain is in this table; nothing outside it is named
    top_level = [line for line in lines if line[:1] not in ("\t", "")]
    assert top_level == [*lines[:3], "}"]
    hooks = re.findall(r"type (\w+) hook (\w+)", text)
    assert sorted(hooks) == [("filter", "forward"), ("filter", "input"), ("filter", "output"),
                             ("nat", "output"), ("nat", "postrouting"), ("nat", "prerouting")]


def test_clusterip_random_over_ready_endpoints() -> None:
    p = sp(backends=(*THREE, B("10.244.0.8", 8080, False, False, False)))
    text = render([p])
    names = chain_names(p)
    assert f"10.96.0.10 . tcp . 80 : goto {names.service}" in elements(text, "vips")
    rules = chain(text, names.service)
    assert rules[0].startswith("ip saddr != 10.244.0.0/16 jump mark-for-masquerade")
    vmap = rules[-1]
    assert vmap.startswith("numgen random mod 3 vmap {")
    targets = re.findall(r"(\d+) : goto (\S+?)[,\s]", vmap)
    assert [i for i, _ in targets] == ["0", "1", "2"]
    for (_, ep_chain), b in zip(targets, THREE, strict=True):
        assert ep_chain == names.endpoint(b)
        assert chain(text, ep_chain) == [f'ip saddr {b.ip} jump mark-for-masquerade comment "hairpin"',
                                         f"meta l4proto tcp dnat to {b.ip}:8080"]
    assert "10.244.0.8" not in text


def test_single_endpoint_is_a_plain_goto_and_masquerade_all() -> None:
    p = sp(proto="UDP", port=53, backends=(B("10.244.0.5", 5353),))
    names = chain_names(p)
    rules = chain(render([p], masquerade_all=True), names.service)
    assert rules[0].startswith("jump mark-for-masquerade")
    assert rules[-1] == f"goto {names.endpoint(p.backends[0])}"
    assert chain(render([p]), names.endpoint(p.backends[0]))[-1] == "meta l4proto udp dnat to 10.244.0.5:5353"


@pytest.mark.parametrize(("localhost", "node_ips"), [
    (True, "127.0.0.1, 192.168.1.5"), (False, "192.168.1.5"),
])
def test_nodeports(localhost: bool, node_ips: str) -> None:
    p = sp(node_port=30080, backends=THREE[:2])
    text = render([p], localhost_nodeports=localhost)
    names = chain_names(p)
    assert elements(text, "node-ips") == node_ips
    assert elements(text, "node-ports") == f"tcp . 30080 : goto {names.external}"
    assert chain(text, names.external)[0].startswith("jump mark-for-masquerade")
    assert chain(text, names.external)[-1] == f"goto {names.service}"
    assert "ip daddr @node-ips meta l4proto . th dport vmap @node-ports" in chain(text, "dispatch")


def test_external_ips_go_through_the_external_chain() -> None:
    p = sp(backends=THREE[:1], external=("192.0.2.9",))
    names = chain_names(p)
    assert elements(render([p]), "vips") == (f"10.96.0.10 . tcp . 80 : goto {names.service}, "
                                             f"192.0.2.9 . tcp . 80 : goto {names.external}")


def test_masquerade_marks_and_postrouting() -> None:
    text = render([], mark=0x8000)
    assert chain(text, "mark-for-masquerade") == ["meta mark set meta mark | 0x8000"]
    assert chain(text, "nat-postrouting")[1:] == ["meta mark & 0x8000 == 0 return",
                                                   "meta mark set meta mark ^ 0x8000", "masquerade fully-random"]


def test_no_endpoints_rejected() -> None:
    ports = [sp(node_port=30081, backends=(B("10.244.0.6", 80, False, False, False),), external=("192.0.2.9",)),
             sp("u", proto="UDP", cip="10.96.0.11", port=53)]
    text = render(ports)
    assert elements(text, "vips") == "" and elements(text, "node-ports") == ""
    assert elements(text, "noep-vips") == ("10.96.0.11 . udp . 53 : goto reject-service, "
                                           "10.96.0.10 . tcp . 80 : goto reject-service, "
                                           "192.0.2.9 . tcp . 80 : goto reject-service")
    assert elements(text, "noep-node-ports") == "tcp . 30081 : goto reject-service"
    assert chain(text, "reject-service") == ["meta l4proto tcp reject with tcp reset",
                                             "reject with icmp type port-unreachable"]
    for hook in ("input", "forward", "output"):
        assert chain(text, f"filter-{hook}")[-1] == "jump refuse-no-endpoints"
    assert not re.search(r"chain (svc|ext|ep|aff)-", text)
    assert not any("10.96.0.0/16" in r for r in chain(text, "refuse-no-endpoints"))
    # With the service range given, the rest of it is refused after the known addresses.
    rules = chain(ruleset("t", ports, node_ips=[], pod_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16"),
                  "refuse-no-endpoints")
    assert rules[-1].startswith("ip daddr 10.96.0.0/16 goto reject-service")


def test_session_affinity() -> None:
    p = sp(backends=THREE[:2], affinity=600)
    text = render([p])
    names = chain_names(p)
    rules = chain(text, names.service)
    for b in THREE[:2]:
        assert f"ip saddr @{names.affinity(b)} goto {names.endpoint(b)}" in rules
        assert f"update @{names.affinity(b)} {{ ip saddr }}" in chain(text, names.endpoint(b))
        assert re.search(rf"set {names.affinity(b)} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n"
                         rf"\t\ttimeout 600s\n", text)
    assert rules.index(f"ip saddr @{names.affinity(THREE[0])} goto {names.endpoint(THREE[0])}") < len(rules) - 1
    assert rules[-1].startswith("numgen random mod 2")


def test_deterministic_and_names_stable() -> None:
    ports = [sp("b", backends=THREE), sp("a", cip="10.96.0.11", backends=THREE[::-1])]
    assert render(ports) == render(ports[::-1])
    assert chain_names(ports[0]) == chain_names(sp("b"))
    assert chain_names(ports[0]) != chain_names(sp("b", proto="UDP"))


@pytest.mark.parametrize("bad", [
    {"table": "bad name"}, {"table": "x;flush ruleset"}, {"pod_cidr": "nonsense"}, {"node_ips": ["1.2.3"]},
    {"mark": 0x6000}, {"ports": [sp(cip="10.96.0.1; flush ruleset")]}, {"ports": [sp(proto="ICMP")]},
    {"ports": [sp(backends=(B("10.244.0.5", 70000),))]},
])
def test_bad_input_refused(bad: dict[str, Any]) -> None:
    kw: dict[str, Any] = {"table": "t", "ports": [], "node_ips": ["192.168.1.5"], "pod_cidr": "10.244.0.0/16", **bad}
    with pytest.raises(ValueError):
        ruleset(kw.pop("table"), kw.pop("ports"), **kw)


# ---------------------------------------------------------------------------------------------------------------
# the kernel's opinion: nft -c parses and checks the file without applying anything


def nft_check(text: str, tmp_path: Path) -> None:
    if NFT is None:
        pytest.fail("nft not found: install the nftables package (Debian: apt-get install nftables)")
    path = tmp_path / "rules.nft"
    path.write_text(text)
    result = subprocess.run([NFT, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"nft -c refused the ruleset:\n{result.stderr}\n{text}"


CASES = {
    "empty": [],
    "clusterip": [sp(backends=THREE)],
    "one-endpoint": [sp(proto="UDP", port=53, backends=THREE[:1])],
    "sctp": [sp(proto="SCTP", port=9, node_port=30009, backends=THREE[:2])],
    "nodeport-external-affinity": [sp(node_port=30080, external=("192.0.2.9", "198.51.100.1"),
                                      backends=THREE, affinity=10800)],
    "no-endpoints": [sp(node_port=30081, external=("192.0.2.9",)), sp("u", proto="UDP", cip="10.96.0.11")],
    "fallback-terminating": [sp(backends=(B("10.244.0.5", 80, False, True, True),))],
    "mixed": [sp("a", backends=THREE, node_port=30001), sp("b", cip="10.96.0.11", proto="UDP", port=53),
              sp("c", cip="10.96.0.12", port=443, backends=THREE[1:], affinity=30, port_name="https"),
              sp("c", cip="10.96.0.12", port=443, proto="UDP", backends=THREE[:1], port_name="quic")],
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("options", [{}, {"localhost_nodeports": False, "masquerade_all": True,
                                     "service_cidr": "10.96.0.0/16"}])
def test_nft_accepts(name: str, options: dict[str, Any], tmp_path: Path) -> None:
    nft_check(render(CASES[name], **options), tmp_path)


def test_nft_accepts_from_api_objects(tmp_path: Path) -> None:
    services = [svc("web", [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "m", "port": 9090}],
                    type_="NodePort", sessionAffinity="ClientIP"),
                svc("dns", [{"name": "dns", "port": 53, "protocol": "UDP"}], ns="kube-system", cluster_ip="10.96.0.53")]
    slices = [eps("web", [ep(f"10.244.0.{i}", ready=i % 2 == 0) for i in range(2, 40)],
                  [{"name": "http", "port": 8080}, {"name": "m", "port": 9090}])]
    ports = service_ports(services, slices)
    assert [(p.service, len(p.targets)) for p in ports] == [("web", 19), ("web", 19), ("dns", 0)]
    nft_check(render(ports, node_ips=["192.168.1.5", "10.0.0.7"]), tmp_path)


def test_nft_refuses_garbage(tmp_path: Path) -> None:
    """The check is real: a broken file fails."""
    with pytest.raises(AssertionError, match="nft -c refused"):
        nft_check(render([]).replace("dispatch {", "dispatch { nonsense"), tmp_path)
