"""The ``tinykube`` command line: ``up``, ``down``, ``status``.

Every verb takes ``--data-dir DIR`` (default ``$TINYKUBE_HOME``, else
``~/.tinykube``); clusters with different data dirs run side by side.

``up`` starts the control-plane process detached (its own session, output in
``DIR/server.log``) and returns when the server reports, over a pipe, that its
API socket is serving — no polling. ``--foreground`` runs it in this process
instead and stops cleanly on SIGTERM/SIGINT. ``down`` stops the process it
started by the PID recorded in ``DIR/server.json``, after checking that PID is
still our server for this data dir.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..api.resources import RESOURCES


def default_data_dir() -> Path:
    env = os.environ.get("TINYKUBE_HOME")
    return Path(env) if env else Path.home() / ".tinykube"


def _data_dir(a: argparse.Namespace) -> Path:
    return Path(a.data_dir).expanduser().resolve() if a.data_dir else default_data_dir().expanduser().resolve()


def _our_server(pid: int, data_dir: Path) -> bool:
    """Is pid a tinykube server for this data dir (not a recycled PID)? It must hold this data dir's store open."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if b"tinykube" not in cmd:
        return False
    store = str(data_dir / "state.db")
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == store:
                    return True
    except OSError:
        # Not allowed to look (another user's process): fall back to the command line.
        return str(data_dir).encode() in cmd
    return False


def running_pid(data_dir: Path) -> tuple[int, dict[str, object]] | None:
    from ..server.state import pid_alive, read_state

    st = read_state(data_dir)
    if not st:
        return None
    pid = int(str(st.get("pid", 0)))
    if pid and pid_alive(pid) and _our_server(pid, data_dir):
        return pid, st
    return None


def _merge_kubeconfig(data_dir: Path) -> Path:
    from .kubeconfig import default_kubeconfig_path, merge_into

    target = default_kubeconfig_path()
    merge_into(target, data_dir / "kubeconfig", "tinykube", set_current=True)
    return target


CLUSTER_FILE = "cluster.json"


def cluster_settings(data_dir: Path, a: argparse.Namespace, save: bool = True) -> dict[str, int]:
    """Node counts for this data dir: flags given now win and are saved; otherwise what the first ``up`` chose."""
    path = data_dir / CLUSTER_FILE
    saved: dict[str, int] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
            saved = {k: int(v) for k, v in loaded.items() if k in ("nodes", "simulated_nodes")}
        except (OSError, ValueError, TypeError, AttributeError):
            saved = {}
    settings = {"nodes": 1, "simulated_nodes": 0, **saved}
    if a.nodes is not None:
        settings["nodes"] = a.nodes
    if a.simulated_nodes is not None:
        settings["simulated_nodes"] = a.simulated_nodes
    if save and settings != saved:
        path.write_text(json.dumps(settings) + "\n")
    return settings


def cluster_settings_saved(data_dir: Path) -> dict[str, int]:
    return cluster_settings(data_dir, argparse.Namespace(nodes=None, simulated_nodes=None), save=False)


def cmd_up(a: argparse.Namespace) -> int:
    data_dir = _data_dir(a)
    for flag in ("nodes", "simulated_nodes"):
        v = getattr(a, flag)
        if v is not None and v < 0:
            print(f"tinykube: --{flag.replace('_', '-')} must be 0 or more", file=sys.stderr)
            return 2
    t0 = time.monotonic()
    running = running_pid(data_dir)
    if running:
        pid, st = running
        print(f"tinykube is already running at {st.get('url')} (pid {pid}, data dir {data_dir})")
        return 0
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = cluster_settings(data_dir, a)
    if a.foreground:
        import asyncio
        import logging

        from ..server.cluster import Config, run_server

        logging.basicConfig(level=os.environ.get("TINYKUBE_LOG", "INFO").upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")

        def ready(url: str) -> None:
            if not a.no_kubeconfig_merge:
                _merge_kubeconfig(data_dir)
            print(f"tinykube is up at {url} in {time.monotonic() - t0:.2f}s (data dir {data_dir}); Ctrl-C stops it",
                  flush=True)

        cfg = Config(data_dir, a.port, a.bind, float(os.environ.get("TINYKUBE_COMPACT_INTERVAL", "300")),
                     settings["simulated_nodes"], settings["nodes"])
        try:
            import uvloop

            uvloop.run(run_server(cfg, None, ready))
        except ImportError:
            asyncio.run(run_server(cfg, None, ready))
        return 0
    r, w = os.pipe()
    log_path = data_dir / "server.log"
    logf = open(log_path, "ab")
    cmd = [sys.executable, "-m", "tinykube.server", "--data-dir", str(data_dir), "--port", str(a.port),
           "--bind", a.bind, "--ready-fd", str(w), "--simulated-nodes", str(settings["simulated_nodes"]),
           "--nodes", str(settings["nodes"])]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, pass_fds=(w,),
                            start_new_session=True, close_fds=True)
    os.close(w)
    logf.close()
    got = b""
    with os.fdopen(r, "rb") as pipe:
        got = pipe.read(6)
    if got != b"ready\n":
        proc.wait(timeout=10) if proc.poll() is None else None
        tail = log_path.read_text(errors="replace").splitlines()[-15:] if log_path.exists() else []
        print("tinykube: the server failed to start:\n  " + "\n  ".join(tail), file=sys.stderr)
        return 1
    from ..server.state import read_state

    st = read_state(data_dir) or {}
    merged = ""
    if not a.no_kubeconfig_merge:
        merged = f"; context 'tinykube' merged into {_merge_kubeconfig(data_dir)}"
    print(f"tinykube is up at {st.get('url')} in {time.monotonic() - t0:.2f}s (pid {proc.pid}, data dir {data_dir})")
    print(f"kubeconfig: {data_dir / 'kubeconfig'}{merged}")
    return 0


def cmd_down(a: argparse.Namespace) -> int:
    data_dir = _data_dir(a)
    running = running_pid(data_dir)
    if running:
        pid, _ = running
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        from ..server.state import pid_alive

        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.02)
        with contextlib.suppress(OSError):
            (data_dir / "server.json").unlink()
        print(f"tinykube stopped (pid {pid}, data dir {data_dir})")
    else:
        with contextlib.suppress(OSError):
            (data_dir / "server.json").unlink()
        print(f"tinykube is not running (data dir {data_dir})")
    from ..agent.agent import teardown_local

    for note in teardown_local(data_dir):
        print(note)
    if os.geteuid() == 0 and (data_dir / "agent").exists():
        from ..agent.network import cluster_tag
        from ..proxy.proxier import delete_table_sync

        delete_table_sync(cluster_tag(data_dir))  # the data path of a server that did not stop cleanly
    if a.purge:
        _unmerge_kubeconfig(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"removed {data_dir}")
    return 0


def _unmerge_kubeconfig(data_dir: Path) -> None:
    """Remove the merged context if it still points at this cluster."""
    import yaml

    from .kubeconfig import default_kubeconfig_path, remove_from

    target = default_kubeconfig_path()
    try:
        ours = yaml.safe_load((data_dir / "kubeconfig").read_text())
        theirs = yaml.safe_load(target.read_text())
    except (OSError, yaml.YAMLError):
        return
    def server_of(cfg: object) -> str | None:
        if not isinstance(cfg, dict):
            return None
        for c in cfg.get("clusters") or []:
            if isinstance(c, dict) and c.get("name") == "tinykube":
                return str((c.get("cluster") or {}).get("server"))
        return None
    if server_of(ours) and server_of(ours) == server_of(theirs):
        remove_from(target, "tinykube")


def _human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def object_counts(db_path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if not db_path.exists():
        return counts
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for r in RESOURCES:
            if r.storage:
                continue
            pre = r.storage_key + "/"
            n = con.execute("SELECT COUNT(*) FROM kv WHERE key >= ? AND key < ?", (pre, pre + "\U0010ffff")).fetchone()[0]
            if n:
                counts[r.qualified] = int(n)
    except sqlite3.Error:
        pass
    finally:
        con.close()
    return counts


def _node_status(data_dir: Path) -> dict[str, Any] | None:
    if not (data_dir / "agent" / "node.json").exists():
        return None  # no local node: the agent's modules need not be loaded
    from ..agent.agent import local_status

    return local_status(data_dir)


def cmd_status(a: argparse.Namespace) -> int:
    data_dir = _data_dir(a)
    running = running_pid(data_dir)
    db = data_dir / "state.db"
    size = sum(p.stat().st_size for p in data_dir.glob("state.db*")) if data_dir.exists() else 0
    if running:
        pid, st = running
        print(f"cluster:    running (data dir {data_dir})")
        print(f"api:        {st.get('url')}")
        print("components:")
        print(f"  apiserver             pid {pid}")
        for comp in ("namespace-controller", "replicaset-controller", "deployment-controller", "garbage-collector",
                     "endpoint-controller", "endpointslice-controller", "scheduler"):
            print(f"  {comp:<22}pid {pid} (in-process)")
        node = _node_status(data_dir)
        if node is not None and cluster_settings_saved(data_dir).get("nodes", 1):
            print(f"  {'node-agent':<22}pid {pid} (in-process, node {node['name']}, {node['mode']})")
        sim = cluster_settings_saved(data_dir).get("simulated_nodes", 0)
        if sim:
            print(f"  {'simulated-nodes':<22}pid {pid} (in-process, {sim} nodes)")
    else:
        print(f"cluster:    stopped (data dir {data_dir})")
        node = _node_status(data_dir)
        if node is not None and node["running"]:
            print(f"  node {node['name']}: {node['running']} containers still running ('tinykube up' adopts them, "
                  "'tinykube down' stops them)")
    if node is not None and node["pods"]:
        print(f"pods:       {node['pods']} on node {node['name']} ({node['running']} containers running, "
              f"pod CIDR {node['podCIDR'] or 'host network'})")
    print(f"store:      {db} ({_human_size(size)})")
    counts = object_counts(db)
    if counts:
        print("objects:")
        for k, v in sorted(counts.items()):
            print(f"  {k:<32} {v}")
    return 0 if running else 3


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tinykube", description="A Kubernetes-compatible local cluster.")
    sub = ap.add_subparsers(dest="verb", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--data-dir", default=None, help="cluster data directory (default $TINYKUBE_HOME or ~/.tinykube)")
        return p

    up = add("up", "start a cluster (returns once the API answers)")
    up.add_argument("--port", type=int, default=6443, help="API port (0: any free port; 6443 falls back to a free one)")
    up.add_argument("--bind", default="127.0.0.1", help="address the API listens on")
    up.add_argument("--nodes", type=int, default=None,
                    help="real (process-running) nodes; saved in the data dir (default 1)")
    up.add_argument("--simulated-nodes", type=int, default=None,
                    help="simulated (kwok-like) nodes beside the real ones; saved in the data dir (default 0)")
    up.add_argument("--foreground", action="store_true", help="stay in the foreground; SIGTERM/SIGINT stop")
    up.add_argument("--no-kubeconfig-merge", action="store_true", help="do not merge the context into ~/.kube/config")
    up.set_defaults(fn=cmd_up)
    down = add("down", "stop the cluster (data stays unless --purge)")
    down.add_argument("--purge", action="store_true", help="also delete the data dir")
    down.set_defaults(fn=cmd_down)
    status = add("status", "show components, API address, store and object counts")
    status.set_defaults(fn=cmd_status)
    from .image import add_parser as add_image_parser

    add_image_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    try:
        sys.exit(a.fn(a))
    except BrokenPipeError:  # `tinykube status | head`: the reader left; quietly, as other CLIs do
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # so the interpreter's final flush does not fail
        sys.exit(141)
