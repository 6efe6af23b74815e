"""The userspace data path: Service NodePorts relayed by an asyncio proxy, for tinykube without root.

Without root there is no nftables and no network namespace: pods listen on host addresses,
and a Service's ClusterIP is not an address of this machine, so nothing can be reached
through it. What remains reachable are ports on the host, so :class:`UserspaceProxy` opens
one listener per NodePort on each of its ``listen_hosts`` (``["127.0.0.1"]`` usually) and
relays every connection to one of the Service port's :attr:`~.nftrules.ServicePort.targets`.
The same :class:`~.nftrules.ServicePort` values that :func:`~.nftrules.ruleset` renders feed
:meth:`UserspaceProxy.apply`, so both data paths pick the same endpoints.

ClusterIPs are not listened on automatically: in rootless mode they are virtual addresses
no interface carries. A caller that wants a Service reachable elsewhere — say a fixed local
port for cluster DNS — passes ``extra_listeners`` to :meth:`~UserspaceProxy.apply`:
``{ServicePort.key: [(host, port), ...]}``, opened with the Service port's protocol exactly
like NodePorts. SCTP ports are not proxied (asyncio has no SCTP streams).

Reconciling
-----------
:meth:`~UserspaceProxy.apply` is given the full list every time and makes the listeners
match it: a listener ``(host, port, protocol)`` that is still wanted is kept (its socket
stays bound, no connection is disturbed) and only switched to the new Service port value,
so new connections see the new targets at once; a listener no longer wanted is closed, but
connections it accepted earlier keep running until either end closes them — removing a
backend never cuts an established TCP connection, as with conntrack in the kernel path.
A port that cannot be bound (in use, no permission) is logged, reported by
:meth:`~UserspaceProxy.errors` and retried on the next apply; apply never raises for it.
Should two Service ports claim one listener (the apiserver's allocators prevent it), the
first by key wins, as in the nftables ruleset.

Every apply increments :attr:`~UserspaceProxy.generation` and publishes a
:class:`Snapshot` (generation, bound listeners, errors, :meth:`~UserspaceProxy.target_ips`);
:meth:`~UserspaceProxy.wait_for` waits until a snapshot satisfies a predicate.

TCP
---
Each accepted connection gets a freshly shuffled order of the targets, so the first choice
is uniform at random; with ``sessionAffinity: ClientIP`` a client address that connected
within ``session_affinity_seconds`` goes first to the backend it had (each connection
refreshes the entry; entries belong to the Service port, shared by all of its listeners).
Connect attempts follow that order, each at most once and within ``connect_timeout``; the
first that succeeds is used (and remembered for affinity). A Service port without targets,
or whose targets all refuse, gets the client connection reset at once (``SO_LINGER`` 0):
the client fails immediately instead of hanging.

The relay is two asyncio Protocols joined back to back, no streams and no per-byte work:
``data_received`` hands each chunk (up to the loop's read size) straight to the other
transport's ``write``. Backpressure is the transports' own flow control: when one side's
write buffer passes ``buffer_size`` its ``pause_writing`` pauses reading on the other
side, and ``resume_writing`` resumes it, so at most about ``buffer_size`` bytes per
direction sit in the proxy however slow a peer reads. The client side does not read at
all until the backend is connected. Half-close is forwarded: EOF from one side becomes
``write_eof`` on the other while the opposite direction keeps flowing; when both
directions have seen EOF both sockets are closed (after their buffers drain). A side that
is lost with an error (a reset) aborts the other one, a clean close closes it.

UDP
---
A UDP listener keeps one session per client address: a connected socket towards the
backend chosen for that client (randomly, or by affinity), whose replies are sent back to
the client from the listener's socket. A session expires after ``udp_idle_timeout``
seconds without a datagram in either direction; an ICMP error from the backend (port
unreachable) ends it, so the client's next datagram chooses again. Datagrams for a port
without targets are dropped (userspace cannot answer with ICMP). Unlike TCP, a UDP
session never ends by itself, so sessions whose backend is no longer a target are closed
on apply — as kube-proxy clears the conntrack entries of removed UDP endpoints.

:meth:`~UserspaceProxy.stop` closes the listeners, every relayed connection and every UDP
session; the proxy cannot be applied again afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

from .nftrules import Backend, ServicePort

__all__ = ["Listener", "Snapshot", "UserspaceProxy"]

log = logging.getLogger("tinykube.proxy")

Listener = tuple[str, int, str]
"""``(host, port, protocol)`` of one listening socket; protocol is ``TCP`` or ``UDP``."""

Target = tuple[str, int]

PROXIED = ("TCP", "UDP")
_RANDOM = random.Random()


@dataclass(frozen=True)
class Snapshot:
    """What one :meth:`UserspaceProxy.apply` left in place."""

    generation: int
    bound: tuple[Listener, ...]
    errors: Mapping[Listener, str]
    target_ips: frozenset[str]
    ports: tuple[ServicePort, ...] = field(default=(), repr=False)


# ---------------------------------------------------------------------------------------------------------------
# TCP


class _Half(asyncio.Protocol):
    """One socket of a relayed connection; everything it reads goes to its peer."""

    def __init__(self, relay: _TcpRelay) -> None:
        self.relay = relay
        self.peer: _Half | None = None
        self.transport: asyncio.Transport | None = None
        self.eof = False  # this side has sent us EOF
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        limit = self.relay.proxy.buffer_size
        transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self.relay.made(self)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.write(data)

    def eof_received(self) -> bool:
        if not self.eof:
            self.eof = True
            self.relay.half_closed(self)
        return True  # keep the socket open: the other direction may still be flowing

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume_reading()

    def pause_reading(self) -> None:
        # Never touch the reader after EOF: resuming it would report EOF a second time.
        if self.transport is not None and not self.eof and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.eof and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.relay.lost(self, exc)


def _reset(transport: asyncio.Transport) -> None:
    """Close with RST rather than FIN, so the client sees a refusal and not an empty answer."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _TcpRelay:
    """One client connection and, once connected, its backend connection."""

    def __init__(self, proxy: UserspaceProxy, listener: _TcpListener) -> None:
        self.proxy = proxy
        self.listener = listener
        self.client = _Half(self)
        self.backend: _Half | None = None
        self.target: Target | None = None
        self.task: asyncio.Task[None] | None = None

    def made(self, half: _Half) -> None:
        if half is self.client:
            assert half.transport is not None
            half.transport.pause_reading()  # nothing is read until there is somewhere to put it
            self.proxy._relays.add(self)
            self.task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        client = self.client
        assert client.transport is not None
        sp = self.listener.service_port
        peer = client.transport.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else ""
        loop = asyncio.get_running_loop()
        for b in self.proxy._order(sp, client_ip):
            if client.lost:
                return
            half = _Half(self)
            try:
                async with asyncio.timeout(self.proxy.connect_timeout):
                    await loop.create_connection(lambda h=half: h, b.ip, b.port)  # type: ignore[misc]
            except (OSError, TimeoutError) as e:
                log.debug("%s: backend %s:%d failed: %s", sp.key, b.ip, b.port, e or "timeout")
                continue
            if client.lost:
                if half.transport is not None:
                    half.transport.close()
                return
            self.proxy._remember(sp, client_ip, b)
            self.backend, self.target = half, (b.ip, b.port)
            half.peer, client.peer = client, half
            client.resume_reading()
            return
        log.debug("%s: no backend for %s, resetting", sp.key, client_ip)
        _reset(client.transport)

    def half_closed(self, half: _Half) -> None:
        peer = half.peer
        if peer is None or peer.transport is None or peer.transport.is_closing():
            return
        if peer.eof:  # both directions are done
            peer.transport.close()
            if half.transport is not None:
                half.transport.close()
        elif peer.transport.can_write_eof():
            peer.transport.write_eof()
        else:
            peer.transport.close()

    def lost(self, half: _Half, exc: Exception | None) -> None:
        if half is self.client and self.task is not None and not self.task.done():
            self.task.cancel()
        peer = half.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            if exc is None:
                peer.transport.close()
            else:
                peer.transport.abort()
        if self.client.lost and (self.backend is None or self.backend.lost):
            self.proxy._relays.discard(self)

    def abort(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        for half in (self.client, self.backend):
            if half is not None and half.transport is not None:
                half.transport.abort()


class _TcpListener:
    def __init__(self, proxy: UserspaceProxy, service_port: ServicePort) -> None:
        self.proxy = proxy
        self.service_port = service_port
        self.server: asyncio.Server | None = None

    def protocol(self) -> asyncio.Protocol:
        return _TcpRelay(self.proxy, self).client

    async def open(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self.protocol, host, port, reuse_address=True, backlog=1024)

    def close(self) -> None:
        # Server.close() stops accepting only; connections already accepted keep running.
        if self.server is not None:
            self.server.close()


# ---------------------------------------------------------------------------------------------------------------
# UDP


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, session: _UdpSession) -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.session.reply(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP backend %s:%d: %s", *self.session.target, exc)
        self.session.close()


class _UdpSession:
    MAX_PENDING = 64

    def __init__(self, listener: _UdpListener, client: tuple[str | int, ...], target: Target) -> None:
        self.listener = listener
        self.client = client
        self.target = target
        self.last = listener.proxy._clock()
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] | None = []
        self.closed = False
        self.task = asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Upstream(self), remote_addr=self.target)
        except OSError as e:
            log.debug("UDP backend %s:%d: %s", *self.target, e)
            self.close()
            return
        if self.closed:
            transport.close()
            return
        self.transport = transport
        for data in self.pending or ():
            transport.sendto(data)
        self.pending = None

    def send(self, data: bytes) -> None:
        self.last = self.listener.proxy._clock()
        if self.transport is not None:
            self.transport.sendto(data)
        elif self.pending is not None and len(self.pending) < self.MAX_PENDING:
            self.pending.append(data)

    def reply(self, data: bytes) -> None:
        self.last = self.listener.proxy._clock()
        out = self.listener.transport
        if out is not None and not out.is_closing():
            out.sendto(data, self.client)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.task.done():
            self.task.cancel()
        if self.transport is not None:
            self.transport.close()
        if self.listener.sessions.get(self.client) is self:
            del self.listener.sessions[self.client]


class _UdpListener(asyncio.DatagramProtocol):
    MAX_SESSIONS = 4096

    def __init__(self, proxy: UserspaceProxy, service_port: ServicePort) -> None:
        self.proxy = proxy
        self.service_port = service_port
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str | int, ...], _UdpSession] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # 3.11's selector transport is no subclass

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        session = self.sessions.get(addr)
        if session is None:
            if len(self.sessions) >= self.MAX_SESSIONS:
                return
            sp = self.service_port
            order = self.proxy._order(sp, str(addr[0]))
            if not order:
                return
            b = order[0]
            self.proxy._remember(sp, str(addr[0]), b)
            session = self.sessions[addr] = _UdpSession(self, addr, (b.ip, b.port))
        session.send(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP listener %s: %s", self.service_port.key, exc)

    async def open(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))

    def close(self) -> None:
        for session in list(self.sessions.values()):
            session.close()
        if self.transport is not None:
            self.transport.close()

    def expire(self, before: float) -> None:
        for session in list(self.sessions.values()):
            if session.last < before:
                session.close()

    def drop_stale(self) -> None:
        live = {(b.ip, b.port) for b in self.service_port.targets}
        for session in list(self.sessions.values()):
            if session.target not in live:
                session.close()


# ---------------------------------------------------------------------------------------------------------------
# The proxy


class UserspaceProxy:
    """Listeners for Service NodePorts (and explicit extra addresses), relaying to the Service's targets.

    ``listen_hosts`` are the addresses every NodePort listens on. ``connect_timeout`` bounds
    each attempt to reach a backend; ``buffer_size`` is the per-direction write buffer
    beyond which the other side stops being read; ``udp_idle_timeout`` ends UDP sessions.
    ``clock`` (monotonic seconds) times affinity entries and UDP sessions.
    """

    def __init__(self, listen_hosts: list[str], *, connect_timeout: float = 3.0, buffer_size: int = 1 << 20,
                 udp_idle_timeout: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.listen_hosts = list(dict.fromkeys(listen_hosts))
        self.connect_timeout = connect_timeout
        self.buffer_size = buffer_size
        self.udp_idle_timeout = udp_idle_timeout
        self._clock = clock
        self._tcp: dict[Listener, _TcpListener] = {}
        self._udp: dict[Listener, _UdpListener] = {}
        self._errors: dict[Listener, str] = {}
        self._relays: set[_TcpRelay] = set()
        self._affinity: dict[str, dict[str, tuple[Target, float]]] = {}
        self._generation = 0
        self._snapshot = Snapshot(0, (), {}, frozenset())
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = False

    # -- state --------------------------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """How many applies have completed (0 before the first)."""
        return self._generation

    def bound(self) -> list[Listener]:
        """Every ``(host, port, protocol)`` listening now, sorted."""
        return sorted([*self._tcp, *self._udp])

    def errors(self) -> dict[Listener, str]:
        """Listeners the last apply wanted but could not open, with the reason (retried on the next apply)."""
        return dict(self._errors)

    def target_ips(self) -> frozenset[str]:
        """Backend IPs that new connections may go to: the targets of every Service port with a bound listener."""
        return self._snapshot.target_ips

    def snapshot(self) -> Snapshot:
        """The state the last apply left (its generation, listeners, errors and target IPs)."""
        return self._snapshot

    def connections(self) -> int:
        """Relayed TCP connections currently open (including those still connecting to a backend)."""
        return len(self._relays)

    def udp_sessions(self) -> int:
        """Open UDP sessions over all listeners."""
        return sum(len(u.sessions) for u in self._udp.values())

    async def wait_for(self, predicate: Callable[[Snapshot], bool], timeout: float | None = None) -> Snapshot:
        """Wait until an applied snapshot satisfies ``predicate`` (checked now and after every apply)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self._snapshot))
            return self._snapshot

    # -- choosing a backend -------------------------------------------------------------------------------------

    def _order(self, sp: ServicePort, client_ip: str) -> list[Backend]:
        """The targets in the order to try: uniformly shuffled, the client's affinity backend (if fresh) first."""
        targets = list(sp.targets)
        order = _RANDOM.sample(targets, len(targets))
        if sp.session_affinity_seconds and client_ip:
            entry = self._affinity.get(sp.key, {}).get(client_ip)
            if entry is not None and entry[1] > self._clock():
                for i, b in enumerate(order):
                    if (b.ip, b.port) == entry[0]:
                        order.insert(0, order.pop(i))
                        break
        return order

    def _remember(self, sp: ServicePort, client_ip: str, b: Backend) -> None:
        if sp.session_affinity_seconds and client_ip:
            self._affinity.setdefault(sp.key, {})[client_ip] = ((b.ip, b.port), self._clock() + sp.session_affinity_seconds)

    # -- reconciling --------------------------------------------------------------------------------------------

    def _wanted(self, ports: Iterable[ServicePort],
                extra: Mapping[str, Iterable[tuple[str, int]]]) -> dict[Listener, ServicePort]:
        wanted: dict[Listener, ServicePort] = {}
        for sp in sorted(ports, key=lambda p: p.key):
            if sp.protocol not in PROXIED:
                continue
            addrs = [(h, sp.node_port) for h in self.listen_hosts] if sp.node_port else []
            addrs += list(extra.get(sp.key, ()))
            for host, port in addrs:
                key = (host, int(port), sp.protocol)
                if key in wanted and wanted[key].key != sp.key:
                    log.warning("%s: %s:%d/%s is taken by %s", sp.key, host, port, sp.protocol, wanted[key].key)
                    continue
                wanted[key] = sp
        return wanted

    async def apply(self, ports: list[ServicePort],
                    extra_listeners: Mapping[str, Iterable[tuple[str, int]]] | None = None) -> None:
        """Make the listeners match ``ports`` (NodePorts on every listen host, plus ``extra_listeners``).

        ``extra_listeners`` maps a :attr:`ServicePort.key` to more ``(host, port)`` addresses
        to listen on for it. Ports that cannot be bound are reported by :meth:`errors`.
        """
        async with self._lock:
            if self._stopped:
                raise RuntimeError("the proxy is stopped")
            wanted = self._wanted(ports, extra_listeners or {})
            for key, tcp in list(self._tcp.items()):
                if key not in wanted:
                    tcp.close()
                    del self._tcp[key]
            for key, udp in list(self._udp.items()):
                if key not in wanted:
                    udp.close()
                    del self._udp[key]
            errors: dict[Listener, str] = {}
            for key, sp in wanted.items():
                host, port, protocol = key
                existing: _TcpListener | _UdpListener | None = (self._tcp if protocol == "TCP" else self._udp).get(key)
                if existing is not None:
                    existing.service_port = sp
                    if isinstance(existing, _UdpListener):
                        existing.drop_stale()
                    continue
                listener: _TcpListener | _UdpListener = (_TcpListener(self, sp) if protocol == "TCP"
                                                         else _UdpListener(self, sp))
                try:
                    await listener.open(host, port)
                except OSError as e:
                    listener.close()
                    errors[key] = str(e)
                    if self._errors.get(key) != errors[key]:
                        log.warning("%s: cannot listen on %s:%d/%s: %s", sp.key, host, port, protocol, e)
                    continue
                if isinstance(listener, _TcpListener):
                    self._tcp[key] = listener
                else:
                    self._udp[key] = listener
            self._errors = errors
            self._prune_affinity(wanted.values())
            if self._udp and self._sweeper is None:
                self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
            self._generation += 1
            routed: list[_TcpListener | _UdpListener] = [*self._tcp.values(), *self._udp.values()]
            self._snapshot = Snapshot(self._generation, tuple(self.bound()), dict(errors),
                                      frozenset(b.ip for r in routed for b in r.service_port.targets),
                                      tuple(ports))
        async with self._changed:
            self._changed.notify_all()

    def _prune_affinity(self, ports: Iterable[ServicePort]) -> None:
        keep = {sp.key for sp in ports if sp.session_affinity_seconds}
        now = self._clock()
        for key in list(self._affinity):
            if key not in keep:
                del self._affinity[key]
                continue
            entries = self._affinity[key]
            for ip in [ip for ip, (_, until) in entries.items() if until <= now]:
                del entries[ip]

    async def _sweep(self) -> None:
        interval = max(0.05, min(self.udp_idle_timeout / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            before = self._clock() - self.udp_idle_timeout
            for udp in list(self._udp.values()):
                udp.expire(before)

    async def close(self) -> None:
        """The :class:`~.proxier.DataPath` name of :meth:`stop`."""
        await self.stop()

    async def stop(self) -> None:
        """Close every listener, relayed connection and UDP session."""
        async with self._lock:
            self._stopped = True
            if self._sweeper is not None:
                self._sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sweeper
                self._sweeper = None
            for tcp in self._tcp.values():
                tcp.close()
            for udp in self._udp.values():
                udp.close()
            self._tcp.clear()
            self._udp.clear()
            for relay in list(self._relays):
                relay.abort()
            self._relays.clear()
            self._affinity.clear()
            self._errors.clear()
            self._snapshot = Snapshot(self._generation, (), {}, frozenset())
        await asyncio.sleep(0)  # let the aborted transports run their connection_lost
        async with self._changed:
            self._changed.notify_all()
