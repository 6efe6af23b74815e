"""Connection draining: let a pod's in-flight TCP requests finish before its app gets SIGTERM.

When a pod is deleted the agent first waits until the pod is out of its Services' endpoints (no new
connections are routed to it; that is done elsewhere), then calls :func:`drain` for the pod's network
namespace. ``drain`` watches the namespace's TCP sockets and returns once no inbound connection looks in
the middle of a request, or when its timeout passes. Only then does the app get SIGTERM, so a keep-alive
client that already sent a request gets its response instead of a reset.

How the sockets are read
------------------------
The kernel's sock_diag netlink interface (``NETLINK_SOCK_DIAG``), the same source ``ss`` uses, written
here with :mod:`struct` only. A sock_diag dump lists the sockets of the network namespace *of the netlink
socket*, so :func:`connections` creates its netlink socket inside the pod's namespace with
:func:`tinykube.agent.network._in_netns` (``setns`` on the calling thread only), leaves the namespace at
once, and talks to the kernel afterwards: a socket keeps the namespace it was created in. One request per
address family (``AF_INET``, ``AF_INET6``)::

    struct nlmsghdr        { u32 len; u16 type = SOCK_DIAG_BY_FAMILY (20);
                             u16 flags = NLM_F_REQUEST | NLM_F_DUMP; u32 seq; u32 pid; }      16 bytes
    struct inet_diag_req_v2{ u8 family; u8 protocol = IPPROTO_TCP; u8 ext = 1 << (INET_DIAG_INFO - 1);
                             u8 pad; u32 states = all; struct inet_diag_sockid id = zero; }    56 bytes
    struct inet_diag_sockid{ be16 sport; be16 dport; be32 src[4]; be32 dst[4];
                             u32 if; u32 cookie[2]; }                                          48 bytes

Each answer (until ``NLMSG_DONE``; ``NLMSG_ERROR`` raises) is one socket::

    struct inet_diag_msg   { u8 family; u8 state; u8 timer; u8 retrans; struct inet_diag_sockid id;
                             u32 expires; u32 rqueue; u32 wqueue; u32 uid; u32 inode; }        72 bytes
    followed by rtattrs    { u16 len; u16 type; payload, padded to 4 }; type INET_DIAG_INFO (2)
                           carries struct tcp_info.

``rqueue``/``wqueue`` are, for a connection, the bytes received but not yet read by the app
(``rcv_nxt - copied_seq``; a received FIN counts as one) and the bytes written by the app but not yet
acknowledged by the peer (``write_seq - snd_una``, sent or not); for a listening socket, the accept
queue's length and its backlog.

The ``struct tcp_info`` fields used (``include/uapi/linux/tcp.h``; byte offset, type)::

      0 u8  tcpi_state           the TCP state again
      2 u8  tcpi_retransmits     consecutive retransmission timeouts
     24 u32 tcpi_unacked         segments sent and not yet acknowledged (packets_out)
     44 u32 tcpi_last_data_sent  ms since the socket last sent data       (jiffies: 1-4 ms resolution)
     52 u32 tcpi_last_data_recv  ms since the socket last received data   (idem)
     56 u32 tcpi_last_ack_recv   ms since the socket last received an ACK
     68 u32 tcpi_rtt             smoothed round-trip time, µs
    120 u64 tcpi_bytes_acked     bytes sent and acknowledged (kernel 4.1+)
    128 u64 tcpi_bytes_received  bytes received (kernel 4.1+)
    144 u32 tcpi_notsent_bytes   bytes written by the app, not yet sent (kernel 4.6+)

Fields are read only when the kernel's tcp_info is long enough to hold them (``None`` otherwise). Mini
sockets (TIME_WAIT, NEW_SYN_RECV) carry no tcp_info: all its fields are ``None`` for them.

The busy rule
-------------
See :func:`busy`. It reads only kernel state, so it works for any app and protocol, but it is a heuristic:
the timestamps have jiffy resolution, so a request that arrived (and was read) within the same 1-4 ms
tick as the previous response was sent looks idle; and a response streamed in pieces with pauses between
them looks idle during a pause. The drain timeout bounds every case.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tinykube.agent.network import NetworkError, _in_netns

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_DUMP_INTR = 0x10
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
ALL_STATES = 0xFFFFFFFF

TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
    7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV",
}
TCP_ESTABLISHED = 1
TCP_LISTEN = 10

_NLMSGHDR = struct.Struct("=IHHII")
_REQ_V2 = struct.Struct("=BBBxI48x")  # inet_diag_req_v2 with an all-zero inet_diag_sockid
_MSG_HEAD = struct.Struct("=BBBB")  # inet_diag_msg: family, state, timer, retrans
_SOCKID_PORTS = struct.Struct("!HH")  # sport, dport (network order)
_SOCKID_TAIL = struct.Struct("=III")  # if, cookie[0], cookie[1]
_MSG_TAIL = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode
_MSG_LEN = 72
_RTA = struct.Struct("=HH")

# struct tcp_info: (Conn field, byte offset, struct format).
_TCP_INFO_FIELDS: tuple[tuple[str, int, str], ...] = (
    ("retransmits", 2, "=B"),
    ("unacked", 24, "=I"),
    ("last_data_sent_ms", 44, "=I"),
    ("last_data_recv_ms", 52, "=I"),
    ("last_ack_recv_ms", 56, "=I"),
    ("rtt_us", 68, "=I"),
    ("bytes_acked", 120, "=Q"),
    ("bytes_received", 128, "=Q"),
    ("notsent_bytes", 144, "=I"),
)

_RECV_BUFFER = 1 << 17
_NETLINK_TIMEOUT = 5.0
_DUMP_ATTEMPTS = 3


class DiagError(OSError):
    """The kernel refused a sock_diag request, or answered something this module cannot parse."""


class NamespaceGone(OSError):
    """The network namespace could not be entered: its file is gone or no longer a namespace."""


@dataclass(frozen=True)
class Conn:
    """One TCP socket of a namespace, as sock_diag reports it."""

    family: int  # socket.AF_INET or socket.AF_INET6
    state: int  # TCP_STATES key
    local: tuple[str, int]
    remote: tuple[str, int]  # ("0.0.0.0"/"::", 0) for a listening socket
    rqueue: int  # connection: unread bytes; listener: accept queue length
    wqueue: int  # connection: unacknowledged bytes (sent or not); listener: backlog
    timer: int = 0  # pending timer: 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero-window probe
    inode: int = 0
    uid: int = 0
    cookie: int = 0  # the kernel's socket id, stable for the socket's life
    # From struct tcp_info (None when the kernel sent none, or too short a one):
    unacked: int | None = None
    last_data_sent_ms: int | None = None
    last_data_recv_ms: int | None = None
    last_ack_recv_ms: int | None = None
    retransmits: int | None = None
    rtt_us: int | None = None
    bytes_acked: int | None = None
    bytes_received: int | None = None
    notsent_bytes: int | None = None

    @property
    def state_name(self) -> str:
        return TCP_STATES.get(self.state, f"STATE{self.state}")

    def __str__(self) -> str:
        return (f"{self.state_name} {_fmt(self.local)} <- {_fmt(self.remote)} rq={self.rqueue} wq={self.wqueue} "
                f"unacked={self.unacked} sent={self.last_data_sent_ms}ms recv={self.last_data_recv_ms}ms ago")


def _fmt(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class DrainResult:
    elapsed: float  # seconds drain() took
    busy_at_start: int  # connections busy at the first poll
    timed_out: bool  # the timeout passed with connections still busy
    still_busy: tuple[Conn, ...] = ()  # those busy at the last poll (empty unless timed out)
    gone: bool = False  # the namespace could not be entered (it vanished): nothing to drain
    error: str | None = None  # sock_diag failed: drain gave up at once
    polls: int = 0


# --- reading the sockets ----------------------------------------------------------------------------------


def _open_diag_socket(netns: Path) -> socket.socket:
    try:
        with _in_netns(netns):
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    except NetworkError as e:  # setns refused: the path exists but is no longer a namespace
        raise NamespaceGone(str(e)) from e
    except (FileNotFoundError, NotADirectoryError) as e:
        raise NamespaceGone(f"{netns}: {e.strerror}") from e


def connections(netns: Path) -> list[Conn]:
    """All TCP sockets (IPv4 and IPv6, every state) of the network namespace at ``netns`` (a file such as
    /run/netns/NAME or /proc/PID/ns/net). Blocking; enters the namespace on the calling thread only for the
    netlink socket's creation. Raises NamespaceGone if the namespace cannot be entered, DiagError if the
    kernel refuses the dump."""
    sock = _open_diag_socket(netns)
    with sock:
        sock.settimeout(_NETLINK_TIMEOUT)
        sock.bind((0, 0))
        out: list[Conn] = []
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
            out.extend(_dump_family(sock, family, seq))
        return out


def _dump_family(sock: socket.socket, family: int, seq: int) -> list[Conn]:
    conns, interrupted = _dump_once(sock, family, seq)
    for attempt in range(1, _DUMP_ATTEMPTS):
        if not interrupted:
            break
        conns, interrupted = _dump_once(sock, family, seq + 16 * attempt)
    return conns  # after repeated interruptions, the last (possibly slightly inconsistent) dump


def _dump_once(sock: socket.socket, family: int, seq: int) -> tuple[list[Conn], bool]:
    """One SOCK_DIAG_BY_FAMILY dump: the sockets, and whether the kernel flagged it interrupted (the socket
    table changed during the dump)."""
    body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), ALL_STATES)
    sock.sendto(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP,
                               seq, 0) + body, (0, 0))
    conns: list[Conn] = []
    interrupted = False
    while True:
        data = sock.recv(_RECV_BUFFER)
        if not data:
            raise DiagError("sock_diag: empty netlink read")
        off = 0
        while off + _NLMSGHDR.size <= len(data):
            length, mtype, flags, mseq, _pid = _NLMSGHDR.unpack_from(data, off)
            if length < _NLMSGHDR.size or off + length > len(data):
                raise DiagError(f"sock_diag: bad netlink message length {length}")
            payload = memoryview(data)[off + _NLMSGHDR.size: off + length]
            off += (length + 3) & ~3
            if mseq != seq:
                continue  # an answer to an earlier, abandoned request
            interrupted |= bool(flags & NLM_F_DUMP_INTR)
            if mtype == NLMSG_DONE:
                if len(payload) >= 4 and (err := struct.unpack_from("=i", payload)[0]) < 0:
                    raise DiagError(-err, f"sock_diag dump: {os.strerror(-err)}")
                return conns, interrupted
            if mtype == NLMSG_ERROR:
                err = struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                if err == 0:  # an ACK, not an error
                    continue
                raise DiagError(-err, f"sock_diag: {os.strerror(-err)}")
            if mtype == NLMSG_NOOP:
                continue
            if mtype == SOCK_DIAG_BY_FAMILY:
                conns.append(_parse_msg(payload))


def _addr(family: int, raw: bytes | memoryview, port: int) -> tuple[str, int]:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, bytes(raw[:4])), port
    return socket.inet_ntop(socket.AF_INET6, bytes(raw[:16])), port


def _parse_msg(msg: memoryview) -> Conn:
    if len(msg) < _MSG_LEN:
        raise DiagError(f"sock_diag: short inet_diag_msg ({len(msg)} bytes)")
    family, state, timer, _retrans = _MSG_HEAD.unpack_from(msg, 0)
    sport, dport = _SOCKID_PORTS.unpack_from(msg, 4)
    _ifindex, cookie_lo, cookie_hi = _SOCKID_TAIL.unpack_from(msg, 40)
    _expires, rqueue, wqueue, uid, inode = _MSG_TAIL.unpack_from(msg, 52)
    info: dict[str, int] = {}
    off = _MSG_LEN
    while off + _RTA.size <= len(msg):
        rta_len, rta_type = _RTA.unpack_from(msg, off)
        if rta_len < _RTA.size or off + rta_len > len(msg):
            raise DiagError(f"sock_diag: bad attribute length {rta_len}")
        if rta_type == INET_DIAG_INFO:
            tcp_info = msg[off + _RTA.size: off + rta_len]
            for name, at, fmt in _TCP_INFO_FIELDS:
                if at + struct.calcsize(fmt) <= len(tcp_info):
                    info[name] = struct.unpack_from(fmt, tcp_info, at)[0]
        off += (rta_len + 3) & ~3
    return Conn(
        family=family, state=state, local=_addr(family, msg[8:24], sport), remote=_addr(family, msg[24:40], dport),
        rqueue=rqueue, wqueue=wqueue, timer=timer, inode=inode, uid=uid, cookie=cookie_lo | (cookie_hi << 32),
        **info,
    )


# --- judging them -----------------------------------------------------------------------------------------


def listening_ports(conns: Iterable[Conn]) -> set[int]:
    """The TCP ports something listens on (any address, either family)."""
    return {c.local[1] for c in conns if c.state == TCP_LISTEN}


def busy(conns: Iterable[Conn]) -> list[Conn]:
    """The inbound connections that look in the middle of a request.

    A connection is busy when all of these hold:

    1. its state is ESTABLISHED (half-closed and closing states, CLOSE_WAIT, FIN_WAIT*, LAST_ACK, CLOSING,
       TIME_WAIT, are never busy: one side has said it is done);
    2. it is inbound: its local port is a port some socket of the namespace listens on (outbound
       connections of the pod use other, ephemeral, local ports);
    3. and at least one of:

       - ``rqueue > 0``: request bytes have arrived that the app has not read yet;
       - ``last_data_recv_ms < last_data_sent_ms`` (both "ms ago"): data arrived after the socket last sent
         data, i.e. a request was read and its response has not started. Equal values (same jiffy, or a
         fresh connection on which nothing happened yet, both stamped at the handshake) count as idle.

    Bytes the app has written but the client has not acknowledged yet do not count: the kernel delivers them
    even after the process exits (a close sends what is queued, then FIN), and keep-alive clients delay that
    acknowledgement until their next request, so unacknowledged bytes sit on every idle keep-alive connection.
    A connection idle between keep-alive requests (everything read, its last response written after the last
    request) is therefore not busy. Without tcp_info only the receive queue is judged.
    """
    conns = list(conns)
    ports = listening_ports(conns)
    out = []
    for c in conns:
        if c.state != TCP_ESTABLISHED or c.local[1] not in ports:
            continue
        queued = c.rqueue > 0
        awaiting = (c.last_data_recv_ms is not None and c.last_data_sent_ms is not None
                    and c.last_data_recv_ms < c.last_data_sent_ms)
        if queued or awaiting:
            out.append(c)
    return out


def busy_in(netns: Path) -> list[Conn]:
    """busy(connections(netns)): blocking."""
    return busy(connections(netns))


# --- draining ---------------------------------------------------------------------------------------------


async def drain(netns: Path, timeout: float, poll: float = 0.005) -> DrainResult:
    """Wait until no inbound connection of the namespace is busy (see :func:`busy`), at most ``timeout``
    seconds, polling every ``poll`` seconds (each poll runs in a worker thread). Never raises for a
    namespace that cannot be entered (``gone``) or a sock_diag failure (``error``): it returns at once,
    since draining only delays the SIGTERM and must not stop a pod's deletion."""
    start = time.monotonic()
    deadline = start + max(0.0, timeout)
    busy_at_start: int | None = None
    polls = 0
    while True:
        try:
            now_busy = await asyncio.to_thread(busy_in, netns)
        except NamespaceGone:
            return DrainResult(time.monotonic() - start, busy_at_start or 0, False, gone=True, polls=polls)
        except OSError as e:
            return DrainResult(time.monotonic() - start, busy_at_start or 0, False, error=str(e), polls=polls)
        polls += 1
        if busy_at_start is None:
            busy_at_start = len(now_busy)
        now = time.monotonic()
        if not now_busy:
            return DrainResult(now - start, busy_at_start, False, polls=polls)
        if now >= deadline:
            return DrainResult(now - start, busy_at_start, True, still_busy=tuple(now_busy), polls=polls)
        await asyncio.sleep(min(poll, deadline - now))
