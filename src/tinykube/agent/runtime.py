"""The container runtime of one node: pod directories, container runs, shims, and what survives a restart.

Everything the agent knows about a running pod is on disk, so a restarted agent
(or control plane) picks its pods up again instead of starting them anew:

``<root>/pods/<uid>/meta.json``
    namespace, name, uid and pod IP of the pod (written when its sandbox is made);
``<root>/pods/<uid>/etc/``
    the pod's ``hosts``, ``hostname`` and ``resolv.conf``, bound into its containers;
``<root>/pods/<uid>/volumes/``
    its volumes (:mod:`tinykube.agent.volumes`);
``<root>/pods/<uid>/containers/<name>/<n>/``
    run ``n`` of a container (its restart number): ``spec.json`` for the shim and
    ``status.json`` written by the shim (PIDs, start, exit code, finish);
``<root>/pods/<uid>/logs/<name>/<n>.log``
    the run's output in CRI format.

A run is *running* while its shim is alive (checked by PID plus the shim's
start time, so a recycled PID is not mistaken for it) and its status has no exit
code; a shim that vanished without writing one (killed) counts as exited with
137. The agent learns of exits without polling: each shim is watched through a
pidfd registered with the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..sim import lifecycle
from .shim import main_process, proc_start

SCHEME = "tinykube://"
SHIM_BOOT = "import sys; sys.path.insert(0, {root!r}); from tinykube.agent.shim import main; sys.exit(main())"


def container_id(uid: str, name: str, attempt: int) -> str:
    return lifecycle.container_id(uid, name, attempt, SCHEME)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


@dataclass
class Run:
    """One run of a container."""

    uid: str
    name: str
    attempt: int
    dir: Path
    status: dict[str, Any]

    def reload(self) -> None:
        self.status = _read_json(self.dir / "status.json") or self.status

    @property
    def id(self) -> str:
        return container_id(self.uid, self.name, self.attempt)

    @property
    def shim_pid(self) -> int:
        return int(self.status.get("shimPid") or 0)

    @property
    def pid(self) -> int:
        return int(self.status.get("pid") or 0)

    @property
    def started_at(self) -> float:
        return float(self.status.get("startedAt") or 0.0)

    @property
    def exited(self) -> bool:
        return "exitCode" in self.status

    def shim_alive(self) -> bool:
        pid = self.shim_pid
        if not pid:
            return False
        return proc_start(pid) == self.status.get("shimStart")

    def running(self) -> bool:
        if self.exited:
            return False
        if self.shim_alive():
            return True
        self.reload()
        if not self.exited:
            # The shim is gone without a word (killed): the container went with it.
            self.status.update({"exitCode": 137, "finishedAt": time.time(), "reason": "Error", "lost": True})
            with contextlib.suppress(OSError):
                write_json(self.dir / "status.json", self.status)
        return False


class Runtime:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pods_dir = root / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self._watch_fds: dict[int, int] = {}  # pidfd -> shim pid

    # -- pods ----------------------------------------------------------------------------------------------------
    def pod_dir(self, uid: str) -> Path:
        return self.pods_dir / uid

    def pod_uids(self) -> list[str]:
        try:
            return sorted(d for d in os.listdir(self.pods_dir) if (self.pods_dir / d / "meta.json").exists())
        except OSError:
            return []

    def meta(self, uid: str) -> dict[str, Any]:
        return _read_json(self.pod_dir(uid) / "meta.json")

    def write_meta(self, uid: str, meta: dict[str, Any]) -> None:
        d = self.pod_dir(uid)
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "meta.json", meta)

    def write_etc(self, uid: str, files: dict[str, str]) -> Path:
        etc = self.pod_dir(uid) / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            p = etc / name
            tmp = etc / (name + ".tmp")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, p)
        return etc

    # -- runs ----------------------------------------------------------------------------------------------------
    def runs(self, uid: str, name: str) -> list[Run]:
        base = self.pod_dir(uid) / "containers" / name
        out = []
        try:
            entries = os.listdir(base)
        except OSError:
            return []
        for e in entries:
            if e.isdigit():
                d = base / e
                status = _read_json(d / "status.json") or _read_json(d / "shim.json")
                out.append(Run(uid, name, int(e), d, status))
        out.sort(key=lambda r: r.attempt)
        return out

    def log_path(self, uid: str, name: str, attempt: int) -> Path:
        return self.pod_dir(uid) / "logs" / name / f"{attempt}.log"

    async def start(self, uid: str, name: str, attempt: int, argv: list[str], env: dict[str, str],
                    netns: str | None, cgroups: list[str] | None = None) -> Run:
        d = self.pod_dir(uid) / "containers" / name / str(attempt)
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        log = self.log_path(uid, name, attempt)
        log.parent.mkdir(parents=True, exist_ok=True)
        spec = {"argv": argv, "env": env, "log": str(log), "status": str(d / "status.json"),
                "netns": netns or "", "cgroups": cgroups or []}
        write_json(d / "spec.json", spec)
        proc = await asyncio.create_subprocess_exec(
            # -S -E: no site initialisation (it costs more than the shim itself); the package's own root is
            # put on the path instead.
            sys.executable, "-S", "-E", "-c", SHIM_BOOT.format(root=_package_root()), str(d / "spec.json"),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=open(d / "shim.err", "wb"), start_new_session=True, close_fds=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        # Remember the shim at once: if this task is cancelled below, teardown still finds it by PID.
        write_json(d / "shim.json", {"shimPid": proc.pid, "shimStart": proc_start(proc.pid)})
        # Reap the shim when it ends (it is our child until we restart).
        asyncio.get_running_loop().create_task(proc.wait())
        status: dict[str, Any] = {}
        for _ in range(400):  # the shim writes its status before anything else (a few ms)
            status = _read_json(d / "status.json")
            if status.get("pid") or "exitCode" in status or proc.returncode is not None:
                break
            await asyncio.sleep(0.005)
        status = _read_json(d / "status.json") or {"shimPid": proc.pid, "shimStart": proc_start(proc.pid)}
        if proc.returncode is not None and "exitCode" not in status:
            err = (d / "shim.err").read_text(errors="replace")[-2000:]
            status.update({"exitCode": 128, "reason": "StartError", "message": err.strip() or "shim failed",
                           "finishedAt": time.time()})
        return Run(uid, name, attempt, d, status)

    def watch(self, run: Run, on_exit: Callable[[], None]) -> bool:
        """Call ``on_exit`` (in the loop) when the run's shim ends. False if it is already gone."""
        pid = run.shim_pid
        if not pid or not run.shim_alive():
            return False
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return False
        loop = asyncio.get_running_loop()

        def ready() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._watch_fds.pop(fd, None)
            on_exit()

        self._watch_fds[fd] = pid
        loop.add_reader(fd, ready)
        return True

    def unwatch_all(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in list(self._watch_fds):
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._watch_fds.clear()

    @staticmethod
    def signal(run: Run, sig: int) -> None:
        """SIGTERM: the container's first process is asked to stop; SIGKILL: the whole container dies now."""
        if not run.shim_alive():
            return
        with contextlib.suppress(OSError):
            os.kill(run.shim_pid, signal.SIGUSR1 if sig == signal.SIGKILL else signal.SIGTERM)

    def exec_target(self, run: Run) -> int | None:
        """The PID whose namespaces ``exec`` enters: the container's first process."""
        if not run.running() or not run.pid:
            return None
        return main_process(run.pid)

    def exec_command(self, run: Run, argv: list[str]) -> tuple[list[str], dict[str, str]] | None:
        """The host command line (and environment) that runs ``argv`` inside a running container: in all of
        its namespaces (so as uid 0 of its user namespace), its root and working directory, with its
        environment and no capabilities beyond the container's. None when it does not run."""
        target = self.exec_target(run)
        if target is None:
            return None
        spec = _read_json(run.dir / "spec.json")
        env = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
        return (["nsenter", "-t", str(target), "--all", "-r", "-w", "setpriv", "--bounding-set=-all",
                 "--inh-caps=-all", "--", *argv], env)

    def remove_pod_dir(self, uid: str) -> None:
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])
