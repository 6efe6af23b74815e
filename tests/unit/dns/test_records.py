"""Cluster DNS records as a table: Services and Endpoints in a MemorySource, a question, the expected answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinykube.dns.records import Answer, Config, MemorySource, Records, reverse_ip, reverse_name

Z = "cluster.local."


def svc(name: str, spec: dict[str, Any], ns: str = "default", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, **meta}, "spec": spec}


def eps(name: str, *subsets: dict[str, Any], ns: str = "default") -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "subsets": list(subsets)}


SERVICES = [
    svc("web", {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                          {"name": "dns", "port": 53, "protocol": "UDP"}]}),
    svc("np", {"type": "NodePort", "clusterIP": "10.96.0.11", "ports": [{"port": 80, "protocol": "TCP"}]}),
    svc("dual", {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12", "fd00::12"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
    svc("db", {"type": "ClusterIP", "clusterIP": "None",
               "ports": [{"name": "pg", "port": 5432, "protocol": "TCP", "targetPort": 5433}]}),
    svc("all", {"type": "ClusterIP", "clusterIP": "None", "publishNotReadyAddresses": True}),
    svc("old", {"type": "ClusterIP", "clusterIP": "None"},
        annotations={"service.alpha.kubernetes.io/tolerate-unready-endpoints": "true"}),
    svc("empty", {"type": "ClusterIP", "clusterIP": "None", "ports": [{"name": "x", "port": 1}]}),
    svc("ext", {"type": "ExternalName", "externalName": "www.example.com",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
    svc("three", {"type": "ClusterIP", "clusterIP": "None"}, ns="other"),
]

ENDPOINTS = [
    eps("web", {"addresses": [{"ip": "10.244.0.8"}], "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}),
    eps("db",
        {"addresses": [{"ip": "10.244.0.5", "hostname": "db-0"}, {"ip": "10.244.0.6"}],
         "notReadyAddresses": [{"ip": "10.244.0.7", "hostname": "db-2"}],
         "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}]},
        {"addresses": [{"ip": "10.244.1.9", "hostname": "db-3"}],
         "ports": [{"name": "pg", "port": 6000, "protocol": "TCP"}, {"name": "", "port": 7000, "protocol": "TCP"}]}),
    eps("all", {"addresses": [{"ip": "10.244.2.1"}], "notReadyAddresses": [{"ip": "10.244.2.2"}],
                "ports": [{"port": 1, "protocol": "TCP"}]}),
    eps("old", {"notReadyAddresses": [{"ip": "10.244.3.1"}]}),
    eps("three", {"addresses": [{"ip": f"10.244.4.{i}"} for i in (1, 2, 3)],
                  "ports": [{"name": "p", "port": 9, "protocol": "UDP"}]}, ns="other"),
    eps("dual", {"addresses": [{"ip": "fd00::1:5"}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
]

SOURCE = MemorySource(SERVICES, ENDPOINTS, serial=42)
RECORDS = Records(SOURCE)


def rows(answer: Answer) -> tuple[str, list[str], list[str]]:
    """rcode, answer records and additional records as "name TTL TYPE data" lines."""
    def show(rs: list[Any]) -> list[str]:
        return [f"{r.name} {r.ttl} {r.rtype} {r.data}" for r in rs]
    return answer.rcode, show(answer.answer), show(answer.additional)


NODATA: tuple[str, list[str], list[str]] = ("NOERROR", [], [])
NX: tuple[str, list[str], list[str]] = ("NXDOMAIN", [], [])

CASES: list[tuple[str, str, tuple[str, list[str], list[str]]]] = [
    # Services with a cluster IP: A (and AAAA for a dual-stack one); other types are NODATA.
    ("web.default.svc.cluster.local", "A", ("NOERROR", ["web.default.svc.cluster.local. 5 A 10.96.0.10"], [])),
    ("web.default.svc.cluster.local.", "AAAA", NODATA),
    ("web.default.svc.cluster.local.", "TXT", NODATA),
    ("np.default.svc.cluster.local.", "A", ("NOERROR", ["np.default.svc.cluster.local. 5 A 10.96.0.11"], [])),
    ("dual.default.svc.cluster.local.", "A", ("NOERROR", ["dual.default.svc.cluster.local. 5 A 10.96.0.12"], [])),
    ("dual.default.svc.cluster.local.", "AAAA", ("NOERROR", ["dual.default.svc.cluster.local. 5 AAAA fd00::12"], [])),
    # Comparisons ignore case; the owner keeps the question's spelling.
    ("Web.DEFAULT.svc.Cluster.Local.", "a", ("NOERROR", ["Web.DEFAULT.svc.Cluster.Local. 5 A 10.96.0.10"], [])),
    # Headless: the ready addresses, not-ready ones only when the Service publishes them.
    ("db.default.svc.cluster.local.", "A", ("NOERROR", [
        "db.default.svc.cluster.local. 5 A 10.244.0.5", "db.default.svc.cluster.local. 5 A 10.244.0.6",
        "db.default.svc.cluster.local. 5 A 10.244.1.9"], [])),
    ("db.default.svc.cluster.local.", "AAAA", NODATA),
    ("all.default.svc.cluster.local.", "A", ("NOERROR", [
        "all.default.svc.cluster.local. 5 A 10.244.2.1", "all.default.svc.cluster.local. 5 A 10.244.2.2"], [])),
    ("old.default.svc.cluster.local.", "A", ("NOERROR", ["old.default.svc.cluster.local. 5 A 10.244.3.1"], [])),
    ("empty.default.svc.cluster.local.", "A", NX),
    # Endpoint names: the hostname, else the dashed IP; for Services with a cluster IP too.
    ("db-0.db.default.svc.cluster.local.", "A", ("NOERROR", ["db-0.db.default.svc.cluster.local. 5 A 10.244.0.5"], [])),
    ("10-244-0-6.db.default.svc.cluster.local.", "A",
     ("NOERROR", ["10-244-0-6.db.default.svc.cluster.local. 5 A 10.244.0.6"], [])),
    ("10-244-0-5.db.default.svc.cluster.local.", "A", NX),  # has a hostname: that is its only name
    ("db-2.db.default.svc.cluster.local.", "A", NX),  # not ready, not published
    ("10-244-0-8.web.default.svc.cluster.local.", "A",
     ("NOERROR", ["10-244-0-8.web.default.svc.cluster.local. 5 A 10.244.0.8"], [])),
    ("fd00--1-5.dual.default.svc.cluster.local.", "AAAA",
     ("NOERROR", ["fd00--1-5.dual.default.svc.cluster.local. 5 AAAA fd00::1:5"], [])),
    # ExternalName: a CNAME for every type; out of the zone the server resolves the target (``chase``).
    ("ext.default.svc.cluster.local.", "A", ("NOERROR", ["ext.default.svc.cluster.local. 5 CNAME www.example.com."], [])),
    ("ext.default.svc.cluster.local.", "AAAA",
     ("NOERROR", ["ext.default.svc.cluster.local. 5 CNAME www.example.com."], [])),
    ("ext.default.svc.cluster.local.", "CNAME",
     ("NOERROR", ["ext.default.svc.cluster.local. 5 CNAME www.example.com."], [])),
    ("_http._tcp.ext.default.svc.cluster.local.", "SRV",
     ("NOERROR", ["_http._tcp.ext.default.svc.cluster.local. 5 SRV 0 100 80 www.example.com."], [])),
    ("x.ext.default.svc.cluster.local.", "A", NX),
    # SRV with a cluster IP: the Service's port, the Service's name, its A record as additional data.
    ("_http._tcp.web.default.svc.cluster.local.", "SRV", (
        "NOERROR", ["_http._tcp.web.default.svc.cluster.local. 5 SRV 0 100 80 web.default.svc.cluster.local."],
        ["web.default.svc.cluster.local. 5 A 10.96.0.10"])),
    ("_DNS._UDP.web.default.svc.cluster.local.", "SRV", (
        "NOERROR", ["_DNS._UDP.web.default.svc.cluster.local. 5 SRV 0 100 53 web.default.svc.cluster.local."],
        ["web.default.svc.cluster.local. 5 A 10.96.0.10"])),
    ("_dns._tcp.web.default.svc.cluster.local.", "SRV", NX),  # wrong protocol
    ("_http._tcp.web.default.svc.cluster.local.", "A", NODATA),
    ("_tcp.web.default.svc.cluster.local.", "SRV", NODATA),  # exists: an SRV record lies below it
    ("_sctp.web.default.svc.cluster.local.", "SRV", NX),
    ("_http._tcp.np.default.svc.cluster.local.", "SRV", NX),  # unnamed ports have no SRV record
    ("_tcp.np.default.svc.cluster.local.", "A", NX),
    # SRV headless: one per published endpoint and matching named port, target port, weights shared.
    ("_pg._tcp.db.default.svc.cluster.local.", "SRV", ("NOERROR", [
        "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 33 5433 db-0.db.default.svc.cluster.local.",
        "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 33 5433 10-244-0-6.db.default.svc.cluster.local.",
        "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 33 6000 db-3.db.default.svc.cluster.local.",
    ], [
        "db-0.db.default.svc.cluster.local. 5 A 10.244.0.5",
        "10-244-0-6.db.default.svc.cluster.local. 5 A 10.244.0.6",
        "db-3.db.default.svc.cluster.local. 5 A 10.244.1.9",
    ])),
    ("_p._udp.three.other.svc.cluster.local.", "SRV", ("NOERROR", [
        f"_p._udp.three.other.svc.cluster.local. 5 SRV 0 33 9 10-244-4-{i}.three.other.svc.cluster.local."
        for i in (1, 2, 3)], [f"10-244-4-{i}.three.other.svc.cluster.local. 5 A 10.244.4.{i}" for i in (1, 2, 3)])),
    ("_x._tcp.empty.default.svc.cluster.local.", "SRV", NX),
    # Pods, insecure mode: the name is the answer.
    ("1-2-3-4.anything.pod.cluster.local.", "A", ("NOERROR", ["1-2-3-4.anything.pod.cluster.local. 5 A 1.2.3.4"], [])),
    ("1-2-3-4.anything.pod.cluster.local.", "AAAA", NODATA),
    ("fd00--5.ns.pod.cluster.local.", "AAAA", ("NOERROR", ["fd00--5.ns.pod.cluster.local. 5 AAAA fd00::5"], [])),
    ("256-2-3-4.ns.pod.cluster.local.", "A", NX),
    ("web.ns.pod.cluster.local.", "A", NX),
    ("ns.pod.cluster.local.", "A", NODATA),
    ("x.1-2-3-4.ns.pod.cluster.local.", "A", NX),
    # Names that do not exist, and names that exist without data.
    ("nope.default.svc.cluster.local.", "A", NX),
    ("nope.default.svc.cluster.local.", "AAAA", NX),
    ("web.nope.svc.cluster.local.", "A", NX),
    ("a.b.c.web.default.svc.cluster.local.", "A", NX),
    ("default.svc.cluster.local.", "A", NODATA),  # a namespace with Services
    ("kube-system.svc.cluster.local.", "A", NX),  # none: nothing lies below it
    ("svc.cluster.local.", "A", NODATA),
    ("pod.cluster.local.", "A", NODATA),
    ("foo.cluster.local.", "A", NX),
    ("google.com.default.svc.cluster.local.", "A", NX),  # a search-path expansion
    ("*.default.svc.cluster.local.", "A", NX),  # no wildcards
    ("web\\.default.svc.cluster.local.", "A", NX),  # an escaped dot is part of a label
    # The zone itself and the schema version.
    ("cluster.local.", "SOA", ("NOERROR", [f"cluster.local. 5 SOA ns.dns.{Z} hostmaster.{Z} 42 7200 1800 86400 30"], [])),
    ("cluster.local.", "NS", ("NOERROR", ["cluster.local. 5 NS ns.dns.cluster.local."], [])),
    ("dns-version.cluster.local.", "TXT", ("NOERROR", ['dns-version.cluster.local. 5 TXT "1.1.0"'], [])),
    ("ns.dns.cluster.local.", "A", NODATA),
    # PTR: cluster IPs name the Service, published endpoint addresses their endpoint name.
    ("10.0.96.10.in-addr.arpa.", "PTR", ("NOERROR", ["10.0.96.10.in-addr.arpa. 5 PTR web.default.svc.cluster.local."], [])),
    ("5.0.244.10.in-addr.arpa.", "PTR",
     ("NOERROR", ["5.0.244.10.in-addr.arpa. 5 PTR db-0.db.default.svc.cluster.local."], [])),
    ("6.0.244.10.IN-ADDR.ARPA.", "PTR",
     ("NOERROR", ["6.0.244.10.IN-ADDR.ARPA. 5 PTR 10-244-0-6.db.default.svc.cluster.local."], [])),
    ("8.0.244.10.in-addr.arpa.", "PTR",
     ("NOERROR", ["8.0.244.10.in-addr.arpa. 5 PTR 10-244-0-8.web.default.svc.cluster.local."], [])),
    (reverse_name("fd00::12"), "PTR", ("NOERROR", [f"{reverse_name('fd00::12')} 5 PTR dual.default.svc.cluster.local."], [])),
    ("10.0.96.10.in-addr.arpa.", "A", NODATA),
    # ANY: everything the name owns.
    ("dual.default.svc.cluster.local.", "ANY", ("NOERROR", [
        "dual.default.svc.cluster.local. 5 A 10.96.0.12", "dual.default.svc.cluster.local. 5 AAAA fd00::12"], [])),
]


@pytest.mark.parametrize(("qname", "qtype", "want"), CASES, ids=[f"{q} {t}" for q, t, _ in CASES])
def test_answers(qname: str, qtype: str, want: tuple[str, list[str], list[str]]) -> None:
    got = RECORDS.answer(qname, qtype)
    assert not got.forward
    assert got.authoritative
    assert rows(got) == want


@pytest.mark.parametrize("qname", ["nope.default.svc.cluster.local.", "web.default.svc.cluster.local.",
                                   "x.y.cluster.local."])
def test_negative_answers_carry_the_soa_with_the_negative_ttl(qname: str) -> None:
    got = RECORDS.answer(qname, "AAAA")
    assert got.rcode in ("NXDOMAIN", "NOERROR") and not got.answer
    [soa] = got.authority
    assert (soa.name, soa.rtype, soa.ttl) == ("cluster.local.", "SOA", 30)
    assert soa.data.split()[2] == "42" and soa.data.split()[-1] == "30"  # serial, minimum (negative TTL)


@pytest.mark.parametrize(("qname", "qtype"), [
    ("example.com.", "A"), ("example.com", "AAAA"), ("local.", "A"), ("cluster.local.example.com.", "A"),
    ("svc.local.", "A"), (".", "NS"),
    ("7.0.244.10.in-addr.arpa.", "PTR"),  # a not-ready address nobody publishes
    ("1.1.1.1.in-addr.arpa.", "PTR"), ("0.96.10.in-addr.arpa.", "PTR"),  # not ours; a partial reverse name
    ("foo\\.cluster.local.", "A"),  # one label "foo.cluster" then "local": outside
])
def test_names_outside_the_zone_go_to_the_host(qname: str, qtype: str) -> None:
    got = RECORDS.answer(qname, qtype)
    assert got.forward and not got.answer and not got.authoritative


def test_zone_and_ttls_are_configurable() -> None:
    r = Records(SOURCE, Config(zone="Corp.Internal.", ttl=60, negative_ttl=7, nameservers=("10.96.0.53",)))
    assert rows(r.answer("web.default.svc.corp.internal.", "A")) == (
        "NOERROR", ["web.default.svc.corp.internal. 60 A 10.96.0.10"], [])
    assert r.answer("web.default.svc.cluster.local.", "A").forward
    nx = r.answer("nope.default.svc.corp.internal.", "A")
    assert nx.rcode == "NXDOMAIN" and nx.authority[0].name == "corp.internal." and nx.authority[0].ttl == 7
    assert rows(r.answer("corp.internal.", "NS")) == (
        "NOERROR", ["corp.internal. 60 NS ns.dns.corp.internal."], ["ns.dns.corp.internal. 60 A 10.96.0.53"])
    assert rows(r.answer("10.0.96.10.in-addr.arpa.", "PTR"))[1] == [
        "10.0.96.10.in-addr.arpa. 60 PTR web.default.svc.corp.internal."]
    with pytest.raises(ValueError):
        Records(SOURCE, Config(zone="."))


def test_an_endpoint_shared_by_two_services_has_a_ptr_for_each() -> None:
    src = MemorySource([svc("a", {"clusterIP": "None"}), svc("b", {"clusterIP": "10.96.0.2"})],
                       [eps("a", {"addresses": [{"ip": "10.244.0.1", "hostname": "h"}]}),
                        eps("b", {"addresses": [{"ip": "10.244.0.1"}]})])
    got = Records(src).answer("1.0.244.10.in-addr.arpa.", "PTR")
    assert [r.data for r in got.answer] == ["10-244-0-1.b.default.svc.cluster.local.", "h.a.default.svc.cluster.local."]


def test_endpoints_without_a_service_are_not_served() -> None:
    src = MemorySource([], [eps("gone", {"addresses": [{"ip": "10.244.0.1"}]})])
    r = Records(src)
    assert r.answer("gone.default.svc.cluster.local.", "A").rcode == "NXDOMAIN"
    assert r.answer("1.0.244.10.in-addr.arpa.", "PTR").forward


def test_srv_weights_stay_positive_for_many_endpoints() -> None:
    addrs = [{"ip": f"10.244.{i // 250}.{i % 250 + 1}"} for i in range(300)]
    src = MemorySource([svc("big", {"clusterIP": "None"})],
                       [eps("big", {"addresses": addrs, "ports": [{"name": "p", "port": 1, "protocol": "TCP"}]})])
    got = Records(src).answer("_p._tcp.big.default.svc.cluster.local.", "SRV")
    assert len(got.answer) == 300 and {r.data.split()[1] for r in got.answer} == {"1"}
    assert len(got.additional) == 300


@pytest.mark.parametrize(("name", "ip"), [
    ("4.3.2.1.in-addr.arpa.", "1.2.3.4"), ("4.3.2.1.in-addr.arpa", "1.2.3.4"),
    (reverse_name("2001:db8::1"), "2001:db8::1"),
    ("3.2.1.in-addr.arpa.", None), ("4.3.2.300.in-addr.arpa.", None), ("x.3.2.1.in-addr.arpa.", None),
    ("1.ip6.arpa.", None), ("example.com.", None),
])
def test_reverse_names(name: str, ip: str | None) -> None:
    assert reverse_ip(name) == ip


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_*\\.", min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_LABEL, st.sampled_from(["svc", "pod", "default", "web", "db", "_tcp", "_pg", "db-0",
                                                   "cluster", "local", "in-addr", "arpa", "10", "244", "0", "5"])),
                max_size=8),
       st.sampled_from(["A", "AAAA", "SRV", "PTR", "CNAME", "TXT", "SOA", "NS", "ANY", "MX", "TYPE65534"]))
def test_any_name_gets_a_well_formed_answer(labels: list[str], qtype: str) -> None:
    got = RECORDS.answer(".".join(labels) + ".", qtype)
    if got.forward:
        assert not got.answer and not got.authority
    else:
        assert got.rcode in ("NOERROR", "NXDOMAIN") and got.authoritative
        assert not (got.rcode == "NXDOMAIN" and got.answer)
        if not got.answer and "arpa" not in labels:  # negative answers in the zone carry its SOA
            assert [r.rtype for r in got.authority] == ["SOA"]
        assert all(r.rtype == qtype or qtype == "ANY" or r.rtype == "CNAME" for r in got.answer)
