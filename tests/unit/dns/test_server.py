"""The DNS server on real UDP and TCP sockets on 127.0.0.1, backed by a real control plane's informers.

Services and Endpoints are created by hand through the in-process client (no endpoints controller runs here);
queries are made with dnspython's blocking ``dns.query`` functions in a thread, as any client would make them.
Names outside the zone go to a fake host resolver, except in the one test that asks the real one for localhost.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from tests.harness import ControlPlane, control_plane, eventually

from tinykube.api.resources import must
from tinykube.dns.records import Config
from tinykube.dns.server import DnsServer, HostAnswer, HostResolver

SERVICES = must("", "v1", "services")
ENDPOINTS = must("", "v1", "endpoints")


class FakeHost(HostResolver):
    """The host's resolver, as a table: name -> addresses; missing names are NXDOMAIN."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {"example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
                                            "v4only.example": ["192.0.2.1"], "slow.example": []}
        self.ptr = {"192.0.2.1": "v4only.example"}
        self.asked: list[str] = []

    async def addresses(self, name: str) -> HostAnswer:
        self.asked.append(name)
        if name == "slow.example":
            await asyncio.sleep(30)
        if name not in self.names:
            return HostAnswer("NXDOMAIN")
        return HostAnswer("NOERROR", self.names[name])

    async def reverse(self, ip: str) -> HostAnswer:
        self.asked.append(ip)
        return HostAnswer("NOERROR", [self.ptr[ip]]) if ip in self.ptr else HostAnswer("NXDOMAIN")

    def close(self) -> None:
        pass


@dataclass
class Env:
    cp: ControlPlane
    server: DnsServer
    host: FakeHost

    @property
    def port(self) -> int:
        return self.server.bound[0][1]

    async def udp(self, qname: str, qtype: str = "A", **kw: Any) -> dns.message.Message:
        q = dns.message.make_query(qname, qtype, **kw)
        return await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout=3, port=self.port)

    async def tcp(self, qname: str, qtype: str = "A") -> dns.message.Message:
        q = dns.message.make_query(qname, qtype)
        return await asyncio.to_thread(dns.query.tcp, q, "127.0.0.1", timeout=3, port=self.port)

    async def service(self, name: str, spec: dict[str, Any], ns: str = "default") -> dict[str, Any]:
        return await self.cp.client.create(SERVICES, ns, {"metadata": {"name": name}, "spec": spec})

    async def endpoints(self, name: str, subsets: list[dict[str, Any]], ns: str = "default") -> None:
        await self.cp.client.create(ENDPOINTS, ns, {"metadata": {"name": name}, "subsets": subsets})


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with control_plane(tmp_path) as cp:
        host = FakeHost()
        server = DnsServer(cp.informers, [("127.0.0.1", 0)], resolver=host, forward_timeout=0.5)
        cp.informers.start()
        await cp.informers.wait_synced()
        await server.start()
        try:
            yield Env(cp, server, host)
        finally:
            await server.stop()


def _split(rrset: Any) -> list[str]:
    return [f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}" for rd in rrset]


def _rows(msg: dns.message.Message, section: str = "answer") -> list[str]:
    return sorted(row for rrset in getattr(msg, section) for row in _split(rrset))


async def answer_of(query: Any, want: str) -> dns.message.Message:
    """Query until the informers have caught up and the answer section has ``want`` (a substring)."""
    return await eventually(lambda: _matching(query, want), timeout=5, what=want)


async def _matching(query: Any, want: str) -> dns.message.Message | None:
    msg = await query()
    return msg if any(want in row for row in _rows(msg)) else None


async def test_services_over_udp_and_tcp(env: Env) -> None:
    # The bootstrap Service, there from the start.
    r = await env.udp("kubernetes.default.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA and r.flags & dns.flags.RA
    assert _rows(r) == ["kubernetes.default.svc.cluster.local. 5 A 10.96.0.1"]

    web = await env.service("web", {"ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                                    "selector": {"app": "web"}})
    ip = web["spec"]["clusterIP"]
    r = await answer_of(lambda: env.udp("web.default.svc.cluster.local."), ip)
    assert _rows(r) == [f"web.default.svc.cluster.local. 5 A {ip}"]
    r = await env.tcp("web.default.svc.cluster.local.")
    assert _rows(r) == [f"web.default.svc.cluster.local. 5 A {ip}"]
    # SRV with its target's address as additional data.
    r = await env.udp("_http._tcp.web.default.svc.cluster.local.", "SRV")
    assert _rows(r) == ["_http._tcp.web.default.svc.cluster.local. 5 SRV 0 100 80 web.default.svc.cluster.local."]
    assert _rows(r, "additional") == [f"web.default.svc.cluster.local. 5 A {ip}"]
    # PTR of the cluster IP.
    rev = ".".join(reversed(ip.split("."))) + ".in-addr.arpa."
    r = await env.udp(rev, "PTR")
    assert _rows(r) == [f"{rev} 5 PTR web.default.svc.cluster.local."]
    # AAAA of an IPv4-only Service: NODATA with the SOA, not NXDOMAIN.
    r = await env.udp("web.default.svc.cluster.local.", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert [rrset.rdtype for rrset in r.authority] == [dns.rdatatype.SOA] and r.authority[0].ttl == 30


async def test_headless_services_hostnames_and_srv(env: Env) -> None:
    await env.service("db", {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432, "targetPort": 5433}]})
    await env.endpoints("db", [{
        "addresses": [{"ip": "10.244.0.5", "hostname": "db-0"}, {"ip": "10.244.0.6"}],
        "notReadyAddresses": [{"ip": "10.244.0.7"}],
        "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}]}])
    r = await answer_of(lambda: env.udp("db.default.svc.cluster.local."), "10.244.0.6")
    assert _rows(r) == ["db.default.svc.cluster.local. 5 A 10.244.0.5", "db.default.svc.cluster.local. 5 A 10.244.0.6"]
    r = await env.udp("db-0.db.default.svc.cluster.local.")
    assert _rows(r) == ["db-0.db.default.svc.cluster.local. 5 A 10.244.0.5"]
    r = await env.tcp("_pg._tcp.db.default.svc.cluster.local.", "SRV")
    assert _rows(r) == [
        "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 50 5433 10-244-0-6.db.default.svc.cluster.local.",
        "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 50 5433 db-0.db.default.svc.cluster.local.",
    ]
    assert _rows(r, "additional") == ["10-244-0-6.db.default.svc.cluster.local. 5 A 10.244.0.6",
                                      "db-0.db.default.svc.cluster.local. 5 A 10.244.0.5"]
    r = await env.udp("5.0.244.10.in-addr.arpa.", "PTR")
    assert _rows(r) == ["5.0.244.10.in-addr.arpa. 5 PTR db-0.db.default.svc.cluster.local."]

    # Publishing not-ready addresses takes effect as the informer sees the change.
    svc = await env.cp.client.get(SERVICES, "default", "db")
    svc = {**svc, "spec": {**svc["spec"], "publishNotReadyAddresses": True}}
    await env.cp.client.update(SERVICES, "default", svc)
    r = await answer_of(lambda: env.udp("db.default.svc.cluster.local."), "10.244.0.7")
    assert len(r.answer[0]) == 3


async def test_external_name_is_a_cname_followed_for_addresses(env: Env) -> None:
    await env.service("ext", {"type": "ExternalName", "externalName": "example.com"})
    r = await answer_of(lambda: env.udp("ext.default.svc.cluster.local.", "CNAME"), "CNAME")
    assert _rows(r) == ["ext.default.svc.cluster.local. 5 CNAME example.com."]
    assert env.host.asked == []  # asked for the CNAME itself: the target is not looked up
    # Asked for an address, the server follows the alias (stub resolvers in pods do not): out of the zone
    # through the host's resolver, in the zone from its own records.
    r = await env.udp("ext.default.svc.cluster.local.")
    assert _rows(r) == ["example.com. 30 A 93.184.215.14", "ext.default.svc.cluster.local. 5 CNAME example.com."]
    assert r.rcode() == dns.rcode.NOERROR and env.host.asked
    await env.service("gone", {"type": "ExternalName", "externalName": "nowhere.invalid"})
    r = await answer_of(lambda: env.udp("gone.default.svc.cluster.local."), "CNAME")
    assert r.rcode() == dns.rcode.NXDOMAIN and _rows(r) == ["gone.default.svc.cluster.local. 5 CNAME nowhere.invalid."]
    await env.service("web2", {"clusterIP": "10.96.0.77", "ports": [{"port": 80}]})
    await env.service("inner", {"type": "ExternalName", "externalName": "web2.default.svc.cluster.local"})
    r = await answer_of(lambda: env.udp("inner.default.svc.cluster.local."), "10.96.0.77")
    assert _rows(r) == ["inner.default.svc.cluster.local. 5 CNAME web2.default.svc.cluster.local.",
                        "web2.default.svc.cluster.local. 5 A 10.96.0.77"]


async def test_missing_names_are_nxdomain_with_the_soa(env: Env) -> None:
    r = await env.udp("nope.default.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA and not r.answer
    [soa] = r.authority
    assert soa.name.to_text() == "cluster.local." and soa.ttl == 30
    assert soa[0].mname.to_text() == "ns.dns.cluster.local." and soa[0].minimum == 30
    r = await env.udp("kube-system.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NXDOMAIN
    r = await env.udp("default.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer


async def test_deleted_services_go_away(env: Env) -> None:
    await env.service("tmp", {"ports": [{"port": 80}], "selector": {"a": "b"}})
    await answer_of(lambda: env.udp("tmp.default.svc.cluster.local."), " A ")
    await env.cp.client.delete(SERVICES, "default", "tmp")

    async def gone() -> bool:
        return (await env.udp("tmp.default.svc.cluster.local.")).rcode() == dns.rcode.NXDOMAIN
    await eventually(gone, timeout=5, what="NXDOMAIN after delete")


async def test_pod_names(env: Env) -> None:
    r = await env.udp("10-244-1-2.whatever.pod.cluster.local.")
    assert _rows(r) == ["10-244-1-2.whatever.pod.cluster.local. 5 A 10.244.1.2"]


async def test_names_outside_the_zone_come_from_the_host(env: Env) -> None:
    r = await env.udp("example.com.")
    assert r.rcode() == dns.rcode.NOERROR and not r.flags & dns.flags.AA and r.flags & dns.flags.RA
    assert _rows(r) == ["example.com. 30 A 93.184.215.14"]
    r = await env.tcp("example.com.", "AAAA")
    assert _rows(r) == ["example.com. 30 AAAA 2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    r = await env.udp("v4only.example.", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    r = await env.udp("nowhere.example.")
    assert r.rcode() == dns.rcode.NXDOMAIN
    r = await env.udp("1.2.0.192.in-addr.arpa.", "PTR")
    assert _rows(r) == ["1.2.0.192.in-addr.arpa. 30 PTR v4only.example."]
    r = await env.udp("example.com.", "MX")
    assert r.rcode() == dns.rcode.REFUSED
    # A lookup the host does not finish in time is SERVFAIL, and does not hold up other queries.
    slow = asyncio.ensure_future(env.udp("slow.example."))
    r = await env.udp("kubernetes.default.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NOERROR and not slow.done()
    assert (await slow).rcode() == dns.rcode.SERVFAIL
    assert env.host.asked == ["example.com", "example.com", "v4only.example", "nowhere.example", "192.0.2.1",
                              "slow.example"]


async def test_host_lookups_are_bounded(env: Env) -> None:
    env.server.max_pending = 1
    slow = asyncio.ensure_future(env.udp("slow.example."))
    await eventually(lambda: env.host.asked == ["slow.example"], timeout=3, what="the slow lookup to start")
    r = await env.udp("example.com.")
    assert r.rcode() == dns.rcode.SERVFAIL and not slow.done()  # no room: refused at once, not queued
    r = await env.udp("kubernetes.default.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NOERROR  # the zone needs no lookups
    assert (await slow).rcode() == dns.rcode.SERVFAIL
    r = await env.tcp("example.com.")
    assert r.rcode() == dns.rcode.NOERROR and r.answer


async def test_the_real_host_resolver(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        server = DnsServer(cp.informers, [("127.0.0.1", 0)])
        await server.start()
        try:
            q = dns.message.make_query("localhost.", "A")
            r = await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout=5, port=server.bound[0][1])
            assert "localhost. 30 A 127.0.0.1" in _rows(r)
        finally:
            await server.stop()


async def test_big_answers_are_truncated_over_udp_and_whole_over_tcp(env: Env) -> None:
    await env.service("big", {"clusterIP": "None"})
    await env.endpoints("big", [{"addresses": [{"ip": f"10.244.9.{i}"} for i in range(1, 81)]}])
    r = await answer_of(lambda: env.tcp("big.default.svc.cluster.local."), "10.244.9.80")
    assert len(r.answer[0]) == 80
    # 80 A records are ~1.3 KB: over 512 bytes without EDNS.
    q = dns.message.make_query("big.default.svc.cluster.local.", "A")
    raw = await asyncio.to_thread(_udp_raw, q.to_wire(), env.port)
    assert raw is not None and len(raw) <= 512
    r = dns.message.from_wire(raw)
    assert r.flags & dns.flags.TC and not r.answer and r.id == q.id
    # With EDNS the client's size is the limit.
    r = await env.udp("big.default.svc.cluster.local.", use_edns=0, payload=4096)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 80
    raw = await asyncio.to_thread(_udp_raw, dns.message.make_query(
        "big.default.svc.cluster.local.", "A", use_edns=0, payload=1000).to_wire(), env.port)
    assert raw is not None and len(raw) <= 1000 and dns.message.from_wire(raw).flags & dns.flags.TC
    # An SRV answer that fits only without its additional records loses them, without TC.
    await env.service("srv", {"clusterIP": "None"})
    await env.endpoints("srv", [{"addresses": [{"ip": f"10.244.8.{i}"} for i in range(1, 7)],
                                 "ports": [{"name": "p", "port": 1, "protocol": "TCP"}]}])
    await answer_of(lambda: env.tcp("srv.default.svc.cluster.local."), "10.244.8.6")
    r = await env.udp("_p._tcp.srv.default.svc.cluster.local.", "SRV")
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 6 and not r.additional
    r = await env.tcp("_p._tcp.srv.default.svc.cluster.local.", "SRV")
    assert len(r.answer[0]) == 6 and len(r.additional) == 6


async def test_tcp_connections_carry_several_queries(env: Env) -> None:
    names = ["kubernetes.default.svc.cluster.local.", "nope.default.svc.cluster.local.", "example.com."]
    queries = [dns.message.make_query(n, "A") for n in names]

    def exchange() -> list[dns.message.Message]:
        with socket.create_connection(("127.0.0.1", env.port), timeout=3) as s:
            s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries)))
            out = []
            for _ in queries:
                (n,) = struct.unpack("!H", _recv_exactly(s, 2))
                out.append(dns.message.from_wire(_recv_exactly(s, n)))
            return out

    answers = await asyncio.to_thread(exchange)
    assert [a.id for a in answers] == [q.id for q in queries]
    assert [a.rcode() for a in answers] == [dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.NOERROR]


async def test_odd_queries(env: Env) -> None:
    q = dns.message.make_query("kubernetes.default.svc.cluster.local.", "A", use_edns=1)
    raw = await asyncio.to_thread(_udp_raw, q.to_wire(), env.port)
    assert raw is not None and dns.message.from_wire(raw).rcode() == dns.rcode.BADVERS
    q = dns.message.make_query("version.bind.", "TXT", rdclass=dns.rdataclass.CH)
    assert (await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout=3, port=env.port)).rcode() == \
        dns.rcode.REFUSED
    q = dns.message.make_query("cluster.local.", "AXFR")
    assert (await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout=3, port=env.port)).rcode() == \
        dns.rcode.REFUSED
    q = dns.message.make_query("cluster.local.", "SOA")
    q.set_opcode(dns.opcode.STATUS)
    assert (await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout=3, port=env.port)).rcode() == \
        dns.rcode.NOTIMP


async def test_malformed_packets_and_fuzz_do_not_stop_the_server(env: Env) -> None:
    # A readable header with a broken body: FORMERR, same id.
    raw = await asyncio.to_thread(_udp_raw, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07broken", env.port)
    assert raw is not None
    (qid, flags) = struct.unpack("!HH", raw[:4])
    assert qid == 0x1234 and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
    # Too short for a header, or a response rather than a query: no answer at all.
    assert await asyncio.to_thread(_udp_raw, b"\x00\x01\x02", env.port, 0.3) is None
    resp = dns.message.make_response(dns.message.make_query("kubernetes.default.svc.cluster.local.", "A"))
    assert await asyncio.to_thread(_udp_raw, resp.to_wire(), env.port, 0.3) is None

    rng = random.Random(5)
    good = dns.message.make_query("kubernetes.default.svc.cluster.local.", "A").to_wire()
    packets = [rng.randbytes(rng.randrange(0, 600)) for _ in range(400)]
    # Mutations of a good query reach deeper into the parser than pure noise does.
    for _ in range(400):
        b = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        packets.append(bytes(b[:rng.randrange(len(b) + 1)] if rng.random() < 0.3 else b))

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in packets:
            s.sendto(p, ("127.0.0.1", env.port))
            await asyncio.sleep(0)
    for chunk in (packets[:5], packets[400:405]):
        await asyncio.to_thread(_tcp_garbage, env.port, chunk)
    await asyncio.sleep(0.1)

    r = await env.udp("kubernetes.default.svc.cluster.local.")
    assert _rows(r) == ["kubernetes.default.svc.cluster.local. 5 A 10.96.0.1"]
    r = await env.tcp("kubernetes.default.svc.cluster.local.")
    assert _rows(r) == ["kubernetes.default.svc.cluster.local. 5 A 10.96.0.1"]


async def test_not_synced_yet_is_servfail_in_the_zone(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        server = DnsServer(cp.informers, [("127.0.0.1", 0)], resolver=FakeHost())  # informers never started
        await server.start()
        try:
            port = server.bound[0][1]
            q = dns.message.make_query("kubernetes.default.svc.cluster.local.", "A")
            r = await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout=3, port=port)
            assert r.rcode() == dns.rcode.SERVFAIL
            q = dns.message.make_query("example.com.", "A")
            r = await asyncio.to_thread(dns.query.udp, q, "127.0.0.1", timeout=3, port=port)
            assert r.rcode() == dns.rcode.NOERROR and r.answer
        finally:
            await server.stop()


async def test_several_addresses_a_configured_zone_and_stop(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as cp:
        server = DnsServer(cp.informers, [("127.0.0.1", 0), ("127.0.0.2", 0)], Config(zone="corp.internal"),
                           resolver=FakeHost())
        cp.informers.start()
        await cp.informers.wait_synced()
        await server.start()
        try:
            extra = await server.listen("127.0.0.3", 0)
            assert len(server.bound) == 3 and server.bound[2] == extra
            for host, port in server.bound:
                for query in (dns.query.udp, dns.query.tcp):
                    q = dns.message.make_query("kubernetes.default.svc.corp.internal.", "A")
                    r = await asyncio.to_thread(query, q, host, timeout=3, port=port)
                    assert _rows(r) == ["kubernetes.default.svc.corp.internal. 5 A 10.96.0.1"]
            # A port in use fails start() with OSError, and leaves nothing bound.
            other = DnsServer(cp.informers, [("127.0.0.4", 0), ("127.0.0.1", server.bound[0][1])], resolver=FakeHost())
            with pytest.raises(OSError):
                await other.start()
            assert other.bound == []
        finally:
            bound = server.bound
            await server.stop()
        assert server.bound == []
        # Everything was closed: the same ports can be bound again.
        for host, port in bound:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((host, port))
        # And the server starts again.
        await server.start()
        try:
            q = dns.message.make_query("kubernetes.default.svc.corp.internal.", "A")
            r = await asyncio.to_thread(dns.query.tcp, q, "127.0.0.1", timeout=3, port=server.bound[0][1])
            assert r.rcode() == dns.rcode.NOERROR and len(server.bound) == 2
        finally:
            await server.stop()


async def test_ipv6_addresses(env: Env) -> None:
    try:
        host, port = await env.server.listen("::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    for query in (dns.query.udp, dns.query.tcp):
        q = dns.message.make_query("kubernetes.default.svc.cluster.local.", "A")
        r = await asyncio.to_thread(query, q, host, timeout=3, port=port)
        assert _rows(r) == ["kubernetes.default.svc.cluster.local. 5 A 10.96.0.1"]


def _udp_raw(wire: bytes, port: int, timeout: float = 3.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _tcp_garbage(port: int, packets: list[bytes]) -> None:
    """Length-prefixed garbage, a lying length prefix, then a half-sent message; the server may close on us."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        try:
            for p in packets:
                s.sendall(struct.pack("!H", len(p)) + p)
            s.sendall(b"\xff\xff\x00\x01")
        except OSError:
            pass
