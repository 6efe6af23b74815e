"""The userspace data path against real sockets: local backends on 127.0.0.x, the proxy on free ports."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest

from tinykube.proxy.nftrules import Backend, ServicePort
from tinykube.proxy.userspace import Snapshot, UserspaceProxy

HOST = "127.0.0.1"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def sp(backends: tuple[Backend, ...] = (), *, node_port: int | None = None, name: str = "web", proto: str = "TCP",
       affinity: int | None = None) -> ServicePort:
    return ServicePort("default", name, "http", proto, "10.96.0.10", 80, node_port, backends, (), affinity)


class Pool:
    """Backends on distinct loopback addresses; the default one greets with its IP, then echoes until EOF."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []
        self.udp: list[asyncio.DatagramTransport] = []
        self.hits: Counter[str] = Counter()
        self.writers: set[asyncio.StreamWriter] = set()

    async def tcp(self, ip: str, handler: Handler | None = None) -> Backend:
        async def greet_and_echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.hits[ip] += 1
            w.write(ip.encode() + b"\n")
            while data := await r.read(1 << 16):
                w.write(data)
                await w.drain()
            w.close()

        async def tracked(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.writers.add(w)
            try:
                await (handler or greet_and_echo)(r, w)
            except ConnectionError:
                pass
            finally:
                self.writers.discard(w)

        server = await asyncio.start_server(tracked, ip, 0)
        self.servers.append(server)
        return Backend(ip, server.sockets[0].getsockname()[1])

    async def udp_echo(self, ip: str) -> Backend:
        """Answers every datagram with ``ip:source-port:data``."""
        pool = self

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
                pool.hits[ip] += 1
                self.transport.sendto(f"{ip}:{addr[1]}:".encode() + data, addr)

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=(ip, 0))
        self.udp.append(transport)
        return Backend(ip, transport.get_extra_info("sockname")[1])

    async def close(self) -> None:
        for w in list(self.writers):
            w.transport.abort()
        for s in self.servers:
            s.close()
        for t in self.udp:
            t.close()
        await asyncio.sleep(0)


@pytest.fixture
async def pool() -> AsyncIterator[Pool]:
    p = Pool()
    yield p
    await p.close()


@pytest.fixture
async def proxy() -> AsyncIterator[UserspaceProxy]:
    p = UserspaceProxy([HOST])
    yield p
    await p.stop()


async def greeting(port: int, host: str = HOST) -> str:
    """Connect through the proxy, read the backend's greeting line, close."""
    r, w = await asyncio.open_connection(host, port)
    try:
        return (await asyncio.wait_for(r.readline(), 5)).decode().strip()
    finally:
        w.close()


async def assert_reset_at_once(port: int) -> None:
    r, w = await asyncio.open_connection(HOST, port)
    start = time.monotonic()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(r.read(), 5)
    assert time.monotonic() - start < 1.0
    w.close()


async def refused(port: int, host: str = HOST) -> bool:
    try:
        _, w = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    w.close()
    return False


# ---------------------------------------------------------------------------------------------------------------
# TCP


async def test_traffic_reaches_backend(pool: Pool, proxy: UserspaceProxy) -> None:
    b = await pool.tcp("127.0.0.2")
    np = free_port()
    await proxy.apply([sp((b,), node_port=np)])
    assert proxy.bound() == [(HOST, np, "TCP")]
    assert proxy.errors() == {}
    assert proxy.generation == 1
    assert proxy.target_ips() == frozenset({"127.0.0.2"})

    r, w = await asyncio.open_connection(HOST, np)
    assert await r.readline() == b"127.0.0.2\n"
    payload = bytes(range(256)) * 4096  # 1 MiB through and back
    w.write(payload)
    got = await asyncio.wait_for(r.readexactly(len(payload)), 10)
    assert got == payload
    assert proxy.connections() == 1
    w.close()
    await w.wait_closed()
    for _ in range(100):
        if proxy.connections() == 0:
            break
        await asyncio.sleep(0.01)
    assert proxy.connections() == 0
    assert pool.hits == {"127.0.0.2": 1}


async def test_spreads_over_backends(pool: Pool, proxy: UserspaceProxy) -> None:
    ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    backends = tuple([await pool.tcp(ip) for ip in ips])
    np = free_port()
    await proxy.apply([sp(backends, node_port=np)])
    seen = Counter([await greeting(np) for _ in range(90)])
    assert sum(seen.values()) == 90
    assert set(seen) == set(ips)
    assert min(seen.values()) >= 10  # 30 expected each; fewer than 10 is a ~1e-6 event
    assert proxy.target_ips() == frozenset(ips)


async def test_only_ready_or_serving_terminating_targets(pool: Pool, proxy: UserspaceProxy) -> None:
    ready = await pool.tcp("127.0.0.2")
    unready = await pool.tcp("127.0.0.3")
    np = free_port()
    await proxy.apply([sp((ready, Backend(unready.ip, unready.port, ready=False, serving=False)), node_port=np)])
    assert {await greeting(np) for _ in range(20)} == {"127.0.0.2"}
    assert proxy.target_ips() == frozenset({"127.0.0.2"})
    # Only terminating-but-serving endpoints left: they are used.
    terminating = Backend(unready.ip, unready.port, ready=False, serving=True, terminating=True)
    await proxy.apply([sp((terminating,), node_port=np)])
    assert await greeting(np) == "127.0.0.3"


async def test_affinity_pins_client_until_expiry(pool: Pool) -> None:
    now = [1000.0]
    proxy = UserspaceProxy([HOST], clock=lambda: now[0])
    try:
        ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        backends = tuple([await pool.tcp(ip) for ip in ips])
        np = free_port()
        await proxy.apply([sp(backends, node_port=np, affinity=60)])
        pinned = {await greeting(np) for _ in range(20)}
        assert len(pinned) == 1
        # Each connection refreshes the entry: 59 s steps stay pinned.
        for _ in range(5):
            now[0] += 59
            assert {await greeting(np)} == pinned
        # Past the timeout before every connection: the choice is random again.
        seen = set()
        for _ in range(30):
            now[0] += 61
            seen.add(await greeting(np))
        assert len(seen) > 1
        # The pinned backend is removed: the client moves and stays on its new one.
        now[0] += 61
        first = await greeting(np)
        rest = tuple(b for b in backends if b.ip != first)
        await proxy.apply([sp(rest, node_port=np, affinity=60)])
        moved = {await greeting(np) for _ in range(10)}
        assert len(moved) == 1
        assert moved != {first}
        assert moved <= {b.ip for b in rest}
    finally:
        await proxy.stop()


async def test_apply_moves_new_connections_old_one_keeps_working(pool: Pool, proxy: UserspaceProxy) -> None:
    a = await pool.tcp("127.0.0.2")
    b = await pool.tcp("127.0.0.3")
    np = free_port()
    await proxy.apply([sp((a,), node_port=np)])
    r, w = await asyncio.open_connection(HOST, np)
    assert await r.readline() == b"127.0.0.2\n"

    await proxy.apply([sp((b,), node_port=np)])
    assert proxy.generation == 2
    assert proxy.bound() == [(HOST, np, "TCP")]
    assert proxy.target_ips() == frozenset({"127.0.0.3"})
    assert {await greeting(np) for _ in range(10)} == {"127.0.0.3"}

    w.write(b"still here")
    assert await asyncio.wait_for(r.readexactly(10), 5) == b"still here"
    assert pool.hits == {"127.0.0.2": 1, "127.0.0.3": 10}
    w.close()


async def test_removed_port_closes_listener_not_connections(pool: Pool, proxy: UserspaceProxy) -> None:
    a = await pool.tcp("127.0.0.2")
    np, other = free_port(), free_port()
    await proxy.apply([sp((a,), node_port=np), sp((a,), node_port=other, name="other")])
    r, w = await asyncio.open_connection(HOST, np)
    assert await r.readline() == b"127.0.0.2\n"

    await proxy.apply([sp((a,), node_port=other, name="other")])
    assert proxy.bound() == [(HOST, other, "TCP")]
    assert await refused(np)
    assert await greeting(other) == "127.0.0.2"
    w.write(b"ping")
    assert await asyncio.wait_for(r.readexactly(4), 5) == b"ping"
    w.close()

    await proxy.apply([])
    assert proxy.bound() == []
    assert await refused(other)
    assert proxy.target_ips() == frozenset()


async def test_no_targets_resets_at_once(proxy: UserspaceProxy) -> None:
    np = free_port()
    await proxy.apply([sp((), node_port=np)])
    assert proxy.bound() == [(HOST, np, "TCP")]  # the port stays held, answering with resets
    assert proxy.target_ips() == frozenset()
    await assert_reset_at_once(np)
    # Endpoints exist but none is ready nor serving: the same.
    await proxy.apply([sp((Backend("127.0.0.2", 9, ready=False, serving=False),), node_port=np)])
    await assert_reset_at_once(np)


async def test_failed_backends_are_skipped_then_reset(pool: Pool, proxy: UserspaceProxy) -> None:
    live = await pool.tcp("127.0.0.2")
    dead = [Backend("127.0.0.3", free_port()), Backend("127.0.0.4", free_port())]  # nothing listens there
    np = free_port()
    await proxy.apply([sp((live, *dead), node_port=np)])
    assert {await greeting(np) for _ in range(20)} == {"127.0.0.2"}
    assert pool.hits == {"127.0.0.2": 20}
    await proxy.apply([sp(tuple(dead), node_port=np)])
    await assert_reset_at_once(np)


async def test_half_close_both_directions(pool: Pool, proxy: UserspaceProxy) -> None:
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def digest_after_eof(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        data = await r.read()  # until the client's EOF
        w.write(hashlib.sha256(data).hexdigest().encode() + f" {len(data)}".encode())
        await w.drain()
        w.close()

    async def eof_first(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"hello")
        w.write_eof()  # backend done writing, still reading
        received.set_result(await r.read())
        w.close()

    upload = await pool.tcp("127.0.0.2", digest_after_eof)
    download = await pool.tcp("127.0.0.3", eof_first)
    np1, np2 = free_port(), free_port()
    await proxy.apply([sp((upload,), node_port=np1), sp((download,), node_port=np2, name="other")])

    # Client -> backend EOF; the reply still comes back.
    r, w = await asyncio.open_connection(HOST, np1)
    payload = bytes(range(251)) * 40000  # ~10 MB
    w.write(payload)
    w.write_eof()
    answer = await asyncio.wait_for(r.read(), 20)
    assert answer == hashlib.sha256(payload).hexdigest().encode() + f" {len(payload)}".encode()
    w.close()

    # Backend -> client EOF; the client's data still reaches the backend.
    r, w = await asyncio.open_connection(HOST, np2)
    assert await asyncio.wait_for(r.read(), 5) == b"hello"
    w.write(b"late data")
    w.write_eof()
    assert await asyncio.wait_for(received, 5) == b"late data"
    assert await asyncio.wait_for(r.read(), 5) == b""
    w.close()


async def test_backpressure_slow_client(pool: Pool, proxy: UserspaceProxy) -> None:
    total = 64 << 20
    sent = [0]
    done = asyncio.Event()

    async def firehose(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        chunk = b"x" * (1 << 20)
        while sent[0] < total:
            w.write(chunk)
            await w.drain()
            sent[0] += len(chunk)
        w.close()
        done.set()

    b = await pool.tcp("127.0.0.2", firehose)
    np = free_port()
    await proxy.apply([sp((b,), node_port=np)])
    r, w = await asyncio.open_connection(HOST, np, limit=1 << 16)
    await asyncio.sleep(0.5)  # the client reads nothing meanwhile
    assert not done.is_set()
    assert sent[0] < total - (16 << 20)  # only socket buffers plus ~1 MiB in the proxy were filled
    got = 0
    while data := await asyncio.wait_for(r.read(1 << 20), 10):
        got += len(data)
    assert got == total
    assert sent[0] == total
    w.close()


async def test_bind_conflict_reported_and_retried(pool: Pool, proxy: UserspaceProxy) -> None:
    b = await pool.tcp("127.0.0.2")
    busy, ok = free_port(), free_port()
    blocker = socket.socket()
    blocker.bind((HOST, busy))
    blocker.listen()
    ports = [sp((b,), node_port=busy), sp((b,), node_port=ok, name="other")]
    try:
        await proxy.apply(ports)  # does not raise
        assert proxy.bound() == [(HOST, ok, "TCP")]
        errors = proxy.errors()
        assert list(errors) == [(HOST, busy, "TCP")]
        assert "in use" in errors[(HOST, busy, "TCP")]
        assert proxy.snapshot().errors == errors
        assert await greeting(ok) == "127.0.0.2"
    finally:
        blocker.close()
    await proxy.apply(ports)
    assert proxy.errors() == {}
    assert proxy.bound() == sorted([(HOST, busy, "TCP"), (HOST, ok, "TCP")])
    assert await greeting(busy) == "127.0.0.2"


async def test_listen_hosts_and_extra_listeners(pool: Pool) -> None:
    b = await pool.tcp("127.0.0.5")
    proxy = UserspaceProxy(["127.0.0.1", "127.0.0.2"])
    try:
        np, extra = free_port(), free_port()
        cluster_only = sp((b,), name="internal")  # no NodePort: only reachable through the extra listener
        sctp = sp((b,), node_port=free_port(), name="sctp", proto="SCTP")  # not proxied
        await proxy.apply([sp((b,), node_port=np), cluster_only, sctp],
                          extra_listeners={cluster_only.key: [("127.0.0.1", extra)]})
        assert proxy.bound() == sorted([("127.0.0.1", np, "TCP"), ("127.0.0.2", np, "TCP"),
                                        ("127.0.0.1", extra, "TCP")])
        assert await greeting(np, "127.0.0.1") == "127.0.0.5"
        assert await greeting(np, "127.0.0.2") == "127.0.0.5"
        assert await greeting(extra) == "127.0.0.5"
        # Dropping the extra listener closes just that one.
        await proxy.apply([sp((b,), node_port=np), cluster_only])
        assert await refused(extra)
        assert proxy.bound() == sorted([("127.0.0.1", np, "TCP"), ("127.0.0.2", np, "TCP")])
    finally:
        await proxy.stop()


async def test_wait_for_snapshot(pool: Pool, proxy: UserspaceProxy) -> None:
    b = await pool.tcp("127.0.0.2")
    waiter = asyncio.create_task(proxy.wait_for(lambda s: "127.0.0.2" in s.target_ips, timeout=5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    np = free_port()
    await proxy.apply([sp((), node_port=np)])
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await proxy.apply([sp((b,), node_port=np)])
    snap = await waiter
    assert isinstance(snap, Snapshot)
    assert snap.generation == 2
    assert snap.bound == ((HOST, np, "TCP"),)
    assert snap.target_ips == frozenset({"127.0.0.2"})
    with pytest.raises(TimeoutError):
        await proxy.wait_for(lambda s: s.generation >= 3, timeout=0.05)


async def test_stop_closes_listeners_and_connections(pool: Pool) -> None:
    b = await pool.tcp("127.0.0.2")
    proxy = UserspaceProxy([HOST])
    np1, np2, udp = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    ub = await pool.udp_echo("127.0.0.3")
    await proxy.apply([sp((b,), node_port=np1), sp((b,), node_port=np2, name="b"),
                       sp((ub,), node_port=udp, name="dns", proto="UDP")])
    assert len(proxy.bound()) == 3
    r, w = await asyncio.open_connection(HOST, np1)
    assert await r.readline() == b"127.0.0.2\n"
    assert proxy.connections() == 1

    await proxy.stop()
    assert proxy.bound() == []
    assert proxy.connections() == 0
    assert proxy.udp_sessions() == 0
    assert await refused(np1)
    assert await refused(np2)
    try:
        assert await asyncio.wait_for(r.read(), 5) == b""
    except ConnectionResetError:
        pass  # aborted: a reset is as good as a close here
    w.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, udp))  # the UDP port is free again
    with pytest.raises(RuntimeError):
        await proxy.apply([])


# ---------------------------------------------------------------------------------------------------------------
# UDP


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait(data)


async def udp_client(port: int) -> tuple[asyncio.DatagramTransport, UdpClient]:
    return await asyncio.get_running_loop().create_datagram_endpoint(UdpClient, remote_addr=(HOST, port))


async def wait_until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_udp_round_trip_sessions_and_expiry(pool: Pool) -> None:
    a = await pool.udp_echo("127.0.0.2")
    proxy = UserspaceProxy([HOST], udp_idle_timeout=0.3)
    try:
        np = free_port(socket.SOCK_DGRAM)
        await proxy.apply([sp((a,), node_port=np, proto="UDP")])
        assert proxy.bound() == [(HOST, np, "UDP")]
        t1, c1 = await udp_client(np)
        t2, c2 = await udp_client(np)
        t1.sendto(b"one")
        first = (await asyncio.wait_for(c1.queue.get(), 5)).split(b":")
        assert first[0] == b"127.0.0.2"
        assert first[2] == b"one"
        t1.sendto(b"two")
        second = (await asyncio.wait_for(c1.queue.get(), 5)).split(b":")
        assert second == [b"127.0.0.2", first[1], b"two"]  # same session: same source port at the backend
        t2.sendto(b"three")
        third = (await asyncio.wait_for(c2.queue.get(), 5)).split(b":")
        assert third[0] == b"127.0.0.2"
        assert third[2] == b"three"
        assert third[1] != first[1]  # another client, another session
        assert proxy.udp_sessions() == 2
        await wait_until(lambda: proxy.udp_sessions() == 0)  # idle sessions expire
        t1.sendto(b"four")
        assert (await asyncio.wait_for(c1.queue.get(), 5)).endswith(b":four")
        assert proxy.udp_sessions() == 1
        assert pool.hits == {"127.0.0.2": 4}
        t1.close()
        t2.close()
    finally:
        await proxy.stop()


async def test_udp_moved_backends_and_no_targets(pool: Pool, proxy: UserspaceProxy) -> None:
    a = await pool.udp_echo("127.0.0.2")
    b = await pool.udp_echo("127.0.0.3")
    np = free_port(socket.SOCK_DGRAM)
    await proxy.apply([sp((a,), node_port=np, proto="UDP")])
    t, c = await udp_client(np)
    t.sendto(b"x")
    assert (await asyncio.wait_for(c.queue.get(), 5)).startswith(b"127.0.0.2:")
    assert proxy.udp_sessions() == 1

    await proxy.apply([sp((b,), node_port=np, proto="UDP")])
    assert proxy.udp_sessions() == 0  # a session to a removed backend is ended
    t.sendto(b"y")
    assert (await asyncio.wait_for(c.queue.get(), 5)).startswith(b"127.0.0.3:")

    await proxy.apply([sp((), node_port=np, proto="UDP")])
    assert proxy.bound() == [(HOST, np, "UDP")]
    t.sendto(b"z")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(c.queue.get(), 0.3)  # dropped
    assert pool.hits == {"127.0.0.2": 1, "127.0.0.3": 1}
    t.close()
