"""Assembly of one cluster's control plane in one asyncio process.

``run_server`` opens the store in the data dir, bootstraps the built-in objects,
starts the in-process controllers over the local client, serves the API over
TLS with uvicorn, and writes what the CLI and users need to find it:

* ``DIR/server.json`` — pid, API URL, port, store path, start time (written
  once the socket listens, removed on clean exit);
* ``DIR/kubeconfig`` — context ``tinykube`` with the cluster's CA and token.

SIGTERM/SIGINT stop everything cleanly: the HTTP server stops accepting,
watches end, controllers stop, the store checkpoints and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api.resources import SYSTEM_NAMESPACES
from ..apiserver import allocators
from ..apiserver.http import ApiServer
from ..apiserver.registry import Registry
from ..apiserver.streams import KubeletConfig, ensure_kubelet_token, websocket_protocol
from ..client.local import LocalClient
from ..fileutil import write_private
from ..netutil import listen_socket
from ..store.crypto import Encryptor
from ..store.sqlite import SqliteBackend
from ..store.store import Store
from . import pki
from .manager import ControllerManager, ManagerOptions
from .state import STATE_FILE

log = logging.getLogger("tinykube.server")

STORE_FILE = "state.db"
KEY_FILE = "secrets.key"
KUBECONFIG = "kubeconfig"
KUBELET_TOKEN = "kubelet-token"  # the bearer token node agents accept from the API server


@dataclass
class Config:
    data_dir: Path
    port: int = 6443
    bind: str = "127.0.0.1"
    compact_interval: float = 300.0
    simulated_nodes: int = 0
    nodes: int = 0


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the API socket: the requested port, or a free one when it is 0 or (for the default) taken."""
    return listen_socket(host, port, 2048, fallback_port=6443)


def open_store(data_dir: Path) -> Store:
    backend = SqliteBackend(data_dir / STORE_FILE)
    return Store(backend, Encryptor.from_file(data_dir / KEY_FILE))


async def bootstrap(registry: Registry, api_port: int) -> None:
    for ns in SYSTEM_NAMESPACES:
        await registry.ensure("namespaces", "", None, {"metadata": {"name": ns}})
    await registry.ensure("services", "", "default", {
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": registry.services.first_ip, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]},
    })


def _service_cidr(cfg: Config) -> str:
    """The cluster's service range: chosen with the local node's pod range (one pair per cluster on a machine,
    so data paths side by side never share virtual IPs); the default one without a real node."""
    if cfg.nodes > 0 and os.geteuid() == 0:
        from ..agent.agent import local_node_settings

        chosen = local_node_settings(cfg.data_dir).get("serviceCIDR")
        if chosen:
            return str(chosen)
    return str(allocators.SERVICE_CIDR)


def write_state(data_dir: Path, info: dict[str, Any]) -> None:
    write_private(data_dir / STATE_FILE, json.dumps(info))


async def _compactor(store: Store, interval: float) -> None:
    """Every interval, forget history older than the revision current one interval ago (as kube-apiserver does)."""
    prev = store.rev
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(Exception):
            store.compact(prev)
        prev = store.rev


def _status_http_protocol() -> type:
    """uvicorn's httptools protocol, except that a request its parser rejects (unknown method, a URL over
    64 KiB, a malformed request line) is answered with a Kubernetes ``Status``, as every other 4xx is."""
    import orjson
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from ..api import errors

    class StatusHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            body = orjson.dumps(errors.bad_request(
                f"malformed HTTP request (bad request line, unsupported method or URL over 64 KiB): {msg}").status())
            out = [b"HTTP/1.1 400 Bad Request\r\n"]
            for name, value in self.server_state.default_headers:
                out += [name, b": ", value, b"\r\n"]
            out += [b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(),
                    b"\r\nconnection: close\r\n\r\n", body]
            self.transport.write(b"".join(out))
            self.transport.close()

    return StatusHttpToolsProtocol


async def run_server(cfg: Config, ready_fd: int | None = None, on_ready: Any = None) -> None:
    import uvicorn

    t0 = time.monotonic()
    data_dir = cfg.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    sock = bind_socket(cfg.bind, cfg.port)
    port = sock.getsockname()[1]
    host_for_url = cfg.bind if cfg.bind not in ("0.0.0.0", "::") else "127.0.0.1"
    hosts = [cfg.bind] if cfg.bind not in ("0.0.0.0", "::", "127.0.0.1", "localhost") else []
    if cfg.bind in ("0.0.0.0", "::"):
        with contextlib.suppress(OSError):
            hosts.append(socket.gethostbyname(socket.gethostname()))
    service_cidr = _service_cidr(cfg)
    # The kubernetes service's address is a name of the API server (pods reach it at that address).
    p = pki.ensure_pki(data_dir, [*hosts, allocators.ServiceRange(service_cidr).first_ip])
    store = open_store(data_dir)
    registry = Registry(store, service_cidr)
    await bootstrap(registry, port)
    url_host = f"[{host_for_url}]" if ":" in host_for_url else host_for_url
    url = f"https://{url_host}:{port}"
    # Node agents serve their kubelet API over TLS with a certificate of the cluster CA (the local one: server.crt).
    kubelet = KubeletConfig(token=ensure_kubelet_token(data_dir / KUBELET_TOKEN), ca_pem=p.ca_pem)
    app = ApiServer(registry, p.token, f"{host_for_url}:{port}", kubelet=kubelet)
    client = LocalClient(registry, "tinykube-controller-manager")
    manager = ControllerManager(client, ManagerOptions(simulated_nodes=cfg.simulated_nodes, ca_pem=p.ca_pem.decode(),
                                                     nodes=cfg.nodes, data_dir=data_dir, kubelet_token=kubelet.token,
                                                     certfile=str(p.cert_path), keyfile=str(p.key_path),
                                                     service_cidr=service_cidr))
    compactor = asyncio.create_task(_compactor(store, cfg.compact_interval))

    config = uvicorn.Config(app, ssl_certfile=str(p.cert_path), ssl_keyfile=str(p.key_path), lifespan="off",
                            log_level="warning", access_log=False, ws=websocket_protocol(), ws_per_message_deflate=False,
                            http=_status_http_protocol(), loop="none",
                            timeout_keep_alive=120, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    # Our own handlers (below) stop the server; uvicorn must not capture and re-raise the signals.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    from ..cli.kubeconfig import write_kubeconfig

    write_kubeconfig(data_dir / KUBECONFIG, url, p.ca_pem, p.token)
    serve = asyncio.create_task(server.serve(sockets=[sock]))
    await manager.start()
    while not server.started and not serve.done():
        await asyncio.sleep(0.002)
    if serve.done():
        serve.result()
    write_state(data_dir, {"pid": os.getpid(), "url": url, "port": port, "bind": cfg.bind,
                           "store": str(data_dir / STORE_FILE), "started": time.time(),
                           "startup_seconds": round(time.monotonic() - t0, 4),
                           "store_load_seconds": round(store.load_seconds, 4)})
    if ready_fd is not None:
        with contextlib.suppress(OSError):
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
    if on_ready is not None:
        on_ready(url)
    log.info("tinykube API serving at %s (started in %.3fs)", url, time.monotonic() - t0)
    # Warm the OpenAPI documents in the background: kubectl asks for them on first use.
    loop.run_in_executor(None, _warm_openapi)
    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait([serve, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await manager.stop()
    # End open watches so uvicorn's graceful shutdown does not wait for them.
    for ws in list(store._watchers.values()):
        for w in list(ws):
            w.close()
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(serve, 5)
    compactor.cancel()
    store.close()
    with contextlib.suppress(OSError):
        (data_dir / STATE_FILE).unlink()


def _warm_openapi() -> None:
    with contextlib.suppress(Exception):
        from ..api import openapi

        openapi.openapi_v3_index()
        openapi.openapi_v3_doc("apis/apps/v1")
        openapi.openapi_v3_doc("api/v1")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the server process (``python -m tinykube.server``)."""
    import argparse

    ap = argparse.ArgumentParser(prog="tinykube-server")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--port", type=int, default=6443)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--ready-fd", type=int, default=None)
    ap.add_argument("--simulated-nodes", type=int, default=0)
    ap.add_argument("--nodes", type=int, default=0)
    ap.add_argument("--compact-interval", type=float,
                    default=float(os.environ.get("TINYKUBE_COMPACT_INTERVAL", "300")))
    a = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("TINYKUBE_LOG", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = Config(Path(a.data_dir).resolve(), a.port, a.bind, a.compact_interval, a.simulated_nodes, a.nodes)
    try:
        import uvloop

        uvloop.run(run_server(cfg, a.ready_fd))
    except ImportError:
        asyncio.run(run_server(cfg, a.ready_fd))

