#!/usr/bin/env python3
"""Goal 3: LIST of 10,000 ConfigMaps in <= 300 ms.

Creates N ConfigMaps (default 10,000) with concurrent POSTs over several keep-alive connections, then
times, each over several runs (median, min, max; time from sending the request to the last byte):

* the full LIST as JSON (``GET /api/v1/configmaps``, what ``kubectl get cm -A -o json`` asks for);
* a LIST with a label selector matching a tenth of them (the server still scans all N);
* the full LIST as a Table (``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``, what ``kubectl get``
  asks for);
* a paginated walk with ``limit=500`` (kubectl's default chunk size) for reference;
* ``kubectl get cm -A`` wall time (paginated, and with ``--chunk-size=0``) for reference.

Baseline in the same run: LIST of a namespace holding one object (the per-request floor). The server's CPU seconds per
LIST (from /proc/PID/stat) are printed alongside.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from _common import (
    KUBECTL,
    Cluster,
    RawPool,
    Reporter,
    Target,
    Workspace,
    base_parser,
    cpu_seconds,
    median,
    run_async,
    run_main,
)

GOAL_MS = 300.0
NS = "bench-list"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def configmap(i: int) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:05d}", "labels": {"app": "bench", "group": f"g{i % 10}"},
                         "annotations": {"bench.tinykube.dev/index": str(i)}},
            "data": {"config.yaml": f"replicas: {i % 7}\nimage: example/app:{i}\n", "mode": "fast", "index": str(i)}}


async def create_all(pool: RawPool, n: int, concurrency: int) -> float:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            code, body = await pool.request("POST", f"/api/v1/namespaces/{NS}/configmaps", orjson.dumps(configmap(i)))
            if code != 201:
                raise RuntimeError(f"create cm-{i}: {code} {body[:200]!r}")

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t


async def timed(pool: RawPool, path: str, runs: int, accept: str = "application/json") -> tuple[list[float], bytes]:
    times: list[float] = []
    body = b""
    for _ in range(runs):
        t = time.perf_counter()
        code, body = await pool.request("GET", path, accept=accept)
        times.append(time.perf_counter() - t)
        if code != 200:
            raise RuntimeError(f"GET {path}: {code} {body[:200]!r}")
    return times, body


async def paginated(pool: RawPool, path: str, limit: int) -> tuple[float, int, int]:
    t = time.perf_counter()
    cont = ""
    n = pages = 0
    while True:
        q = f"{path}?limit={limit}" + (f"&continue={cont}" if cont else "")
        code, body = await pool.request("GET", q)
        if code != 200:
            raise RuntimeError(f"GET {q}: {code} {body[:200]!r}")
        doc = orjson.loads(body)
        n += len(doc["items"])
        pages += 1
        cont = doc["metadata"].get("continue", "")
        if not cont:
            return time.perf_counter() - t, n, pages


async def bench(c: Cluster, n: int, runs: int, rep: Reporter) -> None:
    pid = c.pid
    pool = await RawPool(Target.of(c), 8).open()
    try:
        code, body = await pool.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": NS}}))
        assert code == 201, body
        code, body = await pool.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": "empty"}}))
        assert code == 201, body
        cpu0 = cpu_seconds(pid)
        dt = await create_all(pool, n, 16)
        rep.add(f"create {n} configmaps (16 concurrent POSTs, 8 connections)", dt, "s", kind="info",
                note=f"({n / dt:.0f} creates/s, server CPU {(cpu_seconds(pid) - cpu0) / n * 1000:.2f} ms/create)")

        all_path = "/api/v1/configmaps"
        await timed(pool, all_path, 2)  # warm: parse every entry once, as a long-running server would have
        cases = [
            ("LIST of a near-empty namespace (baseline)", "/api/v1/namespaces/empty/configmaps", "application/json", None),
            (f"LIST all {n} configmaps, JSON", all_path, "application/json", GOAL_MS),
            (f"LIST with label selector (group=g3, {n // 10} match)", all_path + "?labelSelector=group%3Dg3",
             "application/json", GOAL_MS),
            (f"LIST all {n} configmaps, as Table", all_path, TABLE, GOAL_MS),
        ]
        for name, path, accept, goal in cases:
            cpu0 = cpu_seconds(pid)
            times, body = await timed(pool, path, runs, accept)
            cpu = (cpu_seconds(pid) - cpu0) / runs
            doc = orjson.loads(body)
            count = len(doc.get("items") or doc.get("rows") or [])
            kind = "baseline" if goal is None else "figure"
            rep.add(f"{name}: median", median(times) * 1000, "ms", goal, kind=kind,
                    note=f"({count} items, {len(body) / 1e6:.2f} MB, server CPU {cpu * 1000:.0f} ms/LIST)")
            rep.add(f"{name}: min / max", min(times) * 1000, "ms", kind="info",
                    note=f"(max {max(times) * 1000:.1f} ms; runs: {' '.join(f'{t * 1000:.1f}' for t in times)})")
        dt, items, pages = await paginated(pool, all_path, 500)
        rep.add("LIST all, paginated limit=500 (kubectl's chunk size)", dt * 1000, "ms", kind="info",
                note=f"({items} items in {pages} pages)")
    finally:
        pool.close()
    if KUBECTL:
        c.kubectl("get", "ns")  # warm kubectl's discovery cache
        for args, label in ((("get", "cm", "-A"), "kubectl get cm -A (paginated, 500/chunk)"),
                            (("get", "cm", "-A", "--chunk-size=0"), "kubectl get cm -A --chunk-size=0")):
            times = []
            out = b""
            for _ in range(3):
                t, p = c.kubectl(*args)
                times.append(t)
                out = p.stdout
            rep.add(f"{label}: median of 3", median(times) * 1000, "ms", kind="info",
                    note=f"({len(out.splitlines()) - 1} rows)")


def main() -> int:
    ap = base_parser(__doc__ or "")
    ap.add_argument("--count", type=int, default=10_000, help="configmaps to create")
    ap.add_argument("--runs", type=int, default=10, help="timed LISTs per case")
    a = ap.parse_args()
    n = 1000 if a.quick else a.count
    runs = 3 if a.quick else a.runs
    rep = Reporter("3", f"LIST of {n} ConfigMaps", a.quick)
    rep.header()
    with Workspace(a.keep) as ws:
        c = ws.new_cluster("list")
        c.up()
        run_async(bench(c, n, runs, rep))
        c.down(purge=True)
    rep.footer()
    rep.write_json(a.json_out)
    return 0


if __name__ == "__main__":
    run_main(main)
