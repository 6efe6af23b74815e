"""The cluster DNS server: DNS over UDP and TCP on the event loop, answering from the shared informer caches.

:class:`DnsServer` listens on every ``(host, port)`` it is given (UDP and TCP on the same
port; port 0 picks a free one, the same for both) and answers each query in four steps:

1. **Parse** with dnspython. Anything that is not a query is dropped (so two servers can
   never ping-pong); a packet with a readable header but an unreadable body is answered
   FORMERR by hand; a shorter one is dropped. Unknown opcodes get NOTIMP, EDNS versions
   above 0 BADVERS, classes other than IN and zone transfers REFUSED.
2. **Answer in the zone** with :class:`~tinykube.dns.records.Records`, reading the
   Service and Endpoints informers' caches at that moment (the informers keep them
   current; nothing is copied or precomputed, and the only extra state is one index per
   informer from IP address to object, for PTR). This is synchronous: a UDP query for a
   cluster name is answered inside the ``datagram_received`` callback. Until both
   informers have synced, names in the zone answer SERVFAIL rather than a NXDOMAIN the
   client would cache.
3. **Answer outside the zone from the host.** A/AAAA questions go to the host's own
   resolver library (``getaddrinfo``, both families in one call, so an IPv4-only name
   answers AAAA with NODATA rather than NXDOMAIN), PTR questions for addresses the cluster
   does not know to ``getnameinfo``; every other type is REFUSED. The server itself never
   sends a DNS packet anywhere: the host's libc (``/etc/hosts``, nsswitch, its resolvers)
   does, exactly as for any other process on the machine. The calls block, so they run on
   a small thread pool of this server's own (:class:`HostResolver`), never on the loop's
   default executor that other components share; at most ``max_pending`` run at once and
   each is given ``forward_timeout`` seconds, after which the answer is SERVFAIL.
4. **Render.** Over UDP the reply must fit 512 bytes, or the client's EDNS payload size
   (capped at ``max_udp_payload``). When it does not, the additional section goes first
   (no TC bit, as RFC 2181 allows); if it still does not fit, the answer is sent empty
   with TC set and the client retries over TCP, where each message is length-prefixed and
   may reach 65535 bytes. A TCP connection may carry many queries, answered in order, and
   is closed after ``tcp_idle_timeout`` seconds without one.

No input may stop the server: every per-packet step runs under a catch-all that logs and
moves on, and the fuzz test throws random bytes at both transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from ..api.resources import must
from ..machinery.informer import NAMESPACE_INDEX, InformerFactory
from .records import Answer, Config, Obj, Record, Records, endpoint_ips, reverse_ip, service_ips

log = logging.getLogger("tinykube.dns")

SERVICES = must("", "v1", "services")
ENDPOINTS = must("", "v1", "endpoints")
IP_INDEX = "tinykube.dns/ip"

UDP_MIN = 512
TCP_MAX = 65535
_QR = 0x8000
_RD = 0x0100
_OPCODE_MASK = 0x7800


class InformerSource:
    """The :class:`~tinykube.dns.records.Source` over the shared Service and Endpoints informers."""

    def __init__(self, informers: InformerFactory) -> None:
        self.services = informers.informer(SERVICES)
        self.endpoints_informer = informers.informer(ENDPOINTS)
        # Index functions run inside the shared informers: a malformed object must cost its PTR, not the informer.
        self.services.add_index(IP_INDEX, _never_raises(service_ips))
        self.endpoints_informer.add_index(IP_INDEX, _never_raises(endpoint_ips))

    @property
    def ready(self) -> bool:
        return self.services.synced and self.endpoints_informer.synced

    def service(self, ns: str, name: str) -> Obj | None:
        return self.services.get(ns, name)

    def endpoints(self, ns: str, name: str) -> Obj | None:
        return self.endpoints_informer.get(ns, name)

    def has_services(self, ns: str) -> bool:
        return self.services.index_count(NAMESPACE_INDEX, ns) > 0

    def services_with_ip(self, ip: str) -> list[Obj]:
        return self.services.by_index(IP_INDEX, ip)

    def endpoints_with_ip(self, ip: str) -> list[Obj]:
        return self.endpoints_informer.by_index(IP_INDEX, ip)

    def serial(self) -> int:
        """The SOA serial: the newest resourceVersion either informer has seen (it only grows)."""
        rvs = [int(rv) for rv in (self.services.resource_version, self.endpoints_informer.resource_version)
               if rv.isdigit()]
        return max(rvs, default=1)


def _never_raises(fn: Callable[[Obj], list[str]]) -> Callable[[Obj], list[str]]:
    def safe(obj: Obj) -> list[str]:
        try:
            return fn(obj)
        except Exception:
            return []
    return safe


@dataclass
class HostAnswer:
    rcode: str = "NOERROR"  # NOERROR, NXDOMAIN or SERVFAIL
    values: list[str] = field(default_factory=list)  # addresses, or names for a reverse lookup


class HostResolver:
    """Names outside the zone, resolved as the host resolves them: libc's getaddrinfo/getnameinfo in threads."""

    def __init__(self, workers: int = 4) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="tinykube-dns")
        return self._pool

    async def addresses(self, name: str) -> HostAnswer:
        """Every address (IPv4 and IPv6) of ``name`` (given without its final dot)."""
        call = functools.partial(socket.getaddrinfo, name, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
        try:
            infos = await asyncio.get_running_loop().run_in_executor(self.pool, call)
        except socket.gaierror as ex:
            return HostAnswer(_gai_rcode(ex))
        except (OSError, UnicodeError, ValueError):
            return HostAnswer("SERVFAIL")
        out: list[str] = []
        for info in infos:
            try:
                ip = str(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            except ValueError:
                continue
            if ip not in out:
                out.append(ip)
        return HostAnswer("NOERROR", out)

    async def reverse(self, ip: str) -> HostAnswer:
        """The host's name for an address (the PTR lookup, /etc/hosts included)."""
        sa: tuple[str, int] | tuple[str, int, int, int] = (ip, 0) if ":" not in ip else (ip, 0, 0, 0)
        call = functools.partial(socket.getnameinfo, sa, socket.NI_NAMEREQD)
        try:
            host, _ = await asyncio.get_running_loop().run_in_executor(self.pool, call)
        except socket.gaierror as ex:
            return HostAnswer(_gai_rcode(ex))
        except (OSError, UnicodeError, ValueError):
            return HostAnswer("SERVFAIL")
        return HostAnswer("NOERROR", [host])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _gai_rcode(ex: socket.gaierror) -> str:
    if ex.errno == socket.EAI_NONAME:
        return "NXDOMAIN"
    if ex.errno == getattr(socket, "EAI_NODATA", None):
        return "NOERROR"  # the name exists without addresses
    return "SERVFAIL"


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.server._udp_received(self.transport, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns udp: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class DnsServer:
    """Cluster DNS on ``addresses`` (IP literal, port) pairs, answering from ``informers``.

    Constructing registers the Service and Endpoints informers with the factory (start the
    factory as usual); :meth:`start` binds every address (UDP and TCP), :meth:`listen` binds
    one more at any time, :meth:`stop` closes everything. ``resolver`` answers names outside
    the zone (by default a :class:`HostResolver`, closed by :meth:`stop`).
    """

    def __init__(self, informers: InformerFactory, addresses: Sequence[tuple[str, int]] = (),
                 config: Config | None = None, *, resolver: HostResolver | None = None,
                 max_udp_payload: int = 4096, max_pending: int = 64, forward_timeout: float = 5.0,
                 tcp_idle_timeout: float = 10.0, max_tcp_connections: int = 256) -> None:
        self.config = config or Config()
        self.source = InformerSource(informers)
        self.records = Records(self.source, self.config)
        self.addresses = list(addresses)
        self.resolver = resolver or HostResolver()
        self._own_resolver = resolver is None
        self.max_udp_payload = max(UDP_MIN, min(max_udp_payload, TCP_MAX))
        self.max_pending = max_pending
        self.forward_timeout = forward_timeout
        self.tcp_idle_timeout = tcp_idle_timeout
        self.max_tcp_connections = max_tcp_connections
        self._udp: list[tuple[asyncio.DatagramTransport, _UdpProtocol]] = []
        self._tcp: list[asyncio.Server] = []
        self._bound: list[tuple[str, int]] = []
        self._tasks: set[asyncio.Task[None]] = set()  # forwarded UDP queries and TCP connections
        self._writers: set[asyncio.StreamWriter] = set()
        self._pending = 0

    # -- lifecycle ------------------------------------------------------------------------------------------
    @property
    def bound(self) -> list[tuple[str, int]]:
        """The (host, port) pairs being served, ports resolved (what port 0 became)."""
        return list(self._bound)

    async def start(self) -> None:
        """Bind every configured address; on any failure, close what was bound and raise the OSError."""
        try:
            for host, port in self.addresses:
                await self.listen(host, port)
        except BaseException:
            await self.stop()
            raise

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Serve UDP and TCP on ``host`` (an IP address) and ``port`` (0: a free port, the same for both)."""
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        loop = asyncio.get_running_loop()
        for _attempt in range(20 if port == 0 else 1):
            udp_sock = _bound_socket(family, socket.SOCK_DGRAM, host, port)
            real_port = udp_sock.getsockname()[1]
            try:
                tcp_sock = _bound_socket(family, socket.SOCK_STREAM, host, real_port)
            except OSError:
                udp_sock.close()
                if port == 0:
                    continue  # the TCP side of that free UDP port is taken: try another
                raise
            transport, proto = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=udp_sock)
            try:
                tcp_sock.listen(128)
                srv = await asyncio.start_server(self._tcp_client, sock=tcp_sock)
            except BaseException:
                transport.close()
                tcp_sock.close()
                raise
            self._udp.append((transport, proto))
            self._tcp.append(srv)
            self._bound.append((host, real_port))
            log.info("cluster DNS serving %s port %d (zone %s)", host, real_port, self.records.zone)
            return host, real_port
        raise OSError(f"no free port with both UDP and TCP on {host}")

    async def stop(self) -> None:
        for t, _ in self._udp:
            t.close()
        for s in self._tcp:
            s.close()
        for w in list(self._writers):
            w.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in self._tcp:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        for _, proto in self._udp:
            await proto.closed  # the socket is closed once the transport says so (a loop turn after close())
        self._udp.clear()
        self._tcp.clear()
        self._bound.clear()
        if self._own_resolver:
            self.resolver.close()

    # -- transports -----------------------------------------------------------------------------------------
    def _udp_received(self, transport: asyncio.DatagramTransport, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query, early = self._parse(data)
            if query is None:
                if early is not None:
                    transport.sendto(early, addr)
                return
            limit = self._udp_limit(query)
            response = self._local(query)
            if response is None:
                if self._pending >= self.max_pending:
                    response = self._error(query, dns.rcode.SERVFAIL)
                else:
                    self._pending += 1  # counted now: more datagrams may arrive before the task runs
                    self._spawn(self._udp_forward(transport, query, addr, limit))
                    return
            transport.sendto(self._render(response, limit), addr)
        except Exception:  # never let one packet stop the server
            log.exception("dns: answering a UDP query failed")

    async def _udp_forward(self, transport: asyncio.DatagramTransport, query: dns.message.Message,
                           addr: tuple[str, int], limit: int) -> None:
        try:
            response = await self._forward(query)
            if not transport.is_closing():
                transport.sendto(self._render(response, limit), addr)
        except Exception:
            log.exception("dns: answering a UDP query failed")
        finally:
            self._pending -= 1

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.max_tcp_connections:
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), self.tcp_idle_timeout)
                    (size,) = struct.unpack("!H", head)
                    data = await asyncio.wait_for(reader.readexactly(size), self.tcp_idle_timeout)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                reply = await self._reply(data, TCP_MAX)
                if reply is None:
                    return  # nothing sensible to say: the stream may be out of step, so close it
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except ConnectionError:
            pass
        except Exception:
            log.exception("dns: a TCP connection failed")
        finally:
            self._writers.discard(writer)
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _reply(self, data: bytes, limit: int) -> bytes | None:
        try:
            query, early = self._parse(data)
            if query is None:
                return early
            response = self._local(query)
            if response is None:
                if self._pending >= self.max_pending:
                    response = self._error(query, dns.rcode.SERVFAIL)
                else:
                    self._pending += 1
                    try:
                        response = await self._forward(query)
                    finally:
                        self._pending -= 1
            return self._render(response, limit)
        except Exception:
            log.exception("dns: answering a TCP query failed")
            return None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- answering ------------------------------------------------------------------------------------------
    def _parse(self, data: bytes) -> tuple[dns.message.Message | None, bytes | None]:
        """(query, None) to answer; (None, reply) for an immediate FORMERR; (None, None) to drop the packet."""
        if len(data) < 12:
            return None, None
        (qid, flags) = struct.unpack("!HH", data[:4])
        if flags & _QR:
            return None, None  # a response: never answer one
        try:
            return dns.message.from_wire(data), None
        except Exception:
            reply_flags = _QR | (flags & (_OPCODE_MASK | _RD)) | dns.rcode.FORMERR
            return None, struct.pack("!HHHHHH", qid, reply_flags, 0, 0, 0, 0)

    def _local(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response, unless the question needs the host's resolver (then None)."""
        if query.opcode() != dns.opcode.QUERY:
            return self._error(query, dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return self._error(query, dns.rcode.FORMERR)
        if query.edns > 0:
            return self._error(query, dns.rcode.BADVERS)
        q = query.question[0]
        if q.rdclass != dns.rdataclass.IN:
            return self._error(query, dns.rcode.REFUSED)
        if q.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return self._error(query, dns.rcode.REFUSED)  # no zone transfers
        try:
            answer = self.records.answer(q.name.to_text(), dns.rdatatype.to_text(q.rdtype))
        except Exception as ex:  # an object the API should not have let through
            log.warning("dns: cannot answer %s: %s", q.name, ex)
            return self._error(query, dns.rcode.SERVFAIL)
        if not answer.forward:
            if not self.source.ready:
                return self._error(query, dns.rcode.SERVFAIL)  # caches not filled yet: say nothing cacheable
            if answer.chase and q.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                return None  # an ExternalName outside the zone: its addresses come from the host's resolver
            try:
                return self._build(query, answer)
            except Exception as ex:  # data that makes no record (an ExternalName that is no DNS name, say)
                log.warning("dns: cannot answer %s: %s", q.name, ex)
                return self._error(query, dns.rcode.SERVFAIL)
        if q.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.PTR):
            return self._error(query, dns.rcode.REFUSED)
        if q.name == dns.name.root or "\\" in q.name.to_text():
            return self._error(query, dns.rcode.REFUSED)  # not a name the host's resolver can be asked
        if q.rdtype == dns.rdatatype.PTR and reverse_ip(q.name.to_text()) is None:
            return self._error(query, dns.rcode.REFUSED)
        return None

    async def _forward(self, query: dns.message.Message) -> dns.message.Message:
        q = query.question[0]
        owner = q.name.to_text()
        local: Answer | None = None
        if q.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            local = self.records.answer(owner, dns.rdatatype.to_text(q.rdtype))
            if local.forward or not local.chase:
                local = None
            else:
                owner = local.chase  # the CNAME chain so far, then the target's addresses from the host
        try:
            if q.rdtype == dns.rdatatype.PTR:
                ip = reverse_ip(q.name.to_text())
                assert ip is not None
                host = await asyncio.wait_for(self.resolver.reverse(ip), self.forward_timeout)
            else:
                host = await asyncio.wait_for(self.resolver.addresses(owner.rstrip(".")), self.forward_timeout)
        except TimeoutError:
            host = HostAnswer("SERVFAIL")
        except Exception:
            log.exception("dns: host lookup for %s failed", q.name)
            host = HostAnswer("SERVFAIL")
        answer = Answer(host.rcode)
        if local is not None:
            local.rcode = host.rcode if host.rcode == "NXDOMAIN" else local.rcode
            answer = local
        ttl = self.config.forward_ttl
        if host.rcode == "NOERROR":
            for value in host.values:
                if q.rdtype == dns.rdatatype.PTR:
                    answer.answer.append(Record(owner, "PTR", ttl, value.rstrip(".") + "."))
                elif (q.rdtype == dns.rdatatype.A) == (":" not in value):
                    answer.answer.append(Record(owner, "A" if ":" not in value else "AAAA", ttl, value))
        try:
            return self._build(query, answer)
        except Exception:  # a host name that is not a valid DNS name
            return self._error(query, dns.rcode.SERVFAIL)

    def _build(self, query: dns.message.Message, answer: Answer) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=True, our_payload=self.max_udp_payload)
        response.set_rcode(dns.rcode.from_text(answer.rcode))
        if answer.authoritative:
            response.flags |= dns.flags.AA
        for section, records in ((dns.message.MessageSection.ANSWER, answer.answer),
                                 (dns.message.MessageSection.AUTHORITY, answer.authority),
                                 (dns.message.MessageSection.ADDITIONAL, answer.additional)):
            for rec in records:
                rdtype = dns.rdatatype.from_text(rec.rtype)
                rrset = response.find_rrset(section, _name(rec.name), dns.rdataclass.IN, rdtype, create=True)
                rrset.add(_rdata(rdtype, rec.data), rec.ttl)
        return response

    def _error(self, query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=True, our_payload=self.max_udp_payload)
        response.set_rcode(rcode)
        return response

    def _udp_limit(self, query: dns.message.Message) -> int:
        if query.edns < 0:
            return UDP_MIN
        return max(UDP_MIN, min(query.payload, self.max_udp_payload))

    @staticmethod
    def _render(response: dns.message.Message, limit: int) -> bytes:
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            pass
        response.additional = []  # optional data goes first, without TC (RFC 2181 section 9)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            pass
        response.answer = []
        response.authority = []
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)


@functools.lru_cache(maxsize=4096)
def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


@functools.lru_cache(maxsize=4096)
def _rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)


def _bound_socket(family: socket.AddressFamily, kind: socket.SocketKind, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # "::" and "0.0.0.0" can both be bound
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
