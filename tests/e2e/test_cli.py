"""The ``tinykube`` CLI contract: kubeconfig merge and purge, --foreground with signals, port fallback, status."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .conftest import Cluster, new_cluster


def _contexts(path: Path) -> dict[str, dict[str, str]]:
    cfg = yaml.safe_load(path.read_text())
    return {c["name"]: c["context"] for c in cfg.get("contexts") or []}


def test_up_merges_kubeconfig_and_purge_removes_it(tmp_path: Path) -> None:
    c = new_cluster(tmp_path)
    c.env.pop("KUBECONFIG")
    user_cfg = c.home / ".kube" / "config"
    user_cfg.parent.mkdir(parents=True)
    user_cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "other", "cluster": {"server": "https://192.0.2.1:6443"}}],
        "users": [{"name": "other", "user": {"token": "x"}}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}]}))
    try:
        out = c.tinykube("up", "--data-dir", str(c.data_dir), "--port", "0").stdout
        assert "merged into" in out
        ctx = _contexts(user_cfg)
        assert "tinykube" in ctx and "other" in ctx
        assert yaml.safe_load(user_cfg.read_text())["current-context"] == "tinykube"
        # The user's own kubectl, with no KUBECONFIG, now talks to the cluster.
        assert "kube-system" in c.kubectl("get", "ns").stdout
        assert (c.data_dir / "kubeconfig").stat().st_mode & 0o777 == 0o600
        for f in ("ca.key", "server.key", "token", "secrets.key"):
            assert (c.data_dir / f).stat().st_mode & 0o777 == 0o600, f
    finally:
        c.tinykube("down", "--data-dir", str(c.data_dir), "--purge")
    assert not c.data_dir.exists()
    ctx = _contexts(user_cfg)
    assert "tinykube" not in ctx and "other" in ctx


def test_foreground_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    c = new_cluster(tmp_path)
    p = subprocess.Popen([sys.executable, "-m", "tinykube.cli", "up", "--foreground", "--data-dir", str(c.data_dir),
                          "--port", "0", "--no-kubeconfig-merge"], env=c.env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        assert p.stdout is not None
        line = ""
        deadline = time.monotonic() + 20
        while "tinykube is up" not in line and time.monotonic() < deadline:
            line = p.stdout.readline()
        assert "tinykube is up" in line, line
        assert "default" in c.kubectl("get", "ns").stdout
        status = c.tinykube("status", "--data-dir", str(c.data_dir)).stdout
        assert f"pid {p.pid}" in status
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        # The server stopped; its node's pods and network stay until `down` (as a kubelet restart keeps them).
        c.tinykube("down", "--data-dir", str(c.data_dir))
    assert not (c.data_dir / "server.json").exists()
    out = c.tinykube("status", "--data-dir", str(c.data_dir), check=False)
    assert out.returncode != 0 and "stopped" in out.stdout


def test_default_port_falls_back_when_taken(tmp_path: Path) -> None:
    c = new_cluster(tmp_path)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken = True
    try:
        blocker.bind(("127.0.0.1", 6443))
        blocker.listen(1)
    except OSError:
        taken = False  # something else (another test's cluster) already holds 6443: the fallback is exercised anyway
    try:
        c.tinykube("up", "--data-dir", str(c.data_dir), "--no-kubeconfig-merge")
        port = c.state["port"]
        assert port != 6443 and port > 0
        assert "default" in c.kubectl("get", "ns").stdout
        assert taken or port != 6443
    finally:
        blocker.close()
        c.down()


def test_status_when_stopped_shows_store(cluster: Cluster) -> None:
    out = cluster.tinykube("status", "--data-dir", str(cluster.data_dir)).stdout
    assert "store:" in out and "state.db" in out
    assert "namespaces" in out and "apiserver" in out
