"""The in-process controller manager: every control-plane loop over one shared set of informers.

Components (namespace, ReplicaSet, Deployment, Endpoints and EndpointSlice
controllers, garbage collector, scheduler, simulated nodes) each take the
in-process client and the shared
:class:`~tinykube.machinery.informer.InformerFactory`, register their informers
and handlers when constructed, and start their workers once every informer has
synced — so no controller acts on a half-filled cache. The same components run
over :class:`~tinykube.client.http.HttpClient` unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..client.base import Client
from ..controllers.namespace.controller import NamespaceController
from ..controllers.replicaset.controller import ReplicaSetController
from ..machinery.informer import InformerFactory

log = logging.getLogger("tinykube.server.manager")


class Component(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class ManagerOptions:
    simulated_nodes: int = 0
    ca_pem: str = ""
    nodes: int = 0  # real nodes run by agents in this process (0 or 1 for now)
    data_dir: Path | None = None
    kubelet_token: str = ""  # what node agents accept from the API server
    certfile: str = ""  # the kubelet API's serving certificate (of the cluster CA)
    keyfile: str = ""
    service_cidr: str = ""  # the cluster's service range (its last /24 is the LoadBalancer pool)


class ControllerManager:
    def __init__(self, client: Client, opts: ManagerOptions) -> None:
        from ..controllers.deployment.controller import DeploymentController
        from ..controllers.endpoints.controller import EndpointsController
        from ..controllers.endpointslice.controller import EndpointSliceController
        from ..controllers.garbagecollector.collector import GarbageCollector
        from ..scheduler.scheduler import Scheduler

        self.client = client
        self.opts = opts
        self.informers = InformerFactory(client)
        self.namespaces = NamespaceController(client, opts.ca_pem)
        self.components: dict[str, Any] = {
            "replicaset-controller": ReplicaSetController(client, self.informers),
            "deployment-controller": DeploymentController(client, self.informers),
            "garbage-collector": GarbageCollector(client, self.informers),
            "endpoint-controller": EndpointsController(client, self.informers),
            "endpointslice-controller": EndpointSliceController(client, self.informers),
            "scheduler": Scheduler(client, self.informers),
        }
        self.agent: Any = None
        if opts.nodes > 0 and opts.data_dir is not None:
            from ..agent.agent import local_agent

            if opts.nodes > 1:
                log.warning("only one real node per machine for now: starting 1 of %d", opts.nodes)
            self.agent = local_agent(client, self.informers, opts.data_dir, opts.kubelet_token, opts.certfile,
                                     opts.keyfile)
            self.components["node-agent"] = self.agent
        self.dns: Any = None
        if self.agent is not None and self.agent.opts.net is not None:
            # Cluster DNS on the node's gateway address, port 53: pods' resolv.conf points there.
            from ..dns import Config as DnsConfig
            from ..dns import DnsServer

            gateway = self.agent.opts.net.gateway
            self.dns = DnsServer(self.informers, [(gateway, 53)], DnsConfig(nameservers=(gateway,)))
            self.agent.opts.dns_ip = gateway
        self.proxy: Any = None
        if self.agent is not None:
            # The node's data path — nftables as root, NodePorts on 127.0.0.1 in userspace otherwise; the agent
            # stops a deleted pod only once it is out of it.
            from ..proxy.proxier import DataPath, NftablesDataPath, ServiceProxy

            net = self.agent.opts.net
            path: DataPath
            if net is not None:
                path = NftablesDataPath(net.tag, [net.gateway], net.cluster_cidr, net.service_cidr)
            else:
                from ..proxy.userspace import UserspaceProxy

                path = UserspaceProxy(["127.0.0.1"])
            self.proxy = ServiceProxy(self.informers, path)
            self.components["service-proxy"] = self.proxy
            self.agent.opts.data_path = self.proxy
        if opts.service_cidr:
            # LoadBalancer addresses from the last /24 of the service range (routed to this machine's node bridge).
            from ..apiserver.allocators import ServiceRange
            from ..controllers.servicelb.controller import ServiceLBController

            pool = ServiceRange(opts.service_cidr).lb_pool
            if pool is not None:
                self.components["service-lb-controller"] = ServiceLBController(client, self.informers, str(pool))
        if opts.simulated_nodes > 0:
            from ..sim.nodes import SimulatedNodes

            base: dict[str, Any] = {}
            if self.agent is not None and self.agent.opts.net is not None:
                # Beside a real node, simulated nodes take the /24s after the real node's, in the cluster's range.
                from ipaddress import IPv4Network

                real = IPv4Network(self.agent.opts.net.node_cidr)
                base["pod_cidr_base"] = f"{real.network_address + real.num_addresses}/24"
            self.components["simulated-nodes"] = SimulatedNodes(client, self.informers, opts.simulated_nodes, **base)

    async def start(self) -> None:
        await self.namespaces.start()
        self.informers.start()
        await self.informers.wait_synced()
        for c in self.components.values():
            c.start()
        if self.agent is not None:
            # The node's kubelet API is part of "ready": logs and exec work as soon as `up` returns.
            try:
                await asyncio.wait_for(self.agent.wait_serving(), 15)
            except TimeoutError:
                log.warning("the node agent's kubelet API did not start in time")
        if self.dns is not None:  # after the agent made the node bridge, whose address it listens on
            try:
                await self.dns.start()
            except OSError as ex:
                log.warning("cluster DNS could not listen: %s; pods use the host's resolvers", ex)
                self.agent.opts.dns_ip = ""
                self.dns = None

    async def stop(self) -> None:
        if self.dns is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.dns.stop(), 5)
        for name, c in reversed(list(self.components.items())):
            try:
                await asyncio.wait_for(c.stop(), 5)
            except Exception as ex:  # stopping must go on with the other components
                log.warning("stopping %s: %s", name, ex)
        with contextlib.suppress(Exception):
            await self.namespaces.stop()
        await self.informers.stop()
