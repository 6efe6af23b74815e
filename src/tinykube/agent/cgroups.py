"""Resource limits of a container run, enforced with cgroups (v1 or v2, whichever the host mounts).

Each run of a container with limits gets its own group,
``tinykube/<cluster tag>/<pod uid>/<container>-<run>``, in the memory and cpu
hierarchies (v1) or in the unified hierarchy (v2):

* ``limits.memory`` → ``memory.limit_in_bytes`` (v1) / ``memory.max`` (v2), swap
  not allowed beyond it; the kernel's OOM killer then ends the container, and the
  shim reports ``OOMKilled`` from the group's ``oom_kill`` counter;
* ``limits.cpu`` → a CFS quota of ``cpu × 100 ms`` per 100 ms period;
* ``requests.cpu`` → ``cpu.shares`` (v1) / ``cpu.weight`` (v2), as the kubelet maps them.

The shim joins the groups before the container's first process starts (so
everything the container forks is inside). Groups are removed when the pod is
torn down (an empty group is a plain ``rmdir``). Without cgroup write access
(not root, or a read-only ``/sys/fs/cgroup``) limits are not enforced and the
agent says so once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..scheduler.resources import parse_quantity

log = logging.getLogger("tinykube.agent.cgroups")

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def unified() -> bool:
    return (ROOT / "cgroup.controllers").exists()


def _limits(container: Mapping[str, Any]) -> tuple[int | None, float | None, float | None]:
    res = container.get("resources") or {}
    lim = res.get("limits") or {}
    req = res.get("requests") or {}
    mem = cpu = cpu_req = None
    with contextlib.suppress(Exception):
        if lim.get("memory") is not None:
            mem = int(parse_quantity(str(lim["memory"])))
    with contextlib.suppress(Exception):
        if lim.get("cpu") is not None:
            cpu = float(parse_quantity(str(lim["cpu"])))
    with contextlib.suppress(Exception):
        if req.get("cpu") is not None:
            cpu_req = float(parse_quantity(str(req["cpu"])))
    return mem, cpu, cpu_req


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def group_path(tag: str, pod_uid: str, name: str) -> str:
    return f"tinykube/{tag}/{pod_uid}/{name}"


def create(tag: str, pod_uid: str, name: str, container: Mapping[str, Any]) -> list[str]:
    """Make the run's groups with the container's limits; the directories the shim must join ([] = none)."""
    mem, cpu, cpu_req = _limits(container)
    if mem is None and cpu is None and cpu_req is None:
        return []
    rel = group_path(tag, pod_uid, name)
    try:
        if unified():
            d = ROOT / rel
            _enable_v2(d.parent)
            d.mkdir(parents=True, exist_ok=True)
            if mem is not None:
                _write(d / "memory.max", str(mem))
                with contextlib.suppress(OSError):
                    _write(d / "memory.swap.max", "0")
            if cpu is not None:
                _write(d / "cpu.max", f"{max(1000, int(cpu * PERIOD_US))} {PERIOD_US}")
            if cpu_req is not None:
                _write(d / "cpu.weight", str(max(1, min(10000, int(1 + ((cpu_req * 1024 - 2) * 9999) / 262142)))))
            return [str(d)]
        out = []
        if mem is not None:
            d = ROOT / "memory" / rel
            d.mkdir(parents=True, exist_ok=True)
            _write(d / "memory.limit_in_bytes", str(mem))
            with contextlib.suppress(OSError):
                _write(d / "memory.memsw.limit_in_bytes", str(mem))
            out.append(str(d))
        if cpu is not None or cpu_req is not None:
            d = ROOT / "cpu" / rel
            d.mkdir(parents=True, exist_ok=True)
            if cpu is not None:
                _write(d / "cpu.cfs_period_us", str(PERIOD_US))
                _write(d / "cpu.cfs_quota_us", str(max(1000, int(cpu * PERIOD_US))))
            if cpu_req is not None:
                _write(d / "cpu.shares", str(max(2, int(cpu_req * 1024))))
            out.append(str(d))
        return out
    except OSError as ex:
        log.warning("cgroups: cannot apply limits of %s/%s (%s); the container runs without them", pod_uid, name, ex)
        return []


def _enable_v2(parent: Path) -> None:
    """Let the groups below ``parent`` use the memory and cpu controllers (v2 delegates top-down)."""
    chain = []
    p = parent
    while p != ROOT and ROOT in p.parents:
        chain.append(p)
        p = p.parent
    for d in reversed(chain):
        d.mkdir(exist_ok=True)
    for d in [ROOT, *reversed(chain)]:
        with contextlib.suppress(OSError):
            _write(d / "cgroup.subtree_control", "+memory +cpu")


def remove_pod(tag: str, pod_uid: str) -> None:
    """Remove the pod's groups (each must be empty: its processes are gone)."""
    bases = [ROOT] if unified() else [ROOT / "memory", ROOT / "cpu"]
    for base in bases:
        d = base / "tinykube" / tag / pod_uid
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir(), reverse=True):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    os.rmdir(sub)
        with contextlib.suppress(OSError):
            os.rmdir(d)


def remove_cluster(tag: str) -> None:
    bases = [ROOT] if unified() else [ROOT / "memory", ROOT / "cpu"]
    for base in bases:
        d = base / "tinykube" / tag
        if not d.is_dir():
            continue
        for pod in d.iterdir():
            if pod.is_dir():
                remove_pod(tag, pod.name)
        with contextlib.suppress(OSError):
            os.rmdir(d)
        with contextlib.suppress(OSError):
            os.rmdir(d.parent)  # the shared "tinykube" group, once no cluster uses it
