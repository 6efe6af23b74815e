"""The node's service proxy: keeps one data path in step with the Services and EndpointSlices informers.

:class:`ServiceProxy` is kube-proxy's loop in one asyncio task. Every add, update or
delete of a Service or an EndpointSlice sets a "dirty" event; the loop wakes, builds the
complete list of :class:`~.nftrules.ServicePort` from the informer caches (EndpointSlices, and
the hand-made Endpoints of Services without a selector) and hands it
to the data path in one call. Changes that arrive while a sync runs are coalesced into
the next one, so a burst of endpoint updates costs one or two syncs, and there is no
timer between an event and its sync (the goal is a data path updated within tens of
milliseconds of a change). A failed sync is retried with a growing delay (0.1 s → 5 s).

Two data paths share the :class:`DataPath` shape (``apply`` the full list; ``close``):

* :class:`NftablesDataPath` (root): renders :func:`~.nftrules.ruleset` for the cluster's
  own table ``tinykube-<tag>`` and loads it with ``nft -f -`` — one kernel transaction
  that replaces the previous table; an unchanged text is not loaded again. ``close``
  deletes the table (``tinykube down`` does the same for a server that died).
* :class:`~.userspace.UserspaceProxy` (no root): listeners on the NodePorts.

Endpoints of pods whose deletion has started count as not ready even before their
EndpointSlice says so (the proxy watches pods for that alone): the node agent and the proxy
see a deletion through the same pod informer, so a slice that lags — or an older slice
write still in flight — can never route new connections to a pod being stopped.

What was last applied is kept as :attr:`ServiceProxy.applied_ready`, the endpoint
addresses the data path sends new connections to (the ready ones, and the terminating
ones of a port that has no ready endpoint left). The node agent
waits on :meth:`ServiceProxy.wait_unrouted` before it stops a deleted pod's containers:
once the pod's address is no longer there, no new connection can reach it, and what is
still established is left to finish (see ``agent/drain.py``). That ordering — data path
first, SIGTERM after — is what upstream leaves to ``preStop`` sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from ..api.resources import must
from ..client.base import Obj
from ..machinery.controller import stop_tasks
from ..machinery.informer import InformerFactory
from .nftrules import ServicePort, ruleset, service_ports

log = logging.getLogger("tinykube.proxy")

SERVICES = must("", "v1", "services")
ENDPOINTSLICES = must("discovery.k8s.io", "v1", "endpointslices")
ENDPOINTS = must("", "v1", "endpoints")
PODS = must("", "v1", "pods")


class DataPath(Protocol):
    async def apply(self, ports: list[ServicePort]) -> None: ...

    async def close(self) -> None: ...


class NftError(Exception):
    pass


async def run_nft(text: str | None, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec("nft", *(args or ("-f", "-")), stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(text.encode() if text is not None else None)
    if proc.returncode != 0:
        raise NftError(f"nft {' '.join(args) or '-f -'}: {(err or out).decode().strip()[:2000]}")


def table_name(tag: str) -> str:
    return f"tinykube-{tag}"


class NftablesDataPath:
    """The kernel data path: one nftables table per cluster, replaced as a whole on every change."""

    def __init__(self, tag: str, node_ips: list[str], pod_cidr: str, service_cidr: str | None = None) -> None:
        self.table = table_name(tag)
        self.node_ips = node_ips
        self.pod_cidr = pod_cidr
        self.service_cidr = service_cidr or None
        self._loaded = ""

    async def apply(self, ports: list[ServicePort]) -> None:
        # Every service connection is masqueraded: a pod reaching a pod on the same bridge through a cluster IP
        # gets its replies back through the host's conntrack only so (no br_netfilter needed on the host).
        text = ruleset(self.table, ports, node_ips=self.node_ips, pod_cidr=self.pod_cidr, masquerade_all=True,
                       service_cidr=self.service_cidr)
        if text == self._loaded:
            return
        await run_nft(text)
        self._loaded = text

    async def close(self) -> None:
        await delete_table(self.table)
        self._loaded = ""


async def delete_table(table: str) -> None:
    with contextlib.suppress(NftError, OSError):
        await run_nft(None, "delete", "table", "ip", table)


def delete_table_sync(tag: str) -> None:
    """Remove a cluster's table (``tinykube down`` after a crash). Absent is fine."""
    import subprocess

    with contextlib.suppress(OSError):
        subprocess.run(["nft", "delete", "table", "ip", table_name(tag)], capture_output=True)


class ServiceProxy:
    """Feeds a :class:`DataPath` from the shared informers; see the module docstring."""

    name = "service-proxy"

    def __init__(self, informers: InformerFactory, path: DataPath) -> None:
        self.path = path
        self.services = informers.informer(SERVICES)
        self.slices = informers.informer(ENDPOINTSLICES)
        self.endpoints = informers.informer(ENDPOINTS)
        self._dirty = asyncio.Event()
        self._applied = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.applied_ready: frozenset[str] = frozenset()
        self.generation = 0
        self._syncing = False
        self.last_sync_seconds = 0.0
        for inf in (self.services, self.slices, self.endpoints):
            inf.add_handlers(self._changed, self._updated, self._changed)
        # Addresses of pods whose deletion has started: never a ready endpoint, whatever a slice still says.
        self.terminating: dict[str, str] = {}  # pod IP -> pod uid
        self.gone: dict[str, str] = {}  # addresses of deleted pods that slices may still list: pod IP -> uid
        informers.informer(PODS).add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)

    def _pod_added(self, pod: Obj) -> None:
        self._pod_updated(pod, pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        md = new["metadata"]
        if (new.get("spec") or {}).get("hostNetwork"):
            return
        uid = md.get("uid", "")
        for ip in _pod_ips(new):
            if not md.get("deletionTimestamp"):
                if ip in self.gone and self.gone[ip] != uid:
                    del self.gone[ip]  # the address belongs to a new pod now
            elif self.terminating.get(ip) != uid:
                self.terminating[ip] = uid
                self._dirty.set()

    def _pod_deleted(self, pod: Obj) -> None:
        # The pod is gone, but an EndpointSlice may still list it as ready until its controller catches up:
        # keep its address out of the data path until no slice has it (see _demote) or a new pod takes it.
        uid = pod["metadata"].get("uid", "")
        for ip in _pod_ips(pod):
            if self.terminating.get(ip) == uid:
                del self.terminating[ip]
            if not (pod.get("spec") or {}).get("hostNetwork"):
                self.gone[ip] = uid

    def _changed(self, obj: Obj) -> None:
        self._dirty.set()

    def _updated(self, old: Obj, new: Obj) -> None:
        self._dirty.set()

    def start(self) -> None:
        if self._task is None:
            self._dirty.set()
            self._task = asyncio.create_task(self._run(), name="service-proxy")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
        await self.path.close()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.sync()
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as ex:
                log.warning("service proxy sync failed (retrying in %.1fs): %s", delay, ex)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._dirty.set()

    async def sync(self) -> None:
        self._syncing = True
        try:
            await self._sync()
        finally:
            self._syncing = False

    async def _sync(self) -> None:
        t0 = time.perf_counter()
        services = self.services.list()
        # A Service without a selector has hand-made Endpoints (upstream mirrors them into EndpointSlices).
        manual = {(s["metadata"].get("namespace"), s["metadata"].get("name")) for s in services
                  if not (s.get("spec") or {}).get("selector")}
        sources = [*self.slices.list(), *(e for e in self.endpoints.list()
                                          if (e["metadata"].get("namespace"), e["metadata"].get("name")) in manual)]
        ports = _demote(service_ports(services, sources), self.terminating, self.gone)
        if self.gone:  # forget the addresses no slice lists any more
            listed = {b.ip for sp in ports for b in sp.backends}
            for ip in [ip for ip in self.gone if ip not in listed]:
                del self.gone[ip]
        await self.path.apply(ports)
        # Where new connections can go: the ready endpoints, and the terminating ones of a port with no ready one.
        ready = frozenset(b.ip for sp in ports for b in sp.targets)
        async with self._applied:
            self.applied_ready = ready
            self.generation += 1
            self._applied.notify_all()
        self.last_sync_seconds = time.perf_counter() - t0

    async def wait_unrouted(self, ip: str, timeout: float) -> bool:
        """Wait until the data path no longer sends new connections to ``ip`` (True), or
        ``timeout`` seconds pass (False). The answer comes from a ruleset computed after the call — a sync
        already running may have read the caches before the pod's deletion."""
        after = self.generation + (2 if self._syncing else 1)
        self._dirty.set()

        async def gone() -> None:
            async with self._applied:
                await self._applied.wait_for(lambda: self.generation >= after and ip not in self.applied_ready)

        try:
            await asyncio.wait_for(gone(), timeout)
            return True
        except TimeoutError:
            return False


def _pod_ips(pod: Obj) -> list[str]:
    st = pod.get("status") or {}
    ips = [i.get("ip") for i in st.get("podIPs") or [] if isinstance(i, dict)] or [st.get("podIP")]
    return [ip for ip in ips if isinstance(ip, str) and ip]


def _demote(ports: list[ServicePort], terminating: Mapping[str, str], gone: Mapping[str, str]) -> list[ServicePort]:
    """The endpoints of terminating pods as not ready (serving, terminating), those of deleted pods as neither
    ready nor serving: the pod informer sees a deletion as soon as the node agent does, while an EndpointSlice
    saying so — or an older one saying ready, still on its way — may come later. The agent's unroute wait, and
    the zero-drop promise after it, rely on this."""
    if not terminating and not gone:
        return ports
    out: list[ServicePort] = []
    for sp in ports:
        if any(b.ip in gone or (b.ready and b.ip in terminating) for b in sp.backends):
            sp = replace(sp, backends=tuple(
                replace(b, ready=False, serving=False, terminating=True) if b.ip in gone
                else replace(b, ready=False, terminating=True) if b.ip in terminating else b
                for b in sp.backends))
        out.append(sp)
    return out
