"""What a real node reports about itself: the machine's CPUs, memory, disk, kernel and OS.

Capacity is the machine's (``cpu`` = online CPUs, ``memory`` from
``/proc/meminfo``, ``ephemeral-storage`` from the data dir's filesystem, ``pods``
110 as the kubelet's default); allocatable is capacity minus the kubelet's default
hard eviction threshold for memory (100Mi), as a kubelet without reservations reports.
``nodeInfo`` carries the real kernel and OS names, so ``kubectl get nodes -o wide``
reads like a real cluster's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import uuid
from pathlib import Path

from ..sim.objects import KUBELET_VERSION

RUNTIME_VERSION = "tinykube://0.1.0"
MAX_PODS = 110
EVICTION_MEMORY = 100 * 1024 * 1024


def _meminfo_kib() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def capacity(data_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    mem_kib = _meminfo_kib()
    st = os.statvfs(data_dir)
    disk_kib = st.f_blocks * st.f_frsize // 1024
    cap = {"cpu": str(cpus), "ephemeral-storage": f"{disk_kib}Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
           "memory": f"{mem_kib}Ki", "pods": str(MAX_PODS)}
    alloc = dict(cap)
    alloc["memory"] = f"{max(0, mem_kib - EVICTION_MEMORY // 1024)}Ki"
    alloc["ephemeral-storage"] = str(int(disk_kib * 1024 * 0.9))  # nodefs.available<10% is the default threshold
    return cap, alloc


def _os_image() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip('"')
    return "Linux"


def _machine_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/etc/machine-id").read_text().strip()
    return hashlib.sha256(platform.node().encode()).hexdigest()[:32]


def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return str(uuid.uuid4())


def arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def node_info(name: str) -> dict[str, str]:
    mid = _machine_id()
    return {
        "machineID": mid,
        "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_OID, mid + "/" + name)),
        "bootID": _boot_id(),
        "kernelVersion": platform.release(),
        "osImage": _os_image(),
        "containerRuntimeVersion": RUNTIME_VERSION,
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": arch(),
    }
