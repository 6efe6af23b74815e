"""The node agent: registers the Node, heartbeats, and runs the pods bound to it as real processes.

Shape, as the kubelet's: informer handlers enqueue pod keys; one sync per pod
key (never two at once for a key) compares what the pod asks for with what runs
and takes the next steps — sandbox (IP, network namespace, volumes, hosts
files), init containers one at a time to completion, then the app containers —
and writes the pod's status when what it reports changed. Container exits
wake the sync through the shims' pidfds; back-offs and probe results through
the work queue. Nothing polls.

Decisions, per container (upstream's rules):

* **image** — resolved in the node's image store by ``imagePullPolicy``:
  ``Always`` "pulls" (``Pulling``/``Pulled``), ``IfNotPresent`` uses a present
  image (``already present on machine``), ``Never`` never pulls
  (``ErrImageNeverPull``). A missing image is ``ErrImagePull``, then
  ``ImagePullBackOff`` while the retry waits (10 s doubling to 300 s).
* **restart** — an exited container is started again by ``restartPolicy``
  (``Always``; ``OnFailure`` when the exit code is not 0; never for ``Never``):
  the first restart at once, then after 10 s, 20 s ... 300 s
  (``CrashLoopBackOff``); the back-off forgets after 10 minutes of running.
* **probes** — startup gates liveness and readiness; readiness drives
  ``ready``; a liveness failure kills the container (``Killing``) and the
  restart policy decides what follows.
* **termination** — a pod with a deletion timestamp: ``Killing`` events, preStop
  hooks, SIGTERM to each container's first process, SIGKILL when the grace
  period ends; when nothing runs, the sandbox is torn down and the pod object is
  deleted with grace 0 (uid precondition), which removes it from the API.

Status is rendered by :func:`tinykube.sim.lifecycle.render_status` — the same
rendering the simulated kubelet uses — from container states built off the
runs on disk (:mod:`tinykube.agent.runtime`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..api import errors
from ..api.meta import now_rfc3339, parse_timestamp
from ..api.resources import NODES, PODS, must
from ..client.base import Client, Obj
from ..machinery.controller import Controller, stop_tasks
from ..machinery.events import EventRecorder
from ..machinery.informer import InformerFactory, key_of, newest, split_key
from ..sim import lifecycle
from ..sim.ipam import PodAddresses
from ..sim.lifecycle import ContainerPlan, CState, Plan, Snapshot, Timing
from ..sim.objects import LEASE_NAMESPACE, lease_object, node_object, node_status
from . import cgroups, drain, envvars, network, node, probes, sandbox, volumes
from . import server as kubelet_api
from .runtime import SCHEME, Run, Runtime

LISTEN_WAIT_SECONDS = 30.0  # how long a container without a readiness probe may take to listen on its ports
log = logging.getLogger("tinykube.agent")

LEASES = must("coordination.k8s.io", "v1", "leases")
CONFIGMAPS = must("", "v1", "configmaps")
SECRETS = must("", "v1", "secrets")
SERVICES = must("", "v1", "services")

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
CONFIG_ERROR = "CreateContainerConfigError"
RUN_ERROR = "RunContainerError"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RESET_AFTER = 600.0  # seconds of running after which the crash back-off starts over


@dataclass
class AgentOptions:
    name: str
    data_dir: Path
    net: network.NodeNetwork | None  # None: host network (no root)
    images: Any  # tinykube.agent.images.ImageStore
    kubelet_port: int = 10250
    kubelet_token: str = ""  # the kubelet API is served only with a token (the API server has the same one)
    dns_ip: str = ""  # the cluster DNS server pods use ("" = the host's resolvers)
    data_path: Any = None  # the node's service proxy: has ``async wait_unrouted(ip, timeout) -> bool``
    certfile: str = ""
    keyfile: str = ""
    host_uid: int = 65534
    lease_seconds: float = 10.0
    lease_duration: int = 40
    status_seconds: float = 60.0
    timing: Timing = field(default_factory=Timing)


@dataclass
class CTrack:
    """What the agent remembers of one container of a pod beyond its runs on disk."""

    name: str
    role: str
    spec: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    waiting: tuple[str, str] = ("ContainerCreating", "")
    restart_at: float = 0.0  # no start before this (crash back-off)
    backoff_n: int = 0
    pull_failures: int = 0
    pull_at: float = 0.0  # next pull attempt
    pull_failed_at: float = 0.0
    image_id: str = ""
    ready: bool = False
    started: bool = False
    probes: probes.ContainerProbes | None = None

    @property
    def last(self) -> Run | None:
        return self.runs[-1] if self.runs else None


@dataclass
class PodTrack:
    uid: str
    key: str
    origin: float
    ip: str = ""
    sandbox: bool = False
    containers: dict[str, CTrack] = field(default_factory=dict)
    init_names: list[str] = field(default_factory=list)
    main_names: list[str] = field(default_factory=list)
    volumes: dict[str, Path] = field(default_factory=dict)
    kill_at: float | None = None
    deleted: bool = False
    last: Obj | None = None


class _Lookup:
    """ConfigMaps, Secrets and Services for env and volumes, from the shared informers."""

    def __init__(self, informers: InformerFactory) -> None:
        self.cms = informers.informer(CONFIGMAPS)
        self.secrets = informers.informer(SECRETS)
        self.svcs = informers.informer(SERVICES)

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cms.get(namespace, name)

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get(namespace, name)

    def services(self, namespace: str) -> list[dict[str, Any]]:
        return self.svcs.list(namespace)


def _apply_dns_config(lines: list[str], cfg: dict[str, Any]) -> list[str]:
    """A pod's ``dnsConfig`` merged into resolv.conf lines as the kubelet does: nameservers and searches appended
    (duplicates dropped), options overriding by name."""
    servers = [ln.split()[1] for ln in lines if ln.startswith("nameserver") and len(ln.split()) > 1]
    search = [w for ln in lines if ln.startswith("search") for w in ln.split()[1:]]
    opts: dict[str, str | None] = {}
    for ln in lines:
        if ln.startswith("options"):
            for o in ln.split()[1:]:
                k, _, v = o.partition(":")
                opts[k] = v or None
    for ns in cfg.get("nameservers") or []:
        if ns not in servers:
            servers.append(str(ns))
    for d in cfg.get("searches") or []:
        if d not in search:
            search.append(str(d))
    for o in cfg.get("options") or []:
        if isinstance(o, dict) and o.get("name"):
            opts[str(o["name"])] = None if o.get("value") is None else str(o["value"])
    out = [f"nameserver {s}" for s in servers[:3]]
    if search:
        out.insert(0, "search " + " ".join(search[:32]))
    if opts:
        out.append("options " + " ".join(k if v is None else f"{k}:{v}" for k, v in opts.items()))
    return out


def _sidecar(container: dict[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def _grace(pod: Obj) -> int:
    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return grace if isinstance(grace, int) and grace >= 0 else 30


class NodeAgent(Controller):
    """The kubelet of one node (see the module docstring): a controller whose keys are the pods bound to it."""

    name = "node-agent"
    workers = 4
    max_retries = 1 << 30  # never give up on a pod of this node: only its deletion ends its sync

    def __init__(self, client: Client, informers: InformerFactory, opts: AgentOptions) -> None:
        super().__init__(base_delay=0.05, max_delay=10.0)
        self.client = client
        self.opts = opts
        self.name = opts.name
        self.runtime = Runtime(opts.data_dir / "agent" / opts.name)
        self.informers = informers
        self._pods = informers.informer(PODS)
        self._nodes = informers.informer(NODES)
        self.lookup = _Lookup(informers)
        self._pods.add_handlers(self._on_pod, lambda old, new: self._on_pod(new), self._on_pod)
        for inf in (self.lookup.cms, self.lookup.secrets):
            inf.add_handlers(self._on_data, lambda old, new: self._on_data(new), None)
        self.tracks: dict[str, PodTrack] = {}
        self.addresses = PodAddresses()
        self.recorder = EventRecorder(client, "kubelet", host=opts.name)
        self.node_ip = opts.net.gateway if opts.net is not None else "127.0.0.1"
        self.tag = opts.net.tag if opts.net is not None else network.cluster_tag(opts.data_dir)
        self.node_uid = ""
        self._started = asyncio.Event()
        self._serving: kubelet_api.Serving | None = None
        self._stops: set[asyncio.Task[None]] = set()
        self._serving_event = asyncio.Event()
        self.kubelet_port = opts.kubelet_port
        self.capacity, self.allocatable = node.capacity(opts.data_dir)
        if opts.net is not None:
            self.addresses.set_cidr(opts.net.node_cidr)

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Set up the node (network, kubelet API, registration, adoption), then run the workers."""
        self._tasks.append(asyncio.get_running_loop().create_task(self._run()))

    async def wait_registered(self) -> None:
        await self._started.wait()

    async def wait_serving(self) -> None:
        """Until the kubelet API listens (the API server may send ``kubectl logs`` to it right away)."""
        await self._serving_event.wait()

    async def _run(self) -> None:
        if self.opts.net is not None:
            await asyncio.to_thread(network.setup_node, self.opts.net)
        if self.opts.kubelet_token:
            self._serving = await kubelet_api.start_server(
                kubelet_api.KubeletServer(self, self.opts.kubelet_token), self.node_ip, self.opts.kubelet_port,
                certfile=self.opts.certfile or None, keyfile=self.opts.keyfile or None)
            self.kubelet_port = self._serving.port
        self._serving_event.set()
        await self._register()
        await self.informers.wait_synced()
        await self._adopt()
        self._started.set()
        super().start()  # the workers
        self._tasks.append(asyncio.get_running_loop().create_task(self._heartbeat()))

    async def stop(self) -> None:
        """Stop the agent; pods keep running (a restarted agent adopts them)."""
        self.runtime.unwatch_all()
        if self._serving is not None:
            await self._serving.stop()
        await self.queue.shutdown()
        await stop_tasks(self._tasks + list(self._stops))
        for tr in self.tracks.values():
            self._stop_probes(tr)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.recorder.flush(), 2)
        await self.recorder.stop()

    # -- node ----------------------------------------------------------------------------------------------------
    def _status(self, old: dict[str, Any] | None) -> dict[str, Any]:
        return node_status(self.name, self.node_ip, self.capacity, time.time(), old, node_info=node.node_info(self.name),
                           port=self.kubelet_port, allocatable=self.allocatable)

    async def _register(self) -> None:
        cidr = self.opts.net.node_cidr if self.opts.net is not None else ""
        try:
            obj = await self.client.get(NODES, None, self.name)
        except errors.ApiError as ex:
            if ex.code != 404:
                raise
            body = node_object(self.name, self.node_ip, cidr, self.capacity, time.time(), simulated=False,
                               node_info=node.node_info(self.name), port=self.kubelet_port,
                               allocatable=self.allocatable)
            if not cidr:
                body["spec"] = {}
            body["metadata"]["labels"] = dict(body["metadata"]["labels"], **{"kubernetes.io/arch": node.arch()})
            obj = await self.client.create(NODES, None, body)
            self.recorder.event(obj, "Normal", "Starting", "Starting kubelet.")
            self.recorder.event(obj, "Normal", "NodeReady", f"Node {self.name} status is now: NodeReady")
        else:
            obj = await self.client.update(NODES, None, {"metadata": {"name": self.name},
                                                         "status": self._status(obj.get("status"))},
                                           subresource="status")
        self.node_uid = obj["metadata"].get("uid", "")

    async def _heartbeat(self) -> None:
        last_status = time.monotonic()
        while True:
            try:
                await self.client.update(LEASES, LEASE_NAMESPACE, lease_object(
                    self.name, self.node_uid, self.opts.lease_duration, time.time()))
                if time.monotonic() - last_status >= self.opts.status_seconds:
                    cur = self._nodes.get(None, self.name)
                    await self.client.update(NODES, None, {"metadata": {"name": self.name},
                                                           "status": self._status((cur or {}).get("status"))},
                                             subresource="status")
                    last_status = time.monotonic()
            except asyncio.CancelledError:
                raise
            except errors.ApiError as ex:
                if ex.code == 404:
                    with contextlib.suppress(errors.ApiError):
                        await self._register()
                else:
                    log.warning("agent %s: heartbeat: %s", self.name, ex)
            except Exception:
                log.exception("agent %s: heartbeat failed", self.name)
            await asyncio.sleep(self.opts.lease_seconds)

    # -- events in -----------------------------------------------------------------------------------------------
    def _ours(self, pod: Obj) -> bool:
        return (pod.get("spec") or {}).get("nodeName") == self.name

    def _on_pod(self, pod: Obj) -> None:
        key = key_of(pod)
        if self._ours(pod) or key in self.tracks:
            self.queue.add(key)

    def _on_data(self, obj: Obj) -> None:
        ns = (obj.get("metadata") or {}).get("namespace")
        for key, tr in self.tracks.items():
            if key.startswith(f"{ns}/") and tr.sandbox:
                self.queue.add(key)

    async def _adopt(self) -> None:
        """Pods found on disk: those still bound here are adopted; the rest are stopped and removed."""
        live = {p["metadata"].get("uid"): p for p in self._pods.list() if self._ours(p)}
        for uid in self.runtime.pod_uids():
            if uid in live:
                # Its address stays taken before any new pod is given one (workers start after this).
                ip = self.runtime.meta(uid).get("ip")
                if isinstance(ip, str) and ip and ip != self.node_ip:
                    self.addresses.reserve(ip)
                self.queue.add(key_of(live[uid]))
                continue
            meta = self.runtime.meta(uid)
            log.info("agent %s: removing pod %s/%s (%s), no longer bound here", self.name, meta.get("namespace"),
                     meta.get("name"), uid)
            await self._teardown_uid(uid, kill=True)
        for p in live.values():
            self.queue.add(key_of(p))

    def _watch(self, run: Run, key: str) -> None:
        """Sync ``key`` when the run ends (at once if it already has)."""
        if not self.runtime.watch(run, lambda: self.queue.add(key)):
            self.queue.add(key)

    def _newest(self, key: str, tr: PodTrack | None) -> Obj | None:
        cached = self._pods.get_key(key)
        pod = newest(cached, tr.last if tr is not None else None)
        if tr is not None and pod is cached:
            tr.last = None  # the cache caught up with our write
        return pod

    def _track(self, pod: Obj) -> PodTrack:
        md = pod["metadata"]
        uid = md.get("uid", "")
        status = pod.get("status") or {}
        started = parse_timestamp(status.get("startTime"))
        tr = PodTrack(uid, key_of(pod), started if started is not None else time.time())
        spec = pod.get("spec") or {}
        for role, lst in ((lifecycle.INIT, spec.get("initContainers") or []), (lifecycle.MAIN, spec.get("containers") or [])):
            for c in lst:
                ct = CTrack(c.get("name", ""), role, c)
                ct.runs = self.runtime.runs(uid, ct.name)
                for r in ct.runs:
                    if r.running():
                        self._watch(r, tr.key)
                if ct.runs:
                    ct.backoff_n = len(ct.runs) - 1
                    ct.started = ct.ready = bool(ct.last and ct.last.running()) and not c.get("readinessProbe")
                tr.containers[ct.name] = ct
                (tr.init_names if role == lifecycle.INIT else tr.main_names).append(ct.name)
        meta = self.runtime.meta(uid)
        if meta.get("ip"):
            tr.ip = meta["ip"]
            self.addresses.reserve(tr.ip)
        return tr

    async def sync(self, key: str) -> None:
        tr = self.tracks.get(key)
        pod = self._newest(key, tr)
        if pod is None or not self._ours(pod):
            if tr is not None:
                await self._teardown(tr, kill=True)
                self.tracks.pop(key, None)
            return
        md = pod["metadata"]
        if tr is not None and tr.uid != md.get("uid"):
            await self._teardown(tr, kill=True)
            self.tracks.pop(key, None)
            tr = None
        if tr is None:
            tr = self.tracks[key] = self._track(pod)
        if md.get("deletionTimestamp"):
            await self._terminate(pod, tr)
            return
        now = time.time()
        wake: list[float] = []
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed"):
            if not tr.sandbox:
                if not await self._make_sandbox(pod, tr):
                    wake.append(now + 2.0)
            if tr.sandbox:
                await self._step(pod, tr, now, wake)
        await self._write_status(pod, tr, wake)
        if wake:
            self.queue.add_after(key, max(0.0, min(wake) - time.time()))

    # -- sandbox -------------------------------------------------------------------------------------------------
    def _hostname(self, pod: Obj) -> str:
        spec = pod.get("spec") or {}
        return str(spec.get("hostname") or pod["metadata"]["name"])[:63]

    def _etc_files(self, pod: Obj, ip: str) -> dict[str, str]:
        md, spec = pod["metadata"], pod.get("spec") or {}
        host = self._hostname(pod)
        lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
                 "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix",
                 "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
        sub = spec.get("subdomain")
        if sub:
            lines.append(f"{ip}\t{host}.{sub}.{md.get('namespace')}.svc.cluster.local\t{host}")
        else:
            lines.append(f"{ip}\t{host}")
        aliases = spec.get("hostAliases") or []
        if aliases:
            lines.append("")
            lines.append("# Entries added by HostAliases.")
            for a in aliases:
                if isinstance(a, dict) and a.get("ip"):
                    lines.append(a["ip"] + "\t" + "\t".join(a.get("hostnames") or []))
        ns = md.get("namespace", "default")
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        host_net = bool(spec.get("hostNetwork"))
        if self.opts.dns_ip and (policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_net)):
            # The cluster's DNS server (tinykube.dns) for cluster names; it answers other names from the host's.
            resolv = [f"search {ns}.svc.cluster.local svc.cluster.local cluster.local",
                      f"nameserver {self.opts.dns_ip}", "options ndots:5"]
        else:  # "Default" (or no cluster DNS): the node's own resolver configuration
            resolv = []
            with contextlib.suppress(OSError):
                resolv = [ln for ln in Path("/etc/resolv.conf").read_text().splitlines()
                          if ln.startswith(("nameserver", "search", "options"))]
        dns_config = spec.get("dnsConfig") or {}
        if policy == "None" or dns_config:
            resolv = _apply_dns_config(resolv if policy != "None" else [], dns_config)
        return {"hosts": "\n".join(lines) + "\n", "hostname": host + "\n", "resolv.conf": "\n".join(resolv) + "\n"}

    async def _make_sandbox(self, pod: Obj, tr: PodTrack) -> bool:
        spec = pod.get("spec") or {}
        md = pod["metadata"]
        host_net = bool(spec.get("hostNetwork")) or self.opts.net is None
        if not tr.ip:
            if host_net:
                tr.ip = self.node_ip
            else:
                ip = self.addresses.allocate()
                if ip is None:
                    self.recorder.event(pod, "Warning", "FailedCreatePodSandBox",
                                        "Failed to create pod sandbox: no IP addresses available in range set")
                    return False
                tr.ip = ip
        self.runtime.write_meta(tr.uid, {"namespace": md.get("namespace"), "name": md.get("name"), "uid": tr.uid,
                                         "ip": tr.ip, "hostNetwork": host_net})
        try:
            if not host_net and self.opts.net is not None and not network.netns_exists(self.opts.net, tr.uid):
                await network.setup_pod(self.opts.net, tr.uid, tr.ip)
        except network.NetworkError as ex:
            self.recorder.event(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {ex}")
            return False
        self.runtime.write_etc(tr.uid, self._etc_files(pod, tr.ip))
        try:
            tr.volumes = await asyncio.to_thread(volumes.prepare, pod, self.runtime.pod_dir(tr.uid), self.lookup,
                                    owner_uid=self.opts.host_uid, pod_ip=tr.ip, host_ip=self.node_ip,
                                    node_allocatable=self.allocatable)
        except volumes.VolumeError as ex:
            self.recorder.event(pod, "Warning", getattr(ex, "reason", "FailedMount"), str(ex))
            return False
        tr.sandbox = True
        return True

    # -- containers ----------------------------------------------------------------------------------------------
    def _should_restart(self, pod: Obj, run: Run) -> bool:
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        code = int(run.status.get("exitCode", 0))
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    async def _step(self, pod: Obj, tr: PodTrack, now: float, wake: list[float]) -> None:
        # Data volumes follow their ConfigMaps and Secrets.
        with contextlib.suppress(Exception):
            await asyncio.to_thread(volumes.refresh, pod, self.runtime.pod_dir(tr.uid), self.lookup,
                                    owner_uid=self.opts.host_uid, pod_ip=tr.ip, host_ip=self.node_ip,
                                    node_allocatable=self.allocatable)
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        for ct in tr.containers.values():
            if ct.probes is not None and (ct.last is None or not ct.last.running()):
                self._stop_container_probes(ct)
                ct.ready = False
        for name in tr.init_names:
            ct = tr.containers[name]
            last = ct.last
            if _sidecar(ct.spec):
                # A sidecar (restartPolicy Always on an init container): once started, the next init container
                # may go; it keeps running, and is restarted, beside the app containers.
                if last is None or not last.running():
                    await self._maybe_start(pod, tr, ct, now, wake)
                    last = ct.last
                if last is not None and last.running() and ct.started:
                    continue
                return
            if last is not None and last.running():
                return  # wait for it to finish
            if last is not None and int(last.status.get("exitCode", 1)) == 0:
                continue
            if last is not None and policy == "Never":
                return  # failed for good: the pod fails
            await self._maybe_start(pod, tr, ct, now, wake)
            return
        for name in tr.main_names:
            ct = tr.containers[name]
            last = ct.last
            if last is not None and last.running():
                if now - last.started_at >= RESET_AFTER:
                    ct.backoff_n = 0
                continue
            if last is not None and not self._should_restart(pod, last):
                continue
            await self._maybe_start(pod, tr, ct, now, wake)

    async def _maybe_start(self, pod: Obj, tr: PodTrack, ct: CTrack, now: float, wake: list[float]) -> None:
        last = ct.last
        if last is not None and not ct.restart_at:
            # Just exited: the first restart is immediate, later ones back off (10 s, 20 s ... 300 s).
            delay = 0.0 if ct.backoff_n == 0 else self.opts.timing.backoff(ct.backoff_n - 1)
            ct.backoff_n += 1
            ct.restart_at = now + delay
            if delay > 0:
                ref = f"{pod['metadata']['name']}_{pod['metadata'].get('namespace')}({tr.uid})"
                ct.waiting = (lifecycle.CRASH_LOOP_BACKOFF,
                              f"back-off {lifecycle.go_duration(delay)} restarting failed container={ct.name} pod={ref}")
                self.recorder.event(pod, "Warning", "BackOff",
                                    f"Back-off restarting failed container {ct.name} in pod {ref}")
        if ct.restart_at > now:
            wake.append(ct.restart_at)
            return
        if ct.pull_at > now:
            wake.append(ct.pull_at)
            if ct.waiting[0] == ERR_IMAGE_PULL and now - ct.pull_failed_at >= min(1.0, (ct.pull_at - ct.pull_failed_at) / 2):
                ct.waiting = (IMAGE_PULL_BACKOFF, f'Back-off pulling image "{ct.spec.get("image", "")}"')
                self.recorder.event(pod, "Normal", "BackOff", f'Back-off pulling image "{ct.spec.get("image", "")}"')
                self.recorder.event(pod, "Warning", "Failed", f"Error: {IMAGE_PULL_BACKOFF}")
            elif ct.waiting[0] == ERR_IMAGE_PULL:
                wake.append(ct.pull_failed_at + min(1.0, (ct.pull_at - ct.pull_failed_at) / 2))
            return
        await self._start(pod, tr, ct, now, wake)

    def _pull(self, pod: Obj, ct: CTrack, now: float, wake: list[float]) -> Any:
        image = str(ct.spec.get("image") or "")
        policy = ct.spec.get("imagePullPolicy") or ("Always" if image.endswith(":latest") or ":" not in image.rpartition("/")[2] else "IfNotPresent")
        try:
            found = self.opts.images.resolve(image) if image else None
        except ValueError as ex:  # InvalidReference: the kubelet's InvalidImageName
            msg = f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": {ex}'
            if ct.waiting != ("InvalidImageName", msg):
                self.recorder.event(pod, "Warning", "InspectFailed", msg)
                self.recorder.event(pod, "Warning", "Failed", "Error: InvalidImageName")
            ct.waiting = ("InvalidImageName", msg)
            ct.pull_failed_at = now
            ct.pull_at = now + self.opts.timing.backoff(min(ct.pull_failures, 64))
            ct.pull_failures += 1
            wake.append(ct.pull_at)
            return None
        except Exception as ex:  # an ambiguous short id, an unreadable store entry: the image cannot be used
            log.warning("agent %s: image %r: %s", self.name, image, ex)
            found = None
        if policy == "Never" and found is None:
            ct.waiting = ("ErrImageNeverPull",
                          f'Container image "{image}" is not present with pull policy of Never')
            self.recorder.event(pod, "Warning", "ErrImageNeverPull", ct.waiting[1])
            ct.pull_at = now + 10.0
            wake.append(ct.pull_at)
            return None
        if found is not None and policy != "Always":
            self.recorder.event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
            return found
        self.recorder.event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        if found is None:
            msg = f'Failed to pull image "{image}": {lifecycle.pull_error(image)}'
            self.recorder.event(pod, "Warning", "Failed", msg)
            self.recorder.event(pod, "Warning", "Failed", f"Error: {ERR_IMAGE_PULL}")
            ct.waiting = (ERR_IMAGE_PULL, msg)
            ct.pull_failed_at = now
            ct.pull_at = now + self.opts.timing.backoff(ct.pull_failures)
            ct.pull_failures += 1
            wake.append(now + min(1.0, (ct.pull_at - now) / 2))
            return None
        took = time.time() - now
        d = lifecycle.go_duration(took)
        self.recorder.event(pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {d} ({d} including '
                                                     f"waiting). Image size: {found.size} bytes.")
        return found

    async def _start(self, pod: Obj, tr: PodTrack, ct: CTrack, now: float, wake: list[float]) -> None:
        img = self._pull(pod, ct, now, wake)
        if img is None:
            return
        ct.pull_failures = 0
        ct.pull_at = 0.0
        ct.image_id = f"{lifecycle.image_repo(str(ct.spec.get('image')))}@{img.digest}"
        cfg = img.config or {}
        try:
            env_list = envvars.container_env(pod, ct.spec, list(cfg.get("Env") or []), self.lookup, pod_ip=tr.ip,
                                             host_ip=self.node_ip, node_name=self.name,
                                             node_allocatable=self.allocatable)
            env = dict(env_list)
            # As container runtimes do for images without one: the default PATH.
            env.setdefault("PATH", DEFAULT_PATH)
            argv = envvars.command_line(ct.spec, cfg, env)
            workdir = envvars.working_dir(ct.spec, cfg)
            mounts = volumes.container_mounts(pod, ct.spec, tr.volumes)
        except (envvars.ContainerConfigError, volumes.VolumeError) as ex:
            ct.waiting = (getattr(ex, "reason", CONFIG_ERROR) or CONFIG_ERROR, str(ex))
            self.recorder.event(pod, "Warning", "Failed", f"Error: {ex}")
            wake.append(now + 5.0)
            return
        etc = self.runtime.pod_dir(tr.uid) / "etc"
        hb = sandbox.host_binds([p for p in [sandbox.python_prefix()] if p])
        binds = hb + sandbox.image_binds(Path(img.content), hb)
        binds += [sandbox.Bind(etc / "hosts", "/etc/hosts"), sandbox.Bind(etc / "resolv.conf", "/etc/resolv.conf"),
                  sandbox.Bind(etc / "hostname", "/etc/hostname")]
        binds += [sandbox.Bind(m.source, m.target, m.read_only) for m in mounts]
        sc = ct.spec.get("securityContext") or {}
        psc = (pod.get("spec") or {}).get("securityContext") or {}
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        user = str(cfg.get("User") or "")
        if uid is None and user.split(":")[0].isdigit():
            uid = int(user.split(":")[0])
        gid = sc.get("runAsGroup", psc.get("runAsGroup"))
        # As runc does when neither the image nor the pod sets it: root's home for uid 0, else "/".
        env.setdefault("HOME", "/root" if int(uid or 0) == 0 else "/")
        iso = sandbox.Isolation(hostname=self._hostname(pod), uid=int(uid or 0), gid=int(gid or 0),
                                host_uid=self.opts.host_uid, host_gid=self.opts.host_uid,
                                rootless=os.geteuid() != 0)
        cmd = sandbox.container_argv(argv, binds, workdir=workdir, iso=iso)
        host_net = bool((pod.get("spec") or {}).get("hostNetwork")) or self.opts.net is None
        netns = None if host_net or self.opts.net is None else str(self.opts.net.netns_path(tr.uid))
        attempt = (ct.last.attempt + 1) if ct.last is not None else 0
        groups = cgroups.create(self.tag, tr.uid, f"{ct.name}-{attempt}", ct.spec) if os.geteuid() == 0 else []
        pin = getattr(self.opts.images, "pin", None)
        if pin is not None:
            pin(img, f"{tr.uid}.{ct.name}")
        run = await self.runtime.start(tr.uid, ct.name, attempt, cmd, env, netns, groups)
        ct.runs.append(run)
        ct.restart_at = 0.0
        ct.waiting = ("ContainerCreating", "")
        ct.ready = False
        ct.started = False
        if run.exited:
            ct.waiting = (RUN_ERROR, str(run.status.get("message", "")))
            self.recorder.event(pod, "Warning", "Failed", f"Error: {run.status.get('message', '')}")
            self.queue.add_after(tr.key, 1.0)
            return
        self.recorder.event(pod, "Normal", "Created", f"Created container: {ct.name}")
        self.recorder.event(pod, "Normal", "Started", f"Started container {ct.name}")
        self._watch(run, tr.key)
        post = (ct.spec.get("lifecycle") or {}).get("postStart")
        if isinstance(post, dict):
            self._spawn(self._post_start(pod, tr, ct, run, post))
        if not ct.spec.get("startupProbe"):
            ct.started = True
        if not ct.spec.get("readinessProbe"):
            ports = _declared_tcp_ports(ct.spec)
            if ports and netns is not None:
                self._spawn(self._ready_when_listening(tr, ct, run, Path(netns), ports))
            else:
                ct.ready = ct.started
        self._start_probes(pod, tr, ct, run)

    async def _ready_when_listening(self, tr: PodTrack, ct: CTrack, run: Run, netns: Path, ports: set[int]) -> None:
        """A container without a readiness probe that declares TCP ports is Ready once its pod listens on them
        (read from the kernel, no connection made), so that a rollout never sends traffic to a process that is
        still starting; after LISTEN_WAIT_SECONDS it is Ready anyway, as upstream would have said at once."""
        deadline = time.monotonic() + LISTEN_WAIT_SECONDS
        while run.running() and ct.last is run and time.monotonic() < deadline:
            try:
                if ports <= drain.listening_ports(await asyncio.to_thread(drain.connections, netns)):
                    break
            except OSError:
                break
            await asyncio.sleep(0.01)
        if ct.last is run and run.running() and not ct.spec.get("readinessProbe"):
            ct.ready = ct.started
            self.queue.add(tr.key)

    # -- probes --------------------------------------------------------------------------------------------------
    def _start_probes(self, pod: Obj, tr: PodTrack, ct: CTrack, run: Run) -> None:
        self._stop_container_probes(ct)
        if not any(ct.spec.get(f) for f in ("startupProbe", "livenessProbe", "readinessProbe")):
            return
        ct.probes = probes.ContainerProbes(ct.spec, started_at=run.started_at, pod_ip=tr.ip,
                                           exec_fn=self._exec_fn(run),
                                           on_result=self._probe_result(tr.key, ct.name, run.attempt),
                                           on_event=self._probe_event(tr.key))
        ct.probes.start()

    def _exec_fn(self, run: Run) -> probes.ExecFn:
        async def run_in(argv: list[str], timeout: float) -> tuple[int, str]:
            cmd = self.runtime.exec_command(run, argv)
            for _ in range(50):  # a container just started may not have reached its own process yet
                if cmd is not None or not run.running():
                    break
                await asyncio.sleep(0.02)
                cmd = self.runtime.exec_command(run, argv)
            if cmd is None:
                # An error (the probe's result is unknown), not a failure: nothing ran.
                raise RuntimeError(f"container {run.name} is not running")
            proc = await asyncio.create_subprocess_exec(*cmd[0], env=cmd[1], stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout)
            except (TimeoutError, asyncio.CancelledError):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise
            return proc.returncode or 0, out.decode(errors="replace")

        return run_in

    def _probe_event(self, key: str) -> Callable[[str, str, str], None]:
        def tell(type_: str, reason: str, message: str) -> None:
            pod = self._pods.get_key(key)
            if pod is not None:
                self.recorder.event(pod, type_, reason, message)

        return tell

    def _probe_result(self, key: str, name: str, attempt: int) -> Callable[[probes.ProbeKind, bool], None]:
        def result(kind: probes.ProbeKind, ok: bool) -> None:
            tr = self.tracks.get(key)
            ct = tr.containers.get(name) if tr is not None else None
            if tr is None or ct is None or ct.last is None or ct.last.attempt != attempt:
                return
            if ct.probes is not None:
                ct.started = ct.probes.started
                ct.ready = ct.probes.ready
            if not ok and kind in ("liveness", "startup"):
                self._kill_for_probe(key, ct, kind)
            self.queue.add(key)

        return result

    def _kill_for_probe(self, key: str, ct: CTrack, kind: probes.ProbeKind) -> None:
        run = ct.last
        pod = self._pods.get_key(key)
        tr = self.tracks.get(key)
        if run is None or pod is None or tr is None or not run.running():
            return
        self.recorder.event(pod, "Normal", "Killing", probes.kill_message(kind, ct.name))
        ct.ready = False
        self._spawn(self._graceful_stop(pod, tr, ct, run, _grace(pod)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._stops.add(task)
        task.add_done_callback(self._stops.discard)

    # -- lifecycle hooks and stopping ----------------------------------------------------------------------------
    async def _run_hook(self, pod: Obj, tr: PodTrack, ct: CTrack, run: Run, hook: dict[str, Any],
                        timeout: float) -> str | None:
        """Run a postStart/preStop handler (exec, httpGet, sleep); its error message, or None when it worked."""
        if isinstance(hook.get("exec"), dict):
            argv = [str(a) for a in hook["exec"].get("command") or []]
            try:
                code, out = await asyncio.wait_for(self._exec_fn(run)(argv, timeout), timeout)
            except (TimeoutError, RuntimeError) as ex:
                return f"command '{' '.join(argv)}' failed: {ex or 'timed out'}"
            return None if code == 0 else f"command '{' '.join(argv)}' exited with {code}: {out}"
        if isinstance(hook.get("httpGet"), dict):
            h = hook["httpGet"]
            try:
                port = probes.resolve_port(h.get("port"), ct.spec)
            except ValueError as ex:
                return str(ex)
            scheme = str(h.get("scheme") or "HTTP").lower()
            host = str(h.get("host") or tr.ip)
            path = str(h.get("path") or "/")
            headers = [(str(x.get("name", "")), str(x.get("value", ""))) for x in h.get("httpHeaders") or []
                       if isinstance(x, dict)]
            outcome = await probes.http_get(f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}",
                                            headers, timeout)
            return None if outcome.ok else outcome.message
        if isinstance(hook.get("sleep"), dict):
            await asyncio.sleep(min(float(hook["sleep"].get("seconds") or 0), timeout))
            return None
        return "no handler in the lifecycle hook"

    async def _stop_pod(self, pod: Obj, tr: PodTrack, running: list[tuple[CTrack, Run]], grace: float) -> None:
        """A deleted pod's end: out of the data path, its connections drained, then each container's graceful stop,
        all within ``grace`` seconds."""
        deadline = time.monotonic() + grace
        await self._unroute(pod, tr, grace)
        left = max(0.0, deadline - time.monotonic())
        await asyncio.gather(*(self._graceful_stop(pod, tr, ct, run, left) for ct, run in running))

    async def _unroute(self, pod: Obj, tr: PodTrack, grace: float) -> None:
        """Zero-drop termination, before preStop and SIGTERM: wait until the node's data path no longer sends new
        connections to the pod (its endpoint went not-ready when the deletion started), then until the requests
        in flight on established connections are answered (:mod:`.drain`). Each wait is bounded by half the
        grace period and 5 s; a pod with no grace period, or on the host network, skips both."""
        if grace <= 0 or not tr.ip or bool((pod.get("spec") or {}).get("hostNetwork")):
            return
        budget = min(5.0, grace / 2)
        if self.opts.data_path is not None and not await self.opts.data_path.wait_unrouted(tr.ip, budget):
            log.info("pod %s: still in the data path after %.1fs (no other endpoint?), stopping anyway", tr.key,
                     budget)
        if self.opts.net is not None:
            result = await drain.drain(self.opts.net.netns_path(tr.uid), budget)
            if result.timed_out:
                log.info("pod %s: connections still busy after %.1fs, stopping anyway", tr.key, budget)
            elif result.error:
                log.warning("pod %s: could not read its connections (%s), stopping without draining", tr.key,
                            result.error)

    async def _graceful_stop(self, pod: Obj, tr: PodTrack, ct: CTrack, run: Run, grace: float) -> None:
        """preStop, then SIGTERM to the container's first process, then SIGKILL when ``grace`` seconds are up."""
        deadline = time.monotonic() + grace
        pre = (ct.spec.get("lifecycle") or {}).get("preStop")
        if isinstance(pre, dict) and grace > 0 and run.running():
            err = await self._run_hook(pod, tr, ct, run, pre, grace)
            if err:
                self.recorder.event(pod, "Warning", "FailedPreStopHook",
                                    f"PreStopHook failed: {err}")
        self.runtime.signal(run, signal.SIGTERM)
        # A preStop that used the whole grace period leaves the process a short last chance, as the kubelet's 2 s.
        deadline = max(deadline, time.monotonic() + (2.0 if pre else 0.0))
        while run.running() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if run.running():
            self.runtime.signal(run, signal.SIGKILL)

    async def _post_start(self, pod: Obj, tr: PodTrack, ct: CTrack, run: Run, hook: dict[str, Any]) -> None:
        err = await self._run_hook(pod, tr, ct, run, hook, float(_grace(pod) or 30))
        if err and run.running():
            self.recorder.event(pod, "Warning", "FailedPostStartHook", f"PostStartHook failed: {err}")
            self.recorder.event(pod, "Normal", "Killing",
                                f"FailedPostStartHook: container {ct.name} failed its post-start hook, will be "
                                "restarted")
            await self._graceful_stop(pod, tr, ct, run, _grace(pod))

    def _stop_container_probes(self, ct: CTrack) -> None:
        if ct.probes is not None:
            asyncio.get_running_loop().create_task(ct.probes.stop())
            ct.probes = None

    def _stop_probes(self, tr: PodTrack) -> None:
        for ct in tr.containers.values():
            self._stop_container_probes(ct)

    # -- status --------------------------------------------------------------------------------------------------
    def _cstate(self, ct: CTrack, init_done: bool) -> CState:
        last = ct.last
        prev = ct.runs[-2] if len(ct.runs) > 1 else None

        def terminated(r: Run) -> CState:
            code = int(r.status.get("exitCode", 0))
            reason = "OOMKilled" if r.status.get("oomKilled") else ("Completed" if code == 0 else "Error")
            return CState("terminated", reason=reason, instance=r.attempt, restarts=r.attempt,
                          started_at=r.started_at, finished_at=float(r.status.get("finishedAt") or r.started_at),
                          exit_code=code)

        if last is None:
            reason, msg = ct.waiting
            if ct.role == lifecycle.MAIN and not init_done and reason == "ContainerCreating":
                reason = lifecycle.POD_INITIALIZING
            return CState("waiting", reason=reason, message=msg)
        if last.running():
            return CState("running", instance=last.attempt, restarts=last.attempt, started_at=last.started_at,
                          ready=ct.ready, started=ct.started, last=terminated(prev) if prev else None)
        if ct.restart_at or ct.waiting[0] in (ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF, CONFIG_ERROR, RUN_ERROR):
            reason, msg = ct.waiting if ct.waiting[0] != "ContainerCreating" else (lifecycle.CRASH_LOOP_BACKOFF, "")
            return CState("waiting", reason=reason, message=msg, restarts=last.attempt, last=terminated(last))
        st = terminated(last)
        return CState("terminated", reason=st.reason, instance=st.instance, restarts=st.restarts,
                      started_at=st.started_at, finished_at=st.finished_at, exit_code=st.exit_code,
                      last=terminated(prev) if prev else None)

    def _plan(self, pod: Obj, tr: PodTrack) -> Plan:
        spec = pod.get("spec") or {}

        def cplan(name: str, role: str) -> ContainerPlan:
            ct = tr.containers[name]
            mounts = tuple((m.get("name", ""), m.get("mountPath", ""), bool(m.get("readOnly")))
                           for m in ct.spec.get("volumeMounts") or [] if isinstance(m, dict))
            return ContainerPlan(name, str(ct.spec.get("image") or ""), role, mounts=mounts, image_id=ct.image_id)

        gates = tuple(g.get("conditionType", "") for g in spec.get("readinessGates") or [] if isinstance(g, dict))
        return Plan(tr.uid, pod["metadata"]["name"], pod["metadata"].get("namespace", ""),
                    tuple(cplan(n, lifecycle.MAIN) for n in tr.main_names),
                    tuple(cplan(n, lifecycle.SIDECAR if _sidecar(tr.containers[n].spec) else lifecycle.INIT)
                          for n in tr.init_names),
                    restart_policy=spec.get("restartPolicy") or "Always", readiness_gates=gates, id_scheme=SCHEME)

    def _snapshot(self, plan: Plan, tr: PodTrack) -> Snapshot:
        init = tuple(self._cstate(tr.containers[n], True) for n in tr.init_names)
        init_done = lifecycle.initialized(plan, Snapshot(init, (), None))[0]
        main = tuple(self._cstate(tr.containers[n], init_done) for n in tr.main_names)
        return Snapshot(init, main, None)

    async def _write_status(self, pod: Obj, tr: PodTrack, wake: list[float]) -> None:
        plan = self._plan(pod, tr)
        snap = self._snapshot(plan, tr)
        status = lifecycle.render_status(pod, plan, snap, 0.0, self.node_ip, tr.ip or "", time.time())
        status["startTime"] = (pod.get("status") or {}).get("startTime") or now_rfc3339(tr.origin)
        if not tr.ip:
            for k in ("podIP", "podIPs"):
                status.pop(k, None)
        old = pod.get("status") or {}
        if old.get("phase") in ("Succeeded", "Failed"):
            status["phase"] = old["phase"]  # terminal phases never change
        if status == old:
            return
        ns, name = split_key(tr.key)
        md = pod["metadata"]
        body = {"metadata": {"name": name, "namespace": ns, "resourceVersion": md.get("resourceVersion")},
                "status": status}
        try:
            tr.last = await self.client.update(PODS, ns, body, subresource="status")
        except errors.ApiError as ex:
            if ex.code == 404:
                return
            if ex.code != 409:
                raise
            tr.last = await self.client.get(PODS, ns, name)
            self.queue.add(tr.key)

    # -- termination ---------------------------------------------------------------------------------------------
    def _running(self, tr: PodTrack) -> list[tuple[CTrack, Run]]:
        out = []
        for ct in tr.containers.values():
            last = ct.last
            if last is not None and last.running():
                out.append((ct, last))
        return out

    async def _terminate(self, pod: Obj, tr: PodTrack) -> None:
        if tr.deleted:
            return
        now = time.time()
        running = self._running(tr)
        if tr.kill_at is None:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            grace = grace if isinstance(grace, int) and grace >= 0 else 30
            tr.kill_at = now + grace
            self._stop_probes(tr)
            for ct, _run in running:
                self.recorder.event(pod, "Normal", "Killing", f"Stopping container {ct.name}")
            if running:
                self._spawn(self._stop_pod(pod, tr, running, float(grace)))
        if running:
            # Each container's stop wakes this sync when it ends (pidfd); this is a safety net.
            self.queue.add_after(tr.key, max(0.5, min(5.0, tr.kill_at - now + 2.5)))
            return
        await self._teardown(tr, kill=False)
        ns, name = split_key(tr.key)
        try:
            await self.client.delete(PODS, ns, name, grace_period=0, preconditions={"uid": tr.uid})
        except errors.ApiError as ex:
            if ex.code not in (404, 409):
                raise
        tr.deleted = True

    async def _teardown(self, tr: PodTrack, kill: bool) -> None:
        self._stop_probes(tr)
        await self._teardown_uid(tr.uid, kill=kill)
        if tr.ip and tr.ip != self.node_ip:
            self.addresses.release(tr.ip)

    async def _teardown_uid(self, uid: str, kill: bool) -> None:
        """Stop whatever still runs of pod ``uid``, then remove its network, volumes and directory."""
        base = self.runtime.pod_dir(uid) / "containers"
        runs: list[Run] = []
        with contextlib.suppress(OSError):
            for name in os.listdir(base):
                runs += [r for r in self.runtime.runs(uid, name) if r.running()]
        for r in runs:
            self.runtime.signal(r, signal.SIGKILL)
        for _ in range(200):
            if not any(r.shim_alive() for r in runs):
                break
            await asyncio.sleep(0.01)
        if self.opts.net is not None:
            meta = self.runtime.meta(uid)
            ip = "" if meta.get("hostNetwork") else str(meta.get("ip") or "")
            await network.teardown_pod(self.opts.net, uid, ip)
        await asyncio.to_thread(volumes.cleanup, self.runtime.pod_dir(uid))
        cgroups.remove_pod(self.tag, uid)
        self._unpin(uid)
        self.runtime.remove_pod_dir(uid)

    # -- the kubelet API (tinykube.agent.server's Runtime) ----------------------------------------------------------
    def _container(self, namespace: str, pod: str, container: str) -> tuple[PodTrack, CTrack]:
        tr = self.tracks.get(f"{namespace}/{pod}")
        if tr is None:
            raise kubelet_api.StreamError(404, f'pod "{pod}" not found on node "{self.name}"')
        ct = tr.containers.get(container)
        if ct is None:
            raise kubelet_api.StreamError(400, f'container "{container}" in pod "{pod}" is not valid')
        return tr, ct

    async def log_files(self, namespace: str, pod: str, container: str, previous: bool) -> kubelet_api.LogSource:
        tr, ct = self._container(namespace, pod, container)
        if previous:
            if len(ct.runs) < 2 and not (ct.last is not None and not ct.last.running() and ct.restart_at):
                raise kubelet_api.StreamError(
                    400, f'previous terminated container "{container}" in pod "{pod}" not found')
            run = ct.runs[-2] if len(ct.runs) >= 2 and (ct.runs[-1].running() or not ct.restart_at) else ct.runs[-1]
        else:
            run_or_none = ct.last
            if run_or_none is None:
                raise kubelet_api.StreamError(
                    400, f'container "{container}" in pod "{pod}" is waiting to start: {ct.waiting[0]}')
            run = run_or_none
        return kubelet_api.LogSource(str(self.runtime.log_path(tr.uid, ct.name, run.attempt)), run.running)

    async def exec_command(self, namespace: str, pod: str, container: str, argv: list[str]) -> kubelet_api.ExecSpec:
        _tr, ct = self._container(namespace, pod, container)
        run = ct.last
        for _ in range(50):
            if run is None or not run.running():
                break
            cmd = self.runtime.exec_command(run, argv)
            if cmd is not None:
                return kubelet_api.ExecSpec(cmd[0], cmd[1])
            await asyncio.sleep(0.02)  # just started: not yet at its own process
        raise kubelet_api.StreamError(400, f'container "{container}" in pod "{pod}" is not running')

    async def port_forward_connect(self, namespace: str, pod: str,
                                   port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        tr = self.tracks.get(f"{namespace}/{pod}")
        if tr is None or not tr.sandbox:
            raise kubelet_api.StreamError(404, f'pod "{pod}" not found on node "{self.name}"')
        if self.opts.net is not None and network.netns_exists(self.opts.net, tr.uid):
            # As the kubelet: connect to localhost inside the pod's network namespace (apps bound to 127.0.0.1
            # are reachable too).
            sock = await asyncio.to_thread(network.socket_in, self.opts.net.netns_path(tr.uid))
            try:
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            except OSError:
                sock.close()
                raise
            return await asyncio.open_connection(sock=sock)
        return await asyncio.open_connection(tr.ip or "127.0.0.1", port)

    def _unpin(self, uid: str) -> None:
        unpin = getattr(self.opts.images, "unpin", None)
        pins = getattr(self.opts.images, "pins", None)
        if unpin is None or pins is None:
            return
        with contextlib.suppress(Exception):
            for img in self.opts.images.list():
                for owner in pins(img):
                    if owner.startswith(uid + "."):
                        unpin(img, owner)


# -- assembly of the local node ----------------------------------------------------------------------------------
NODE_FILE = "node.json"


def _dns_label(text: str) -> str:
    out = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text.lower()).strip("-.")
    return out[:63] or "tinykube-node"


def _declared_tcp_ports(container: dict[str, Any]) -> set[int]:
    return {int(p["containerPort"]) for p in container.get("ports") or []
            if isinstance(p, dict) and isinstance(p.get("containerPort"), int) and (p.get("protocol") or "TCP") == "TCP"}


def local_node_settings(data_dir: Path) -> dict[str, Any]:
    """This data dir's local node: its name and network, chosen at first start and kept (``agent/node.json``)."""
    import json
    import socket

    path = data_dir / "agent" / NODE_FILE
    with contextlib.suppress(OSError, ValueError):
        saved = json.loads(path.read_text())
        if isinstance(saved, dict) and saved.get("name"):
            if saved.get("clusterCIDR") and not saved.get("serviceCIDR"):
                saved["serviceCIDR"] = network.service_range_for(saved["clusterCIDR"])
            return saved
    settings: dict[str, Any] = {"name": _dns_label(socket.gethostname()), "tag": network.cluster_tag(data_dir)}
    if os.geteuid() == 0:
        with network.host_lock():
            cidr, services = network.choose_cluster_ranges()
            settings["clusterCIDR"] = cidr
            settings["nodeCIDR"] = cidr.replace(".0.0/16", ".0.0/24")
            settings["serviceCIDR"] = services
            network.claim(cidr, services)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings) + "\n")
    return settings


def local_agent(client: Client, informers: InformerFactory, data_dir: Path, kubelet_token: str = "",
                certfile: str = "", keyfile: str = "") -> NodeAgent:
    """The agent of this machine's node: root mode (pod networks on the node bridge, kubelet API on the node IP
    at 10250) when run as root, host-network mode otherwise (kubelet API on 127.0.0.1, any free port)."""
    from .images import ImageStore

    s = local_node_settings(data_dir)
    net = None
    if os.geteuid() == 0 and s.get("clusterCIDR"):
        net = network.NodeNetwork(s["tag"], s["clusterCIDR"], s["nodeCIDR"], s.get("serviceCIDR", ""))
    else:
        log.warning("not running as root: the local node runs pods in host-network mode (see docs/agent.md)")
    timing = Timing(backoff_base=float(os.environ.get("TINYKUBE_BACKOFF_BASE", "10")),
                    backoff_max=float(os.environ.get("TINYKUBE_BACKOFF_MAX", "300")))
    opts = AgentOptions(name=s["name"], data_dir=data_dir, net=net, images=ImageStore.for_data_dir(data_dir),
                        kubelet_port=10250 if net is not None else 0, kubelet_token=kubelet_token,
                        certfile=certfile, keyfile=keyfile, timing=timing)
    return NodeAgent(client, informers, opts)


def local_status(data_dir: Path) -> dict[str, Any] | None:
    """What this data dir's local node holds on this machine: its name, mode, pods and running containers."""
    import json

    root = data_dir / "agent"
    try:
        s = json.loads((root / NODE_FILE).read_text())
    except (OSError, ValueError):
        return None
    rt_root = root / str(s.get("name"))
    pods = running = 0
    if rt_root.exists():
        rt = Runtime(rt_root)
        for uid in rt.pod_uids():
            pods += 1
            with contextlib.suppress(OSError):
                for name in os.listdir(rt.pod_dir(uid) / "containers"):
                    runs = rt.runs(uid, name)
                    if runs and runs[-1].shim_alive():
                        running += 1
    return {"name": s.get("name"), "mode": "root" if s.get("clusterCIDR") else "host network",
            "podCIDR": s.get("nodeCIDR", ""), "pods": pods, "running": running}


def teardown_local(data_dir: Path) -> list[str]:
    """Stop every pod of this data dir's local node and remove its network (``tinykube down``). Returns notes."""
    import json
    import shutil

    notes: list[str] = []
    root = data_dir / "agent"
    try:
        s = json.loads((root / NODE_FILE).read_text())
    except (OSError, ValueError):
        return notes
    rt_root = root / str(s.get("name"))
    rt = Runtime(rt_root) if rt_root.exists() else None
    if rt is not None:
        killed = 0
        for uid in rt.pod_uids():
            base = rt.pod_dir(uid) / "containers"
            with contextlib.suppress(OSError):
                for name in os.listdir(base):
                    for r in rt.runs(uid, name):
                        if r.shim_alive():
                            Runtime.signal(r, signal.SIGKILL)
                            killed += 1
                            for _ in range(300):
                                if not r.shim_alive():
                                    break
                                time.sleep(0.01)
            with contextlib.suppress(Exception):
                volumes.cleanup(rt.pod_dir(uid))
        if killed:
            notes.append(f"stopped {killed} containers")
        with contextlib.suppress(Exception):
            from .images import ImageStore

            store = ImageStore.for_data_dir(data_dir)
            uids = tuple(u + "." for u in rt.pod_uids())
            for img in store.list():
                for owner in store.pins(img):
                    if owner.startswith(uids):
                        store.unpin(img, owner)
        shutil.rmtree(rt.pods_dir, ignore_errors=True)
    if os.geteuid() == 0 and s.get("tag"):
        network.teardown_node(str(s["tag"]), s.get("clusterCIDR"),
                              s.get("serviceCIDR") or (network.service_range_for(s["clusterCIDR"])
                                                       if s.get("clusterCIDR") else None))
        cgroups.remove_cluster(str(s["tag"]))
    return notes
