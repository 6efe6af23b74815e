"""Connection draining read from the kernel's sock_diag, with real sockets: in the test process's own network
namespace and in a fresh one made with `ip netns add` (root; CI runs as root)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tinykube.agent import drain
from tinykube.agent.network import _in_netns

OWN = Path("/proc/self/ns/net")
TICK = 0.05  # longer than a jiffy at any HZ: makes "received after sent" visible in tcp_info's ms stamps

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests enter and create network namespaces: they need root (CI runs as root)")


@pytest.fixture
def netns() -> Iterator[Path]:
    name = f"tk-test-drain-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        yield Path("/run/netns") / name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        assert not (Path("/run/netns") / name).exists()


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Every socket a test opens, closed at its end."""
    opened: list[socket.socket] = []
    yield opened
    for s in opened:
        s.close()


class Pair:
    """A listener, a client connected to it and the accepted server side, all in one namespace."""

    def __init__(self, opened: list[socket.socket], netns: Path = OWN, family: int = socket.AF_INET,
                 backlog: int = 7, accept: bool = True) -> None:
        host = "127.0.0.1" if family == socket.AF_INET else "::1"
        with _in_netns(netns):  # sockets keep the namespace they were made in
            self.listener = socket.socket(family, socket.SOCK_STREAM)
            self.client = socket.socket(family, socket.SOCK_STREAM)
        opened += [self.listener, self.client]
        self.listener.bind((host, 0))
        self.listener.listen(backlog)
        self.port: int = self.listener.getsockname()[1]
        self.client.connect((host, self.port))
        self.client_port: int = self.client.getsockname()[1]
        self.server: socket.socket | None = None
        if accept:
            self.accept(opened)

    def accept(self, opened: list[socket.socket]) -> socket.socket:
        self.server, _ = self.listener.accept()
        opened.append(self.server)
        return self.server

    def server_side(self, conns: list[drain.Conn]) -> drain.Conn | None:
        return next((c for c in conns if c.local[1] == self.port and c.remote[1] == self.client_port), None)

    def client_side(self, conns: list[drain.Conn]) -> drain.Conn | None:
        return next((c for c in conns if c.local[1] == self.client_port and c.remote[1] == self.port), None)

    def request(self, body: bytes = b"GET / HTTP/1.1\r\n\r\n") -> None:
        """The client sends a request, one tick after the last thing that happened, and the server reads it."""
        assert self.server is not None
        time.sleep(TICK)
        self.client.sendall(body)
        got = b""
        while len(got) < len(body):
            got += self.server.recv(65536)
        assert got == body

    def respond(self, body: bytes = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n") -> None:
        assert self.server is not None
        self.server.sendall(body)
        got = b""
        while len(got) < len(body):
            got += self.client.recv(65536)
        assert got == body


def eventually(fn: Callable[[], T | None], timeout: float = 3.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met in {timeout}s (last value {value!r})")
        time.sleep(0.005)


def test_connections_see_listener_and_established_pair(sockets: list[socket.socket]) -> None:
    pair = Pair(sockets, backlog=7, accept=False)
    conns = drain.connections(OWN)
    listener = next(c for c in conns if c.state == drain.TCP_LISTEN and c.local == ("127.0.0.1", pair.port))
    assert listener.state_name == "LISTEN"
    assert listener.family == socket.AF_INET
    assert listener.remote == ("0.0.0.0", 0)
    assert (listener.rqueue, listener.wqueue) == (1, 7)  # a listener's queues: accept queue and backlog
    assert listener.inode == os.fstat(pair.listener.fileno()).st_ino
    assert pair.port in drain.listening_ports(conns)
    assert pair.client_port not in drain.listening_ports(conns)

    server = pair.accept(sockets)
    conns = drain.connections(OWN)
    listener = next(c for c in conns if c.state == drain.TCP_LISTEN and c.local == ("127.0.0.1", pair.port))
    assert listener.rqueue == 0  # accepted
    s, c = pair.server_side(conns), pair.client_side(conns)
    assert s is not None and c is not None
    assert (s.state, s.state_name) == (drain.TCP_ESTABLISHED, "ESTABLISHED")
    assert s.local == ("127.0.0.1", pair.port) and s.remote == ("127.0.0.1", pair.client_port)
    assert c.local == ("127.0.0.1", pair.client_port) and c.remote == ("127.0.0.1", pair.port)
    assert s.inode == os.fstat(server.fileno()).st_ino and c.inode == os.fstat(pair.client.fileno()).st_ino
    assert s.uid == os.geteuid()
    assert s.cookie != c.cookie and s.cookie != listener.cookie and s.cookie > 0
    # tcp_info came with it: nothing queued or in flight on a fresh connection, stamps in ms.
    assert (s.rqueue, s.wqueue, s.unacked, s.bytes_received, s.notsent_bytes) == (0, 0, 0, 0, 0)
    assert s.last_data_sent_ms is not None and 0 <= s.last_data_sent_ms < 60_000
    assert s.last_data_recv_ms is not None and s.rtt_us is not None and s.rtt_us > 0
    assert s.cookie not in {b.cookie for b in drain.busy(conns)}  # connected, nothing asked yet: idle


def test_rqueue_counts_unread_bytes(sockets: list[socket.socket]) -> None:
    pair = Pair(sockets)
    assert pair.server is not None
    pair.client.sendall(b"x" * 1234)
    s = eventually(lambda: (c := pair.server_side(drain.connections(OWN))) and c.rqueue == 1234 and c)
    assert s.bytes_received == 1234
    assert s.cookie in {b.cookie for b in drain.busy(drain.connections(OWN))}  # unread request: busy
    c = pair.client_side(drain.connections(OWN))
    assert c is not None  # the sender's side: all acknowledged (bytes_acked counts the SYN too)
    assert (c.rqueue, c.wqueue, c.unacked, c.bytes_acked) == (0, 0, 0, 1 + 1234)

    got = b""
    while len(got) < 1234:
        got += pair.server.recv(65536)
    s2 = pair.server_side(drain.connections(OWN))
    assert s2 is not None and s2.rqueue == 0 and s2.cookie == s.cookie


def test_busy_flags_read_but_unanswered_request_only(sockets: list[socket.socket]) -> None:
    pending, answered, fresh, keepalive = (Pair(sockets) for _ in range(4))
    pending.request()  # read by the server, no answer yet
    answered.request()
    answered.respond()
    keepalive.request()
    keepalive.respond()
    keepalive.request()  # the second request on a keep-alive connection, unanswered
    # fresh: connected, nothing sent yet

    def settled() -> list[drain.Conn] | None:
        conns = drain.connections(OWN)
        a = answered.server_side(conns)
        return conns if a is not None and a.wqueue == 0 and a.unacked == 0 else None

    conns = eventually(settled)
    busy_cookies = {c.cookie for c in drain.busy(conns)}

    p = pending.server_side(conns)
    assert p is not None
    # Nothing queued either way: only the timestamps tell that a request came after the last send.
    assert (p.rqueue, p.wqueue, p.unacked) == (0, 0, 0)
    assert p.last_data_recv_ms is not None and p.last_data_sent_ms is not None
    assert p.last_data_recv_ms < p.last_data_sent_ms
    assert p.cookie in busy_cookies

    k = keepalive.server_side(conns)
    assert k is not None and k.cookie in busy_cookies

    a = answered.server_side(conns)
    assert a is not None and a.cookie not in busy_cookies
    assert a.last_data_recv_ms is not None and a.last_data_sent_ms is not None
    assert a.last_data_sent_ms <= a.last_data_recv_ms

    f = fresh.server_side(conns)
    assert f is not None and f.cookie not in busy_cookies
    # Outbound (client) sides are never busy, whatever they look like.
    for pair in (pending, answered, fresh, keepalive):
        cs = pair.client_side(conns)
        assert cs is not None and cs.cookie not in busy_cookies

    keepalive.respond()
    pending.respond()

    def all_idle() -> bool:
        conns = drain.connections(OWN)
        ours = {c.cookie for c in (pending.server_side(conns), keepalive.server_side(conns)) if c is not None}
        return len(ours) == 2 and not ours & {c.cookie for c in drain.busy(conns)}

    assert eventually(all_idle)


def test_half_closed_connection_is_not_busy(sockets: list[socket.socket]) -> None:
    pair = Pair(sockets)
    pair.client.sendall(b"unread")
    pair.client.shutdown(socket.SHUT_WR)
    s = eventually(lambda: (c := pair.server_side(drain.connections(OWN))) and c.state_name == "CLOSE_WAIT" and c)
    assert s.rqueue == 6 + 1  # the request is still unread (plus the FIN's sequence number), but the client is done
    assert s.cookie not in {c.cookie for c in drain.busy(drain.connections(OWN))}


def test_fresh_namespace_lists_only_its_own_sockets(netns: Path, sockets: list[socket.socket]) -> None:
    v4 = Pair(sockets, netns)
    v6 = Pair(sockets, netns, family=socket.AF_INET6)
    conns = drain.connections(netns)
    assert sorted((c.state_name, c.local, c.remote) for c in conns) == sorted([
        ("LISTEN", ("127.0.0.1", v4.port), ("0.0.0.0", 0)),
        ("ESTABLISHED", ("127.0.0.1", v4.port), ("127.0.0.1", v4.client_port)),
        ("ESTABLISHED", ("127.0.0.1", v4.client_port), ("127.0.0.1", v4.port)),
        ("LISTEN", ("::1", v6.port), ("::", 0)),
        ("ESTABLISHED", ("::1", v6.port), ("::1", v6.client_port)),
        ("ESTABLISHED", ("::1", v6.client_port), ("::1", v6.port)),
    ])
    assert {c.family for c in conns if c.local[0] == "::1"} == {socket.AF_INET6}
    assert drain.listening_ports(conns) == {v4.port, v6.port}
    # None of them is visible from the test process's own namespace, and none of its sockets is here.
    own = {c.cookie for c in drain.connections(OWN)}
    assert own and not own & {c.cookie for c in conns}

    v6.client.sendall(b"abc")
    s = eventually(lambda: (c := v6.server_side(drain.connections(netns))) and c.rqueue == 3 and c)
    assert [b.cookie for b in drain.busy(drain.connections(netns))] == [s.cookie]


async def test_drain_returns_at_once_when_idle(netns: Path, sockets: list[socket.socket]) -> None:
    pair = Pair(sockets, netns)
    pair.request()
    pair.respond()
    eventually(lambda: drain.busy(drain.connections(netns)) == [])
    result = await drain.drain(netns, timeout=5.0)
    assert (result.timed_out, result.busy_at_start, result.gone, result.error, result.polls) == (
        False, 0, False, None, 1)
    assert result.still_busy == ()
    assert result.elapsed < 0.5


async def test_drain_times_out_while_a_request_is_pending(netns: Path, sockets: list[socket.socket]) -> None:
    pair = Pair(sockets, netns)
    pair.request()  # read, never answered
    result = await drain.drain(netns, timeout=0.3, poll=0.01)
    assert result.timed_out is True
    assert result.busy_at_start == 1
    assert 0.3 <= result.elapsed < 2.0
    assert result.polls >= 5
    assert [(c.local, c.remote) for c in result.still_busy] == [
        (("127.0.0.1", pair.port), ("127.0.0.1", pair.client_port))]
    assert (result.gone, result.error) == (False, None)


async def test_drain_ends_when_the_response_goes_out(netns: Path, sockets: list[socket.socket]) -> None:
    pair = Pair(sockets, netns)
    pair.request()
    server = pair.server
    assert server is not None
    asyncio.get_running_loop().call_later(0.2, server.sendall, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    result = await drain.drain(netns, timeout=5.0)
    assert (result.timed_out, result.busy_at_start, result.gone) == (False, 1, False)
    assert 0.2 <= result.elapsed < 2.0
    assert result.polls >= 2


async def test_drain_of_a_missing_namespace_returns_at_once(tmp_path: Path) -> None:
    missing = Path("/run/netns") / f"tk-test-drain-missing-{secrets.token_hex(4)}"
    with pytest.raises(drain.NamespaceGone):
        drain.connections(missing)
    result = await drain.drain(missing, timeout=5.0)
    assert (result.gone, result.timed_out, result.busy_at_start, result.error, result.polls) == (
        True, False, 0, None, 0)
    assert result.elapsed < 0.5

    not_a_namespace = tmp_path / "ns"  # what a deleted namespace's file looks like before its unlink
    not_a_namespace.touch()
    result = await drain.drain(not_a_namespace, timeout=5.0)
    assert (result.gone, result.timed_out, result.error) == (True, False, None)
    assert result.elapsed < 0.5


async def test_drain_of_a_deleted_namespace(sockets: list[socket.socket]) -> None:
    name = f"tk-test-drain-{secrets.token_hex(4)}"
    path = Path("/run/netns") / name
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        pair = Pair(sockets, path)
        pair.request()
        assert len(drain.busy(drain.connections(path))) == 1
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    assert not path.exists()
    result = await drain.drain(path, timeout=5.0)
    assert (result.gone, result.timed_out, result.busy_at_start) == (True, False, 0)
    assert result.elapsed < 0.5
