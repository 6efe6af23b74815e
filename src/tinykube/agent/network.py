"""Pod networking on one node (root mode): a bridge, a network namespace per pod, a veth pair between them.

Layout, for a cluster whose pod CIDR is ``10.244.0.0/16`` and a node given
``10.244.0.0/24``:

* the node bridge ``tkb-<tag>`` holds ``10.244.0.1/24`` — the pods' gateway, and the
  node's InternalIP (the agent's kubelet API listens there);
* each pod gets a network namespace ``tk-<tag>-<pod uid prefix>`` (a file under
  ``/run/netns``, so it outlives the agent and is adopted back), a veth pair whose
  host end (``tkv<hash>``) is a bridge port and whose pod end is ``eth0`` with the
  pod's IP, a default route via the gateway, ``lo`` up, and
  ``net.ipv4.ip_unprivileged_port_start=0`` so an unprivileged app binds port 80;
* the host reaches every pod IP through the bridge's connected route; pods reach
  each other on the bridge;
* a ``blackhole`` route for the cluster's whole pod CIDR in the host namespace: an
  address of the cluster that no bridge serves goes nowhere, never out of the machine;
* the cluster's service CIDR (``10.(96+k).0.0/16``, chosen with the pod CIDR) routed
  to the node bridge: a host process connecting to a cluster IP gets a route (a
  blackhole would fail the connect before the nftables NAT of the data path could
  rewrite the destination), and anything the data path does not rewrite stays on
  the bridge, inside this machine. Until the bridge exists the range is blackholed.

``tag`` is derived from the data dir, so clusters with different data dirs on one
machine never share a name. Each cluster picks its pod CIDR at first start — the
first ``10.(244+k).0.0/16`` that no route or address on the host overlaps, with
``10.(96+k).0.0/16`` for its services, under a host-wide lock, and keeps them
(``agent/node.json``).

Everything is done with iproute2 (``ip -batch``: three short processes per pod)
rather than netlink from the agent's process: the per-pod cost is a few
milliseconds and a failure leaves a readable error. :func:`teardown` removes
exactly what this cluster created: its bridge, its namespaces (by name prefix),
their veths (they die with the namespace) and its blackhole route.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
LOCK_PATH = Path("/run/tinykube.lock")


class NetworkError(Exception):
    pass


def cluster_tag(data_dir: Path) -> str:
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:6]


@dataclass(frozen=True)
class NodeNetwork:
    tag: str
    cluster_cidr: str  # the whole pod range (/16), blackholed on the host
    node_cidr: str  # this node's pods (/24)
    service_cidr: str = ""  # the cluster's virtual IPs (/16), routed to the bridge

    @property
    def bridge(self) -> str:
        return f"tkb-{self.tag}"

    @property
    def gateway(self) -> str:
        return str(ipaddress.IPv4Network(self.node_cidr).network_address + 1)

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.node_cidr).prefixlen

    def netns(self, pod_uid: str) -> str:
        return f"tk-{self.tag}-{pod_uid.replace('-', '')[:12]}"

    def netns_path(self, pod_uid: str) -> Path:
        return NETNS_DIR / self.netns(pod_uid)

    def veth(self, pod_uid: str) -> str:
        return "tkv" + hashlib.sha256((self.tag + pod_uid).encode()).hexdigest()[:11]


def _ip(args: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _host_networks() -> list[ipaddress.IPv4Network]:
    nets: list[ipaddress.IPv4Network] = []
    for args in (["-j", "-4", "route", "show", "table", "all"], ["-j", "-4", "addr"]):
        r = _ip(args, check=False)
        with contextlib.suppress(ValueError):
            for item in json.loads(r.stdout or "[]"):
                dst = item.get("dst")
                if dst and dst != "default":
                    with contextlib.suppress(ValueError):
                        nets.append(ipaddress.IPv4Network(dst if "/" in dst else dst + "/32", strict=False))
                for a in item.get("addr_info") or []:
                    with contextlib.suppress(ValueError, KeyError):
                        nets.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return nets


def choose_cluster_ranges() -> tuple[str, str]:
    """The pod and service ranges ``10.(244+k).0.0/16`` and ``10.(96+k).0.0/16`` for the first ``k`` where
    nothing on this host overlaps either (call under :func:`host_lock`)."""
    taken = _host_networks()
    for k in range(0, 12):
        pods, services = ipaddress.IPv4Network(f"10.{244 + k}.0.0/16"), ipaddress.IPv4Network(f"10.{96 + k}.0.0/16")
        if not any(pods.overlaps(n) or services.overlaps(n) for n in taken):
            return str(pods), str(services)
    raise NetworkError("no free pair of 10.244-255.0.0/16 pod and 10.96-107.0.0/16 service ranges on this host")


def service_range_for(cluster_cidr: str) -> str:
    """The service range paired with a pod range (for node settings saved before service ranges were chosen)."""
    k = int(cluster_cidr.split(".")[1]) - 244
    return f"10.{96 + k}.0.0/16"


def claim(*cidrs: str) -> None:
    """Mark ranges as this cluster's at once (call under :func:`host_lock`, after
    :func:`choose_cluster_ranges`): their blackhole routes are what other clusters see as taken."""
    for cidr in cidrs:
        _ip(["route", "replace", "blackhole", cidr])


def setup_node(net: NodeNetwork) -> None:
    """Create (or find) the bridge with the gateway address, and the cluster's blackhole route. Idempotent."""
    with host_lock():
        if _ip(["link", "show", net.bridge], check=False).returncode != 0:
            _ip(["link", "add", net.bridge, "type", "bridge"])
        addr = f"{net.gateway}/{net.prefixlen}"
        shown = _ip(["-4", "addr", "show", "dev", net.bridge]).stdout
        if addr not in shown:
            _ip(["addr", "add", addr, "dev", net.bridge])
        _ip(["link", "set", net.bridge, "up"])
        routes = _ip(["-4", "route", "show", "type", "blackhole"], check=False).stdout
        if f"blackhole {net.cluster_cidr}" not in routes:
            _ip(["route", "add", "blackhole", net.cluster_cidr])
        if net.service_cidr:
            _ip(["route", "replace", net.service_cidr, "dev", net.bridge, "src", net.gateway])
        # The data path: 127.0.0.1 NodePorts are DNATed out of the bridge (route_localnet), and packets of pods to
        # cluster IPs come back out of the bridge to other pods (forwarding, on this interface only).
        for key in ("route_localnet", "forwarding"):
            with open(f"/proc/sys/net/ipv4/conf/{net.bridge}/{key}", "w") as f:
                f.write("1")


async def _aip(args: list[str], stdin: str | None = None) -> None:
    proc = await asyncio.create_subprocess_exec("ip", *args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin else None)
    if proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {(err or out).decode().strip()}")


def netns_exists(net: NodeNetwork, pod_uid: str) -> bool:
    return net.netns_path(pod_uid).exists()


async def setup_pod(net: NodeNetwork, pod_uid: str, ip: str) -> None:
    """The pod's namespace, veth, address and routes. A half-made namespace from a crash is replaced."""
    ns, veth = net.netns(pod_uid), net.veth(pod_uid)
    if net.netns_path(pod_uid).exists():
        await teardown_pod(net, pod_uid)
    await _aip(["-batch", "-"], stdin="\n".join([
        f"netns add {ns}",
        f"link add {veth} type veth peer name eth0 netns {ns}",
        f"link set {veth} master {net.bridge}",
        # A pod reaching itself through its Service: where br_netfilter DNATs on the bridge, the frame goes back
        # out of the port it came in by (kubelet's "hairpin-veth").
        f"link set {veth} type bridge_slave hairpin on",
        f"link set {veth} up",
    ]) + "\n")
    await _aip(["-n", ns, "-batch", "-"], stdin="\n".join([
        "link set lo up",
        f"addr add {ip}/{net.prefixlen} dev eth0",
        "link set eth0 up",
        f"route add default via {net.gateway}",
    ]) + "\n")
    await asyncio.to_thread(_sysctl_in, net.netns_path(pod_uid), {
        "net/ipv4/ip_unprivileged_port_start": "0",
        "net/ipv4/ping_group_range": "0 2147483647",
    })


@contextlib.contextmanager
def _in_netns(netns: Path) -> Iterator[None]:
    """Run the body in ``netns`` (this thread only: setns affects the calling thread), then come back."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise NetworkError(f"setns {netns}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:  # a thread stuck in a pod's namespace must not be reused
                raise SystemExit(f"cannot return from network namespace {netns}")
    finally:
        os.close(own)
        os.close(target)


def _sysctl_in(netns: Path, values: dict[str, str]) -> None:
    """Write network sysctls inside a namespace: /proc/sys/net follows the opener's network namespace."""
    with _in_netns(netns):
        for key, value in values.items():
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)


def socket_in(netns: Path) -> socket.socket:
    """A TCP socket created in ``netns``: it stays there, whatever thread uses it later (port-forward)."""
    with _in_netns(netns):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


async def teardown_pod(net: NodeNetwork, pod_uid: str, ip: str = "") -> None:
    """Delete the pod's namespace (its veth pair goes with it), then forget the host's connection tracking
    entries of the pod's address. Absent is fine."""
    ns = net.netns(pod_uid)
    if net.netns_path(pod_uid).exists():
        with contextlib.suppress(NetworkError):
            await _aip(["netns", "del", ns])
    # A veth left by a crash between "link add" and the namespace's removal.
    with contextlib.suppress(NetworkError):
        if Path(f"/sys/class/net/{net.veth(pod_uid)}").exists():
            await _aip(["link", "del", net.veth(pod_uid)])
    if ip:
        await forget_connections(ip)


async def forget_connections(ip: str) -> None:
    """Delete the conntrack entries whose replies come from ``ip`` (connections DNATed to a pod that is gone).

    Needed for zero-drop: a connection the dead pod reset leaves its entry in CLOSE state for 10 s, and a client
    that reuses the same source port within that time has its SYN matched to the old entry — and to the old
    pod's address, with its NAT — instead of being load-balanced anew (the kernel only re-opens entries that
    ended in TIME_WAIT or were reset by the client). UDP "connections" to the pod end here too."""
    with contextlib.suppress(OSError):
        proc = await asyncio.create_subprocess_exec("conntrack", "-D", "--reply-src", ip,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await proc.wait()  # exit 1 = nothing to delete


def cluster_namespaces(tag: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(f"tk-{tag}-"))
    except OSError:
        return []


def teardown_node(tag: str, *cidrs: str | None) -> None:
    """Remove everything of this cluster on this host: pod namespaces, bridge, the routes of its ranges."""
    for ns in cluster_namespaces(tag):
        _ip(["netns", "del", ns], check=False)
    _ip(["link", "del", f"tkb-{tag}"], check=False)
    for cidr in cidrs:
        if cidr:
            _ip(["route", "del", cidr], check=False)
