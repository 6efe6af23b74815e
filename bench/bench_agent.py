#!/usr/bin/env python3
"""Issue 4: pod start latency on the real node, against the bare process, and the agent's idle cost.

1. ``tinykube up`` (one real node, root mode); build a minimal HTTP server image (``FROM python``, one file).
2. Baseline: start the same server as a bare host process, 50 times; time from spawn to its first answer.
3. 50 pods, one after another: time from create to (a) ``Ready`` in the API and (b) the first answer on the
   pod's IP. Overhead = pod latency - bare latency at p50 and p99 (goal: p99 overhead <= 300 ms;
   Kubernetes' SLO is 5 s without image pull).
4. 100 pods running: server process (control plane + in-process agent) CPU over 30 s idle and RSS (goal for the
   agent: <= 5% of a core, <= 150 MiB; the figure includes the control plane, so it is an upper bound), plus the
   total RSS of the per-container supervisors (info).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import Cluster, Reporter, Workspace, base_parser, cpu_seconds, percentile, rss_mib, run_async, run_main

SERVER = """import os, socket
port = int(os.environ.get("PORT", "8080"))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((os.environ.get("BIND", "0.0.0.0"), port)); s.listen(64)
while True:
    c, _ = s.accept()
    c.recv(1024)
    c.sendall(b"HTTP/1.0 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")
    c.close()
"""

GOAL_OVERHEAD_P99_MS = 300.0
GOAL_AGENT_CPU_PCT = 5.0
GOAL_AGENT_RSS_MIB = 150.0


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.0 200")
    except OSError:
        return False


def bare_start(script: Path, n: int) -> list[float]:
    out = []
    for i in range(n):
        port = 20000 + i
        t = time.perf_counter()
        p = subprocess.Popen([sys.executable, str(script)], env={"PORT": str(port), "BIND": "127.0.0.1",
                                                               "PATH": os.environ.get("PATH", "")})
        try:
            while not answers("127.0.0.1", port):
                if time.perf_counter() - t > 10:
                    raise RuntimeError("bare server did not start")
                time.sleep(0.002)
            out.append(time.perf_counter() - t)
        finally:
            p.kill()
            p.wait()
    return out


def pod(name: str, image: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "agent"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}]}]}}


async def measure(c: Cluster, rep: Reporter, image: str, n: int, idle_pods: int, idle_seconds: float,
                  bare: list[float]) -> None:
    http = c.httpx_client()
    base = "/api/v1/namespaces/default/pods"
    ready_t: list[float] = []
    serve_t: list[float] = []
    for i in range(n):
        name = f"lat-{i}"
        t0 = time.perf_counter()
        r = await http.post(base, json=pod(name, image))
        assert r.status_code == 201, r.text
        ip = ""
        ready = None
        while True:
            d = (await http.get(f"{base}/{name}")).json()
            st = d.get("status") or {}
            ip = st.get("podIP") or ip
            if ready is None and any(x["type"] == "Ready" and x["status"] == "True" for x in st.get("conditions") or []):
                ready = time.perf_counter() - t0
            if ip and await asyncio.to_thread(answers, ip, 8080):
                serve_t.append(time.perf_counter() - t0)
                break
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"pod {name} did not start: {st}")
            await asyncio.sleep(0.005)
        while ready is None:
            d = (await http.get(f"{base}/{name}")).json()
            if any(x["type"] == "Ready" and x["status"] == "True" for x in (d.get("status") or {}).get("conditions") or []):
                ready = time.perf_counter() - t0
            await asyncio.sleep(0.005)
        ready_t.append(ready)
    ms = 1000.0
    rep.add("bare process start to first answer p50", percentile(bare, 50) * ms, "ms", kind="info")
    rep.add("bare process start to first answer p99", percentile(bare, 99) * ms, "ms", kind="info")
    rep.add(f"pod create -> Ready p50 ({n} pods)", percentile(ready_t, 50) * ms, "ms", kind="info")
    rep.add(f"pod create -> Ready p99 ({n} pods)", percentile(ready_t, 99) * ms, "ms", kind="info")
    rep.add("pod create -> first answer on pod IP p50", percentile(serve_t, 50) * ms, "ms", kind="info")
    rep.add("pod create -> first answer on pod IP p99", percentile(serve_t, 99) * ms, "ms", kind="info")
    over50 = (percentile(serve_t, 50) - percentile(bare, 50)) * ms
    over99 = (percentile(serve_t, 99) - percentile(bare, 99)) * ms
    rep.add("overhead p50 (first answer, pod - bare)", over50, "ms", kind="info")
    rep.add("overhead p99 (first answer, pod - bare)", over99, "ms", GOAL_OVERHEAD_P99_MS)
    rep.add("ratio pod/bare p50 (first answer)", percentile(serve_t, 50) / percentile(bare, 50), "x", kind="info")

    # Idle cost with idle_pods pods running.
    for i in range(n, idle_pods):
        r = await http.post(base, json=pod(f"lat-{i}", image))
        assert r.status_code == 201, r.text

    async def all_ready() -> bool:
        items = (await http.get(base, params={"labelSelector": "bench=agent"})).json()["items"]
        return len(items) == idle_pods and all(
            any(x["type"] == "Ready" and x["status"] == "True" for x in (p.get("status") or {}).get("conditions") or [])
            for p in items)

    t0 = time.perf_counter()
    while not await all_ready():
        if time.perf_counter() - t0 > 180:
            raise RuntimeError(f"{idle_pods} pods not ready")
        await asyncio.sleep(0.2)
    rep.add(f"{idle_pods - n} more pods created -> all Ready", time.perf_counter() - t0, "s", kind="info")
    await http.aclose()
    await asyncio.sleep(3)
    pid = c.pid
    cpu0 = cpu_seconds(pid)
    await asyncio.sleep(idle_seconds)
    cpu = (cpu_seconds(pid) - cpu0) / idle_seconds * 100
    rep.add(f"server CPU idle with {idle_pods} pods (control plane + agent)", cpu, "% core", GOAL_AGENT_CPU_PCT)
    rep.add(f"server RSS with {idle_pods} pods (control plane + agent)", rss_mib(pid), "MiB", GOAL_AGENT_RSS_MIB)
    shims = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_shim(int(p), c.data_dir)]
    rep.add(f"container supervisors: {len(shims)}, total RSS", sum(rss_mib(p) for p in shims), "MiB", kind="info")
    rep.add(f"container supervisors: {len(shims)}, total PSS (shared pages split)", sum(pss_mib(p) for p in shims),
            "MiB", kind="info")


def pss_mib(pid: int) -> float:
    """Proportional set size: a process's private memory plus its share of pages it shares (the interpreter)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _is_shim(pid: int, data_dir: Path) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"tinykube.agent.shim" in cmd and str(data_dir).encode() in cmd


def main() -> int:
    ap = base_parser(__doc__ or "")
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--idle-pods", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    a = ap.parse_args()
    n, idle, secs = (10, 20, 5.0) if a.quick else (a.pods, a.idle_pods, a.idle_seconds)
    rep = Reporter("issue 4", "pod start latency and agent idle cost (real node, root mode)", a.quick)
    rep.header()
    if os.geteuid() != 0:
        raise SystemExit("bench_agent needs root (real pods run in network namespaces)")
    with Workspace() as ws:
        ctx = ws.path("image")
        (ctx / "server.py").write_text(SERVER)
        (ctx / "Dockerfile").write_text('FROM python:3.11\nCOPY server.py /srv/server.py\nCMD ["python", "/srv/server.py"]\n')
        bare = bare_start(ctx / "server.py", n)
        c = ws.new_cluster()
        c.up()
        t = time.perf_counter()
        c.build_image(ctx, "tinyhttp:1")
        rep.add("image build (python base + one file)", time.perf_counter() - t, "s", kind="info")
        run_async(measure(c, rep, "tinyhttp:1", n, idle, secs, bare))
        c.down(purge=True)
    rep.footer()
    rep.write_json(a.json_out)
    return 0


if __name__ == "__main__":
    run_main(main)
