"""End-to-end fixtures: real clusters started with ``tinykube up`` in temporary data dirs, driven by the real kubectl.

Each cluster gets its own data dir, port (``--port 0``) and HOME (so kubectl's
discovery cache and the user's kubeconfig are never shared or touched). Teardown
runs ``tinykube down`` and checks the server process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

KUBECTL = shutil.which("kubectl")


def _require_kubectl() -> str:
    if KUBECTL is None:
        pytest.fail("kubectl (v1.32) is required on PATH for end-to-end tests")
    return KUBECTL


@dataclass
class Cluster:
    data_dir: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def kubectl_path(self) -> str:
        return _require_kubectl()

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.data_dir / "server.json").read_text())
        return data

    def tinykube(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "tinykube.cli", *args]
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"tinykube {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([_require_kubectl(), *args], env=e, capture_output=True, text=True, input=input,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def kjson(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.tinykube("up", "--data-dir", str(self.data_dir), "--port", "0", *extra)

    def down(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.tinykube("down", "--data-dir", str(self.data_dir), *extra)

    def pid(self) -> int:
        return int(self.state["pid"])


def new_cluster(tmp: Path) -> Cluster:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    data = tmp / "data"
    env = dict(os.environ)
    env.update({"HOME": str(home), "KUBECONFIG": str(data / "kubeconfig"), "TINYKUBE_HOME": str(data),
                "NO_PROXY": "*", "no_proxy": "*"})
    env.pop("HTTPS_PROXY", None)
    env.pop("https_proxy", None)
    return Cluster(data, home, env)


def stop(c: Cluster) -> None:
    pid = None
    try:
        pid = c.pid()
    except (OSError, ValueError, KeyError):
        pass
    c.down()
    if pid is not None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1], \
            "server still running after down"
    assert_node_cleaned(c)
    log = c.data_dir / "server.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    assert "SelfCheckFailed" not in text, "a server self-check failed:\n" + text[text.index("SelfCheckFailed"):][:3000]


def assert_node_cleaned(c: Cluster) -> None:
    """After ``down``: nothing of the local node is left on the host (bridge, pod namespaces, supervisors)."""
    node_file = c.data_dir / "agent" / "node.json"
    if not node_file.exists():
        return
    tag = json.loads(node_file.read_text()).get("tag")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"tkb-{tag}:" not in links, "the node bridge outlived tinykube down"
    netns = subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
    assert f"tk-{tag}-" not in netns, "pod network namespaces outlived tinykube down"
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"{c.data_dir}/agent/" not in procs, "container supervisors outlived tinykube down"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"{c.data_dir}/agent/" not in mounts, "pod mounts outlived tinykube down"
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"tinykube-{tag}" not in tables, "the service data path (nftables) outlived tinykube down"
    settings = json.loads(node_file.read_text())
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    for key in ("clusterCIDR", "serviceCIDR"):
        if settings.get(key):
            assert f"{settings[key]} " not in routes, f"the route of the cluster's {key} outlived tinykube down"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_kubectl()
    c = new_cluster(tmp_path_factory.mktemp("cluster"))
    c.up("--no-kubeconfig-merge")
    yield c
    stop(c)


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[Cluster]:
    _require_kubectl()
    c = new_cluster(tmp_path)
    yield c
    try:
        stop(c)
    except AssertionError:
        raise


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster with no real node and three simulated ones (``--nodes 0 --simulated-nodes 3``)."""
    _require_kubectl()
    c = new_cluster(tmp_path_factory.mktemp("simcluster"))
    c.up("--no-kubeconfig-merge", "--nodes", "0", "--simulated-nodes", "3")
    yield c
    stop(c)


def run_in_pty(argv: list[str], env: dict[str, str], keys: bytes, rows: int = 33, cols: int = 101,
               timeout: float = 20) -> tuple[int, str]:
    """Run ``argv`` on a pseudo-terminal of ``rows`` x ``cols`` (its controlling terminal), type ``keys``, and
    return its exit code and everything it printed (``kubectl exec -ti`` needs a real terminal)."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def ctty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty)
    os.close(slave)
    out = b""
    try:
        # Type only once the program has put the terminal in raw mode (it is ready for keys): typed earlier,
        # the line may be taken by the terminal's line editing instead.
        ready_by = time.monotonic() + timeout / 2
        while time.monotonic() < ready_by and p.poll() is None and termios.tcgetattr(master)[3] & termios.ICANON:
            time.sleep(0.02)
        os.write(master, keys)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        code = p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return code, out.decode(errors="replace")


def wait_for(pred: Any, timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``pred()`` until it returns a truthy value (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
